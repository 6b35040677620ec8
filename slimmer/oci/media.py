"""Media types and annotation keys of the OCI image spec and Docker schema2, and the layer
compressions they name; plain data that every stage can import."""

from __future__ import annotations

from enum import StrEnum


class Compression(StrEnum):
    """How a layer blob is compressed (detected from magic bytes, named by media types)."""

    ZSTD = "zstd"
    GZIP = "gzip"
    NONE = "none"


GZIP, ZSTD, NONE = Compression.GZIP, Compression.ZSTD, Compression.NONE
COMPRESSIONS = (ZSTD, GZIP, NONE)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST_TAR = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
LAYER_TYPES = frozenset({
    OCI_LAYER_TAR, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_LAYER_NONDIST_TAR, OCI_LAYER_NONDIST_GZIP,
    OCI_LAYER_NONDIST_ZSTD, DOCKER_LAYER_GZIP, DOCKER_LAYER_TAR, DOCKER_LAYER_FOREIGN,
})
DOCKER_TYPES = frozenset({DOCKER_MANIFEST, DOCKER_LIST, DOCKER_CONFIG, DOCKER_LAYER_GZIP,
                          DOCKER_LAYER_TAR, DOCKER_LAYER_FOREIGN})

ANNOT_REF_NAME = "org.opencontainers.image.ref.name"
ANNOT_BASE_DIGEST = "org.opencontainers.image.base.digest"
ANNOT_BASE_NAME = "org.opencontainers.image.base.name"
ANNOT_SOURCE_DIGEST = "io.slimmer.source.digest"
ANNOT_SOURCE_NAME = "io.slimmer.source.name"
ANNOT_OPTIONS_DIGEST = "io.slimmer.options.digest"
#: Marks an index entry whose layers are zstd, as containers/image (podman
#: ``--add-compression``) writes it; its clients prefer such an entry, others ignore it.
ANNOT_COMPRESSION_ZSTD = "io.github.containers.compression.zstd"

#: Layer types that are never rewritten (Docker foreign / OCI non-distributable layers).
FOREIGN_LAYER_TYPES = frozenset({DOCKER_LAYER_FOREIGN, OCI_LAYER_NONDIST_TAR,
                                 OCI_LAYER_NONDIST_GZIP, OCI_LAYER_NONDIST_ZSTD})


def layer_compression(media_type: str) -> Compression:
    """Compression a layer media type declares (readers still check the magic bytes)."""
    if media_type.endswith("+zstd"):
        return ZSTD
    if media_type in (OCI_LAYER_TAR, DOCKER_LAYER_TAR, OCI_LAYER_NONDIST_TAR):
        return NONE
    return GZIP
