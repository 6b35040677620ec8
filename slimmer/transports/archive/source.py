"""Read an image from a tar archive in place: ``oci-archive`` as an OCI layout whose files are
tar members, ``docker-archive`` from its ``manifest.json`` (the classic ``docker save`` shape,
``<id>/layer.tar``, and Docker 25+'s, whose members form an OCI layout too). Nothing is
extracted: the headers are indexed once and every blob is a fresh, digest-verifying stream
over its byte range of the file."""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import replace
from typing import BinaryIO, Sequence, cast

from slimmer.codec.compression import detect_compression
from slimmer.codec.tarindex import Member, TarIndex
from slimmer.errors import BlobError, InputError
from slimmer.oci.digest import VerifyingReader, sha256_digest, short
from slimmer.oci.image import Opener, Root
from slimmer.oci.loader import ImageLoader
from slimmer.oci.media import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_LAYER_TAR,
    DOCKER_MANIFEST,
    GZIP,
    NONE,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_LAYER_TAR,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    ZSTD,
    Compression,
)
from slimmer.oci.model import Descriptor, ImageConfig, Platform, dump_json
from slimmer.oci.refs import ArchiveRef
from slimmer.transports.archive.dockerjson import (
    MANIFEST_JSON,
    MANIFEST_JSON_LIMIT,
    parse_manifest_json,
    select_image,
)
from slimmer.transports.layout.source import SMALL_BLOB_LIMIT, LayoutSource

_BLOB_NAME = re.compile(r"^blobs/sha256/([a-f0-9]{64})$")
_HASH_CHUNK = 1 << 20
_DOCKER_TYPES = {NONE: DOCKER_LAYER_TAR, GZIP: DOCKER_LAYER_GZIP}
_OCI_TYPES = {NONE: OCI_LAYER_TAR, GZIP: OCI_LAYER_GZIP, ZSTD: OCI_LAYER_ZSTD}


class ArchiveFiles:
    """``LayoutFiles`` over the members of a tar archive."""

    def __init__(self, index: TarIndex) -> None:
        self.index = index

    def read(self, name: str, limit: int, what: str) -> bytes:
        if self.index.get(name) is None:
            raise InputError(f"{what}: missing (not an OCI image layout?)")
        return self.index.read(name, limit, what)

    def open(self, name: str, size: int, what: str) -> BinaryIO:
        member = self.index.get(name)
        if member is None:
            raise BlobError(f"{what}: missing")
        if member.size != size:
            raise BlobError(f"{what}: blob is {member.size} bytes, descriptor says {size}")
        return self.index.open(member, what)

    def size(self, name: str) -> int | None:
        member = self.index.get(name)
        return member.size if member is not None else None


class OciArchiveSource(LayoutSource):
    """A ``Source`` for ``oci-archive:FILE[:TAG|@DIGEST]``: the layout inside the tar."""

    def __init__(self, ref: ArchiveRef) -> None:
        self._tar = TarIndex(ref.path, f"reading {ref.kind}:{ref.path}")
        super().__init__(ref, ArchiveFiles(self._tar))

    def has_document(self, descriptor: Descriptor) -> bool:
        """Whether the archive holds the blob (``PartialStore``): ``docker save`` of one
        platform of a multi-platform image keeps the index but not the other manifests."""
        try:
            name = self._blob_name(descriptor.digest, "index entry")
        except InputError:
            return False
        return self._tar.get(name) is not None


