"""Where images come from and go to: OCI layouts, tar archives (docker and OCI) and
registries, each with its source and sink side by side. ``open_source`` / ``open_sink`` turn
a reference string into one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slimmer.errors import UsageError
from slimmer.oci.image import Sink, Source
from slimmer.oci.refs import ArchiveKind, ArchiveRef, RegistryRef, parse_reference

if TYPE_CHECKING:
    from slimmer.transports.registry.options import RegistryOptions


def open_source(ref: str | Source, registry: RegistryOptions | None = None) -> Source:
    """A Source for a reference string (``oci:DIR[:TAG|@DIGEST]``, ``docker-archive:FILE``,
    ``oci-archive:FILE`` or ``HOST/REPO[:TAG]``) or a Source as is; ``registry`` says how to
    reach registries."""
    if not isinstance(ref, str):
        return ref
    parsed = parse_reference(ref)
    if isinstance(parsed, RegistryRef):
        from slimmer.transports.registry.source import RegistrySource
        return RegistrySource(parsed, registry)
    if isinstance(parsed, ArchiveRef):
        from slimmer.transports.archive.source import DockerArchiveSource, OciArchiveSource
        if parsed.kind == ArchiveKind.DOCKER:
            return DockerArchiveSource(parsed)
        return OciArchiveSource(parsed)
    from slimmer.transports.layout.source import LayoutSource
    return LayoutSource(parsed)


def open_sink(ref: str | Sink, registry: RegistryOptions | None = None) -> Sink:
    """A Sink for a destination reference string, or a Sink as is."""
    if not isinstance(ref, str):
        return ref
    parsed = parse_reference(ref)
    if parsed.digest:
        raise UsageError(f"destination {ref!r} cannot name a digest")
    if isinstance(parsed, RegistryRef):
        from slimmer.transports.registry.sink import RegistrySink
        return RegistrySink(parsed, registry)
    if isinstance(parsed, ArchiveRef):
        from slimmer.transports.archive.sink import ArchiveSink
        return ArchiveSink(parsed)
    from slimmer.transports.layout.sink import LayoutSink
    return LayoutSink(parsed)
