"""Reference parsing: OCI layouts and registry references normalised as docker and skopeo do."""

from __future__ import annotations

import pytest

from slimmer.errors import UsageError
from slimmer.oci.refs import (
    ArchiveKind,
    ArchiveRef,
    LayoutRef,
    RegistryRef,
    familiar_name,
    parse_reference,
)

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
    ("containers-storage:x", "transport 'containers-storage'"),
    ("docker-daemon:app:1", "docker save"),
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


DOCKER, OCI = ArchiveKind.DOCKER, ArchiveKind.OCI


@pytest.mark.parametrize("text, want", [
    ("docker-archive:x.tar", ArchiveRef(DOCKER, "x.tar")),
    ("docker-archive:/a/x.tar:busybox", ArchiveRef(DOCKER, "/a/x.tar",
                                                   name="docker.io/library/busybox:latest")),
    ("docker-archive:x.tar:localhost:5000/team/app:1.0",
     ArchiveRef(DOCKER, "x.tar", name="localhost:5000/team/app:1.0")),
    ("docker-archive:x.tar:@2", ArchiveRef(DOCKER, "x.tar", index=2)),
    ("oci-archive:x.tar", ArchiveRef(OCI, "x.tar")),
    ("oci-archive:/a:b/x.tar:v1", ArchiveRef(OCI, "/a:b/x.tar", "v1")),
    ("oci-archive:x.tar@" + D, ArchiveRef(OCI, "x.tar", None, D)),
])
def test_archive_references(text: str, want: ArchiveRef) -> None:
    assert parse_reference(text) == want


def test_archive_reference_strings() -> None:
    assert str(parse_reference("docker-archive:x.tar:busybox")) == \
        "docker-archive:x.tar:docker.io/library/busybox:latest"
    assert str(parse_reference("docker-archive:x.tar:@1")) == "docker-archive:x.tar:@1"
    oci = parse_reference("oci-archive:x.tar:v1")
    assert str(oci) == "oci-archive:x.tar:v1"
    assert oci.pinned(D) == "oci-archive:x.tar@" + D  # type: ignore[union-attr]
    assert parse_reference("oci:dir:v").pinned(D) == "oci:dir@" + D  # type: ignore[union-attr]


@pytest.mark.parametrize("text, fragment", [
    ("docker-archive:", "empty archive path"),
    ("docker-archive:x.tar:@one", "image number"),
    ("docker-archive:x.tar:Bad/Name", "is not NAME[:TAG]"),
    ("docker-archive:x.tar:app@" + D, "cannot name a digest"),
    ("oci-archive:x.tar:bad/tag:", "invalid tag"),
    ("docker-daemon:app:1", "docker save IMAGE -o FILE.tar"),
])
def test_bad_archive_references(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_reference(text)
    assert fragment in str(info.value)


def test_familiar_names() -> None:
    assert familiar_name("docker.io/library/busybox:1") == "busybox:1"
    assert familiar_name("docker.io/team/app:1") == "team/app:1"
    assert familiar_name("docker.io/library/a/b:1") == "library/a/b:1"
    assert familiar_name("ghcr.io/o/r:1") == "ghcr.io/o/r:1"
