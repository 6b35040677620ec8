"""Reference parsing: OCI layouts and registry references normalised as docker and skopeo do."""

from __future__ import annotations

import pytest

from slimmer.errors import UsageError
from slimmer.oci.refs import LayoutRef, RegistryRef, parse_reference

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, want", [
    ("ubuntu", RegistryRef("docker.io", "library/ubuntu", "latest")),
    ("ubuntu:22.04", RegistryRef("docker.io", "library/ubuntu", "22.04")),
    ("docker://ubuntu", RegistryRef("docker.io", "library/ubuntu", "latest")),
    ("team/app", RegistryRef("docker.io", "team/app", "latest")),
    ("docker.io/ubuntu", RegistryRef("docker.io", "library/ubuntu", "latest")),
    ("index.docker.io/library/ubuntu:1", RegistryRef("docker.io", "library/ubuntu", "1")),
    ("registry-1.docker.io/x/y", RegistryRef("docker.io", "x/y", "latest")),
    ("localhost/app", RegistryRef("localhost", "app", "latest")),
    ("localhost:5000/team/app:1.0", RegistryRef("localhost:5000", "team/app", "1.0")),
    ("127.0.0.1:5000/a/b/c:v1-slim", RegistryRef("127.0.0.1:5000", "a/b/c", "v1-slim")),
    ("registry.example.com/team/app:1.4", RegistryRef("registry.example.com", "team/app", "1.4")),
    ("docker://ghcr.io/o/r@" + D, RegistryRef("ghcr.io", "o/r", None, D)),
    ("quay.io/o/r:t@" + D, RegistryRef("quay.io", "o/r", "t", D)),
    ("[::1]:5000/app", RegistryRef("[::1]:5000", "app", "latest")),
    ("host:443/a__b/c-d.e", RegistryRef("host:443", "a__b/c-d.e", "latest")),
])
def test_registry_references(text: str, want: RegistryRef) -> None:
    assert parse_reference(text) == want


def test_registry_ref_properties() -> None:
    ref = parse_reference("localhost:5000/team/app:1.0")
    assert isinstance(ref, RegistryRef)
    assert (ref.host, ref.name, ref.reference, str(ref)) == (
        "localhost", "localhost:5000/team/app", "1.0", "localhost:5000/team/app:1.0")
    by_digest = parse_reference("ghcr.io/o/r@" + D)
    assert isinstance(by_digest, RegistryRef)
    assert by_digest.reference == D and str(by_digest) == "ghcr.io/o/r@" + D
    assert str(parse_reference("ubuntu")) == "docker.io/library/ubuntu:latest"
    assert parse_reference("[::1]:5000/app").host == "[::1]"  # type: ignore[union-attr]


@pytest.mark.parametrize("text, fragment", [
    ("", "empty reference"),
    ("docker://", "empty reference"),
    ("Team/App", "lowercase"),
    ("localhost:5000/", "empty repository"),
    ("host.io/a//b", "invalid repository name component"),
    ("host.io/-a", "invalid repository name component"),
    ("host.io/a:bad/tag", "invalid repository name component"),
    ("app:" + "x" * 129, "invalid tag"),
    ("app@sha256:123", "malformed digest"),
    ("ho_st.io:5000/app", "invalid registry host"),
    ("dir:/tmp/x", "transport 'dir'"),
    ("docker-archive:x.tar", "transport 'docker-archive'"),
    ("a.io/" + "b" * 260, "longer than 255"),
])
def test_bad_registry_references(text: str, fragment: str) -> None:
    with pytest.raises(UsageError, match="bad reference|unsupported reference") as info:
        parse_reference(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize("text, want", [
    ("oci:dir", LayoutRef("dir")),
    ("oci:dir:tag", LayoutRef("dir", "tag")),
    ("oci:/a:b/dir:tag", LayoutRef("/a:b/dir", "tag")),
    ("oci:dir@" + D, LayoutRef("dir", None, D)),
])
def test_layout_references(text: str, want: LayoutRef) -> None:
    assert parse_reference(text) == want
    assert str(want) == text or want.tag is None