class DockerArchiveSource:
    """A ``Source`` for ``docker-archive:FILE[:NAME:TAG|:@N]``.

    A docker archive has no manifest: one is made from ``manifest.json`` (Docker schema2; OCI
    when a layer is zstd), so the source digest is that of the made manifest. Uncompressed
    layers (what ``docker save`` writes) have their diff_id as digest; a compressed layer is
    named by its ``blobs/sha256/HEX`` member name or hashed once when resolved.
    """

    def __init__(self, ref: ArchiveRef) -> None:
        self.ref = ref
        self.name = str(ref)
        self._label = f"{ref.kind}:{ref.path}"
        self._tar = TarIndex(ref.path, f"reading {self._label}")
        self._documents: dict[str, bytes] = {}
        self._members: dict[str, Member] = {}

    def pinned(self, digest: str) -> str:
        return self.ref.pinned(digest)

    def open_blob(self, descriptor: Descriptor) -> BinaryIO:
        """A fresh stream of a layer member, checked against digest and size at EOF."""
        what = f"reading {self._label} blob {short(descriptor.digest)}"
        member = self._members.get(descriptor.digest)
        if member is None:
            raise BlobError(f"{what}: not in the archive")
        raw = self._tar.open(member, what)
        return cast(BinaryIO, VerifyingReader(raw, descriptor.digest, descriptor.size, what))

    def opener(self, descriptor: Descriptor) -> Opener:
        """A re-openable verified stream of a layer blob (``DocumentStore``)."""
        return functools.partial(self.open_blob, descriptor)

    def document(self, descriptor: Descriptor, kind: str) -> bytes:
        """The made manifest or the config bytes (``DocumentStore``)."""
        raw = self._documents.get(descriptor.digest)
        if raw is None or len(raw) != descriptor.size:
            raise InputError(f"reading {self._label} {kind} {short(descriptor.digest)}: "
                             f"not in the archive")
        return raw

    def resolve(self, platforms: Sequence[Platform] = ()) -> Root:
        """The image the reference selects, with a manifest made from ``manifest.json``."""
        what = f"reading {self._label} {MANIFEST_JSON}"
        if self._tar.get(MANIFEST_JSON) is None:
            hint = " (an OCI archive is read with oci-archive:)" \
                if self._tar.get("index.json") is not None else ""
            raise InputError(f"{what}: missing, not a docker archive{hint}")
        images = parse_manifest_json(self._tar.read(MANIFEST_JSON, MANIFEST_JSON_LIMIT, what),
                                     what)
        chosen = select_image(images, self.ref, self._label)
        cfg_what = f"reading {self._label} config {chosen.config}"
        config_raw = self._tar.read(chosen.config, SMALL_BLOB_LIMIT, cfg_what)
        config = ImageConfig.parse(config_raw, cfg_what)
        if len(config.diff_ids) != len(chosen.layers):
            raise InputError(f"{cfg_what}: {len(config.diff_ids)} diff_ids but manifest.json "
                             f"lists {len(chosen.layers)} layers")
        found = [self._layer(name, diff_id)
                 for name, diff_id in zip(chosen.layers, config.diff_ids)]
        oci = any(kind == ZSTD for kind, _ in found)
        types = _OCI_TYPES if oci else _DOCKER_TYPES
        layers = [replace(d, media_type=types[kind]) for kind, d in found]
        media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
        manifest = {"schemaVersion": 2, "mediaType": media_type,
                    "config": Descriptor(OCI_CONFIG if oci else DOCKER_CONFIG,
                                         sha256_digest(config_raw), len(config_raw)).to_json(),
                    "layers": [d.to_json() for d in layers]}
        raw = dump_json(manifest)
        self._documents = {sha256_digest(raw): raw, sha256_digest(config_raw): config_raw}
        descriptor = Descriptor(media_type, sha256_digest(raw), len(raw))
        return ImageLoader(self.name, self, label=self._label).resolve(descriptor, platforms,
                                                                       raw)

    def _layer(self, name: str, diff_id: str) -> tuple[Compression, Descriptor]:
        """The compression (from its first bytes) and descriptor of one layer member."""
        what = f"reading {self._label} layer {name}"
        member = self._tar.find(name, what)
        with self._tar.open(member, what) as stream:
            kind = detect_compression(stream.read(4))
        if kind == NONE:
            digest = diff_id
        else:
            match = _BLOB_NAME.match(member.name)
            digest = f"sha256:{match.group(1)}" if match else self._hash(member, what)
        self._members[digest] = member
        return kind, Descriptor("", digest, member.size)

    def _hash(self, member: Member, what: str) -> str:
        hasher = hashlib.sha256()
        with self._tar.open(member, what) as stream:
            while True:
                chunk = stream.read(_HASH_CHUNK)
                if not chunk:
                    break
                hasher.update(chunk)
        return "sha256:" + hasher.hexdigest()
