"""Image references: ``oci:DIR[:TAG|@DIGEST]`` layouts, ``docker-archive:PATH[:REF]`` and
``oci-archive:PATH[:TAG|@DIGEST]`` tar archives, and ``[docker://]HOST[:PORT]/REPO[:TAG|@DIGEST]``
registry references, normalised the way docker and skopeo do (``docker.io``, ``library/``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from slimmer.errors import InputError, UsageError
from slimmer.oci.digest import check_digest

_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
#: One path component of a repository name (distribution's reference grammar).
_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_HOST_RE = re.compile(
    r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::[0-9]{1,5})?$")
#: Transports of containers/image that slimmer does not read or write.
_OTHER_TRANSPORTS = ("dir:", "containers-storage:", "ostree:", "sif:", "tarball:")
DOCKER_HUB = "docker.io"
#: Other names of Docker Hub's registry.
HUB_ALIASES = frozenset({"index.docker.io", "registry-1.docker.io"})
#: Hosts that are reached over plain HTTP unless TLS is asked for explicitly.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})


def valid_tag(tag: str) -> bool:
    """Whether ``tag`` is a tag in the distribution grammar (at most 128 characters)."""
    return bool(_TAG_RE.match(tag))


def valid_repository(name: str) -> bool:
    """Whether ``name`` is a repository path in the distribution grammar (lower-case
    components separated by ``/``, at most 255 characters)."""
    return 0 < len(name) <= 255 and all(_COMPONENT_RE.match(c) for c in name.split("/"))


def valid_registry(registry: str) -> bool:
    """Whether ``registry`` is ``HOST[:PORT]`` (a name, IPv4 or bracketed IPv6 literal)."""
    return bool(_HOST_RE.match(registry))


def is_registry_host(component: str) -> bool:
    """Whether the first component of a reference names a registry, as docker decides it:
    it has a ``.`` or ``:``, is an IPv6 literal, is ``localhost``, or has upper case."""
    return ("." in component or ":" in component or component.startswith("[")
            or component == "localhost" or component != component.lower())


def canonical_registry(registry: str) -> str:
    """``HOST[:PORT]`` as compared for identity: lower case, Docker Hub aliases folded."""
    host = registry.lower()
    return DOCKER_HUB if host in HUB_ALIASES else host


def host_of(registry: str) -> str:
    """The host of ``HOST[:PORT]`` without the port (``[::1]`` keeps its brackets)."""
    if registry.startswith("["):
        return registry.split("]", 1)[0] + "]"
    return registry.split(":", 1)[0]


@dataclass(frozen=True)
class LayoutRef:
    """An OCI image layout directory plus an optional tag (ref.name) or digest."""

    path: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        if self.digest:
            return f"oci:{self.path}@{self.digest}"
        if self.tag:
            return f"oci:{self.path}:{self.tag}"
        return f"oci:{self.path}"


    def pinned(self, digest: str) -> str:
        """``oci:DIR@DIGEST``: this layout pinned to a digest."""
        return str(LayoutRef(self.path, None, digest))


class ArchiveKind(StrEnum):
    """The two tar archive formats: ``docker save`` / ``docker load``'s, and a tar of an OCI
    image layout (buildah, podman, kaniko, ``skopeo copy oci-archive:``)."""

    DOCKER = "docker-archive"
    OCI = "oci-archive"


@dataclass(frozen=True)
class ArchiveRef:
    """A tar archive plus what selects an image in it.

    ``docker-archive:PATH[:REF]``: ``name`` is a normalised ``HOST/REPO:TAG`` (as a source it
    picks the image with that ``RepoTags`` entry, as a destination it is the tag written), or
    ``index`` picks the N-th image (``:@N``, as skopeo). ``oci-archive:PATH[:TAG|@DIGEST]``
    selects like an ``oci:`` layout.
    """

    kind: ArchiveKind
    path: str
    tag: str | None = None
    digest: str | None = None
    name: str | None = None
    index: int | None = None

    def __str__(self) -> str:
        text = f"{self.kind}:{self.path}"
        if self.kind == ArchiveKind.DOCKER:
            if self.name:
                text += f":{self.name}"
            elif self.index is not None:
                text += f":@{self.index}"
        elif self.digest:
            text += f"@{self.digest}"
        elif self.tag:
            text += f":{self.tag}"
        return text

    def pinned(self, digest: str) -> str:
        """``oci-archive:PATH@DIGEST``; a docker archive cannot name a digest: itself."""
        if self.kind == ArchiveKind.OCI:
            return str(ArchiveRef(self.kind, self.path, None, digest))
        return str(self)


@dataclass(frozen=True)
class RegistryRef:
    """A repository in a registry plus a tag and/or digest; ``registry`` is ``HOST[:PORT]``."""

    registry: str
    repository: str
    tag: str | None = "latest"
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest if there is one, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def host(self) -> str:
        """The registry host without the port (``[::1]`` keeps its brackets)."""
        return host_of(self.registry)

    @property
    def name(self) -> str:
        """``registry/repository`` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> LayoutRef | ArchiveRef | RegistryRef:
    """Parse a user-given reference; raise UsageError on anything unsupported or malformed."""
    if text.startswith("oci:"):
        return _parse_layout(text)
    if text.startswith(("docker-archive:", "oci-archive:")):
        return _parse_archive(text)
    if text.startswith("docker-daemon:"):
        raise UsageError(f"unsupported reference {text!r}: slimmer does not talk to a Docker "
                         f"daemon; run 'docker save IMAGE -o FILE.tar' and use "
                         f"docker-archive:FILE.tar, or push the image to a registry")
    if text.startswith(_OTHER_TRANSPORTS):
        transport = text.split(":", 1)[0]
        raise UsageError(f"unsupported reference {text!r}: transport {transport!r} is not "
                         f"supported (use oci:DIR[:TAG|@DIGEST], docker-archive:FILE[:REF], "
                         f"oci-archive:FILE[:TAG] or [docker://]HOST/REPO[:TAG])")
    return parse_registry_reference(text)


