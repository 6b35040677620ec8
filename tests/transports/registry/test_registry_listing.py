"""Listings the hook's reconcile uses: the catalog and tag lists, every page, from the real
registry; a next-page link to another host is not followed."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from slimmer.errors import RegistryError
from slimmer.oci.refs import RegistryRef
from slimmer.transports.registry.client import RegistryClient
from slimmer.transports.registry.options import RegistryOptions
from slimmer.transports.registry.repository import Repository

from support.registry_server import missing, run_registry, skopeo

EXAMPLE = "oci:testdata/example:latest"


@pytest.mark.integration
@pytest.mark.skipif(missing() is not None, reason=str(missing()))
def test_catalog_and_tags_follow_every_page(tmp_path: Path) -> None:
    for registry in run_registry(tmp_path / "registry"):
        for ref in ("team/a:1", "team/a:2", "team/a:3", "team/b:1"):
            skopeo("copy", "--dest-tls-verify=false", EXAMPLE, f"docker://{registry.host}/{ref}")
        options = RegistryOptions(docker_config=False)
        client = RegistryClient.for_ref(RegistryRef(registry.host, "team/a"), options, "source")
        try:
            assert client.catalog("listing", page=1) == ["team/a", "team/b"]
            repo = Repository(client, RegistryRef(registry.host, "team/a"))
            assert sorted(client.tags("team/a", repo.scopes(), "listing", page=1)) == \
                ["1", "2", "3"]
            assert sorted(repo.tags("listing")) == ["1", "2", "3"]
        finally:
            client.close()


def test_a_next_page_on_another_host_is_not_followed() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url.host))
        return httpx.Response(200, json={"repositories": ["x"]},
                              headers={"Link": '<http://evil.example/v2/_catalog?n=1&last=x>; '
                                               'rel="next"'})
    options = RegistryOptions(docker_config=False, transport=httpx.MockTransport(handler))
    client = RegistryClient.for_ref(RegistryRef("reg.example", "x"), options, "source")
    with pytest.raises(RegistryError, match="continues on another host"):
        client.catalog("listing")
    assert seen == ["reg.example"]
