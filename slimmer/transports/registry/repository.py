"""One repository on one registry: the handle the registry source, the sink, trust and the hook
all use. It holds the client (session, auth) and the token scopes this work needs, and offers
the distribution-spec operations on manifests, blobs, uploads, mounts and referrers."""

from __future__ import annotations

import threading
from typing import BinaryIO, Mapping, Protocol, cast, runtime_checkable

import httpx

from slimmer.errors import AuthError, InputError, NotFoundError, OutputError
from slimmer.oci.digest import VerifyingReader, sha256_digest, short
from slimmer.oci.model import Descriptor, sniff_media_type
from slimmer.oci.refs import RegistryRef
from slimmer.transports.registry.auth import merge_scopes, repository_scope
from slimmer.transports.registry.client import RegistryClient
from slimmer.transports.registry.options import RegistryOptions, Side
from slimmer.transports.registry.session import Body

_CHUNK = 1 << 20
#: Content types that say nothing about the document; the JSON decides then.
GENERIC_TYPES = frozenset({"", "application/json", "text/plain", "application/octet-stream"})


class Repository:
    """``HOST/REPO`` with the access asked for (``pull``, or ``pull,push``).

    Scopes grow when the work needs more (a mount reads another repository), so one token
    serves every request. Thread-safe; ``close`` closes the client if this handle opened it.
    """

    def __init__(self, client: RegistryClient, ref: RegistryRef, push: bool = False,
                 options: RegistryOptions | None = None, own_client: bool = False) -> None:
        self.client = client
        self.ref = ref
        self.registry = ref.registry
        self.path = ref.repository
        self.name = ref.name
        self.options = options or client.session.options
        self.push = push
        self._own_client = own_client
        self._scopes = frozenset({repository_scope(ref.repository,
                                                   "pull,push" if push else "pull")})
        self._lock = threading.Lock()

    @classmethod
    def open(cls, ref: RegistryRef, options: RegistryOptions | None = None,
             side: Side = "source", push: bool = False) -> "Repository":
        """A handle with its own client, with the side's credentials (see ``RegistryClient``)."""
        options = options or RegistryOptions()
        return cls(RegistryClient.for_ref(ref, options, side), ref, push, options,
                   own_client=True)

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    def __enter__(self) -> "Repository":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def scopes(self) -> frozenset[str]:
        """The token scopes every request of this handle asks for."""
        return self._scopes

    def _add_scopes(self, more: frozenset[str]) -> None:
        with self._lock:
            self._scopes = merge_scopes([*self._scopes, *more])

    # -- manifests ----------------------------------------------------------------------------

    def get_manifest(self, reference: str, what: str) -> tuple[bytes, str, str]:
        """Exact bytes, media type and digest of a manifest or index (NotFoundError if none)."""
        return self.client.get_manifest(self.path, reference, self._scopes, what)

    def find_manifest(self, reference: str, what: str) -> tuple[bytes, str, str] | None:
        """Like ``get_manifest``, None when the repository has no such manifest."""
        try:
            return self.get_manifest(reference, what)
        except NotFoundError:
            return None

    def describe(self, reference: str, what: str) -> tuple[bytes, Descriptor]:
        """A manifest or index and its descriptor (media type from the reply or the JSON)."""
        raw, media_type, digest = self.get_manifest(reference, what)
        if media_type in GENERIC_TYPES:
            media_type = sniff_media_type(raw, what)
        return raw, Descriptor(media_type, digest, len(raw))

    def put_manifest(self, reference: str, raw: bytes, media_type: str,
                     what: str) -> Mapping[str, str]:
        """PUT exact manifest bytes under a tag or digest; returns the reply's headers."""
        return self.client.push_manifest(self.path, reference, raw, media_type, self._scopes,
                                         what)

    def referrers(self, digest: str, what: str) -> bytes | None:
        """The referrers API answer for ``digest``, or None where the registry has no API."""
        return self.client.get_referrers(self.path, digest, self._scopes, what)

    def tags(self, what: str) -> list[str]:
        """Every tag of this repository."""
        return self.client.tags(self.path, self._scopes, what)

    # -- blobs --------------------------------------------------------------------------------

    def blob_size(self, digest: str, what: str) -> int | None:
        """Size of a blob the repository has (HEAD), or None when it has not."""
        return self.client.blob_size(self.path, digest, self._scopes, what)

    def blob_response(self, digest: str, what: str, offset: int = 0) -> httpx.Response:
        """An open streaming reply for a blob from ``offset`` (for ``ResumingBlobStream``)."""
        return self.client.blob_response(self.path, digest, self._scopes, what, offset)

    def open_blob(self, digest: str, size: int | None, what: str) -> BinaryIO:
        """A fresh stream of the blob, resumed on dropped connections, verified at EOF."""
        from slimmer.transports.registry.blobstream import ResumingBlobStream
        raw = ResumingBlobStream(self, digest, size, what)
        return cast(BinaryIO, VerifyingReader(cast(BinaryIO, raw), digest, size, what))

    def read_blob(self, digest: str, limit: int, what: str, size: int | None = None,
                  error: type[Exception] = InputError) -> bytes:
        """A small blob's verified bytes; ``error`` when it is over ``limit`` bytes."""
        if size is not None and size > limit:
            raise error(f"{what}: {size} bytes is over the {limit}-byte limit")
        chunks: list[bytes] = []
        total = 0
        with self.open_blob(digest, size, what) as stream:
            while True:
                chunk = stream.read(_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > limit:
                    raise error(f"{what}: more than the {limit}-byte limit")
                chunks.append(chunk)
        return b"".join(chunks)

    def put_blob(self, digest: str, data: bytes, what: str) -> None:
        """Upload a small blob unless the repository has it."""
        if sha256_digest(data) != digest:
            raise OutputError(f"{what}: blob bytes do not match {short(digest)}")
        if self.blob_size(digest, what) is None:
            self.upload(digest, data, len(data), what)

    # -- uploads ------------------------------------------------------------------------------

    def start_upload(self, what: str) -> str:
        """POST a new upload session; its URL."""
        location = self.client.start_upload(self.path, self._scopes, what)
        assert location is not None
        return location

    def mount(self, digest: str, source: str, what: str) -> str | None:
        """Try to mount ``digest`` from repository ``source`` of the same registry: None if it
        was mounted, else the URL of the upload session to use instead. Without pull access
        to ``source`` the mount is skipped, not an error."""
        wanted = merge_scopes([*self._scopes, repository_scope(source, "pull")])
        try:
            location = self.client.start_upload(self.path, wanted, what, mount=digest,
                                                mount_from=source)
        except AuthError:
            return self.start_upload(what)
        self._add_scopes(wanted)
        return location

    def patch(self, location: str, data: bytes, start: int, what: str) -> str:
        """PATCH one chunk at ``start``; the newest upload URL."""
        return self.client.patch_chunk(location, data, start, self._scopes, what)

    def finish(self, location: str, digest: str, what: str) -> None:
        """PUT ``?digest=`` to close an upload whose bytes were all PATCHed."""
        self.client.finish_upload(location, digest, self._scopes, what)

    def upload(self, digest: str, content: Body, size: int, what: str) -> None:
        """Monolithic upload: POST then PUT ``?digest=`` with the whole body."""
        self.client.upload(self.path, digest, content, size, self._scopes, what)

    def cancel(self, location: str, what: str) -> None:
        """DELETE an upload session; failures are ignored (the registry expires it anyway)."""
        self.client.cancel_upload(location, self._scopes, what)


@runtime_checkable
class RegistryBacked(Protocol):
    """A source or sink that works on a registry repository (what trust needs to find the
    signatures and referrers next to an image)."""

    @property
    def repository(self) -> Repository: ...