def _parse_archive(text: str) -> ArchiveRef:
    """``docker-archive:PATH[:REF]`` (split at the first colon, as skopeo does: the path cannot
    hold one) or ``oci-archive:PATH[:TAG|@DIGEST]`` (the rules of ``oci:``)."""
    transport, _, rest = text.partition(":")
    kind = ArchiveKind(transport)
    if kind == ArchiveKind.OCI:
        layout = _parse_layout("oci:" + rest, text)
        return ArchiveRef(kind, layout.path, layout.tag, layout.digest)
    path, sep, ref = rest.partition(":")
    if not path:
        raise UsageError(f"bad reference {text!r}: empty archive path")
    if not sep:
        return ArchiveRef(kind, path)
    if ref.startswith("@"):
        if not ref[1:].isdigit():
            raise UsageError(f"bad reference {text!r}: '@' must be followed by an image number")
        return ArchiveRef(kind, path, index=int(ref[1:]))
    try:
        named = parse_registry_reference(ref)
    except UsageError as exc:
        raise UsageError(f"bad reference {text!r}: {ref!r} is not NAME[:TAG] ({exc})") from exc
    if named.digest:
        raise UsageError(f"bad reference {text!r}: a docker-archive reference cannot name a "
                         f"digest (use NAME:TAG or @N)")
    return ArchiveRef(kind, path, name=str(named))


def familiar_name(name: str) -> str:
    """``docker.io/library/busybox:1`` as docker shows it (``busybox:1``), ``docker.io/a/b``
    as ``a/b``; other registries' names as they are."""
    hub = DOCKER_HUB + "/"
    if not name.startswith(hub):
        return name
    rest = name[len(hub):]
    if rest.startswith("library/") and "/" not in rest[len("library/"):]:
        return rest[len("library/"):]
    return rest


def _parse_layout(text: str, original: str | None = None) -> LayoutRef:
    rest = text[4:]
    text = original or text
    digest = tag = None
    if "@" in rest:
        rest, _, digest = rest.rpartition("@")
        try:
            check_digest(digest, "reference")
        except InputError as exc:
            raise UsageError(f"bad reference {text!r}: {exc}") from exc
    else:
        head, sep, last = rest.rpartition(":")
        # A colon after the last slash separates a tag (paths may contain colons elsewhere).
        if sep and "/" not in last:
            if not _TAG_RE.match(last):
                raise UsageError(f"bad reference {text!r}: invalid tag {last!r}")
            rest, tag = head, last
    if not rest:
        raise UsageError(f"bad reference {text!r}: empty directory")
    return LayoutRef(rest, tag, digest)


def parse_registry_reference(text: str) -> RegistryRef:
    """Parse ``[docker://]HOST[:PORT]/REPO[:TAG][@DIGEST]`` as docker does: a first component
    with a ``.`` or ``:`` (or ``localhost``) is the registry, otherwise Docker Hub is meant."""
    def bad(why: str) -> UsageError:
        return UsageError(f"bad reference {text!r}: {why}")

    rest = text[len("docker://"):] if text.startswith("docker://") else text
    if not rest:
        raise bad("empty reference")
    digest = None
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        try:
            check_digest(digest, "reference")
        except InputError as exc:
            raise bad(str(exc)) from exc
    tag = None
    head, sep, last = rest.rpartition(":")
    if sep and "/" not in last:
        if not _TAG_RE.match(last):
            raise bad(f"invalid tag {last!r}")
        rest, tag = head, last
    first, slash, remainder = rest.partition("/")
    if slash and is_registry_host(first):
        registry, repository = first, remainder
        if not _HOST_RE.match(registry):
            raise bad(f"invalid registry host {registry!r}")
    else:
        registry, repository = DOCKER_HUB, rest
    if registry in HUB_ALIASES:
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repository:
        repository = "library/" + repository
    if not repository:
        raise bad("empty repository name")
    if repository != repository.lower():
        raise bad("repository name must be lowercase")
    for component in repository.split("/"):
        if not _COMPONENT_RE.match(component):
            raise bad(f"invalid repository name component {component!r}")
    if len(registry) + 1 + len(repository) > 255:
        raise bad("name longer than 255 characters")
    if tag is None and digest is None:
        tag = "latest"
    return RegistryRef(registry, repository, tag, digest)
