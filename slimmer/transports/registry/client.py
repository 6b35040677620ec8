"""A small OCI distribution-spec client: manifests by tag or digest, blob HEAD/GET, blob uploads
(monolithic, chunked, cross-repo mount) and manifest PUT. One instance per registry host."""

from __future__ import annotations

import hashlib
import json
import re

import httpx

from slimmer.errors import BlobError, RegistryError
from slimmer.oci.digest import sha256_digest, short
from slimmer.oci.media import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from slimmer.oci.refs import RegistryRef
from slimmer.transports.registry.credentials import find_credentials
from slimmer.transports.registry.options import Credentials, RegistryOptions, Side
from slimmer.transports.registry.session import Body, RegistrySession

#: Manifest types we ask for, most preferred first (never schema 1).
ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))
#: Largest manifest or index accepted from a registry.
MANIFEST_LIMIT = 4 << 20
MAX_REDIRECTS = 5
#: Pages a listing may have (catalog, tags) before we stop following it.
MAX_PAGES = 1000
#: The token scope of the registry catalog.
CATALOG_SCOPE = "registry:catalog:*"
_LINK_RE = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
OCTET = "application/octet-stream"


def _digest_of(data: bytes, algorithm: str) -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


class RegistryClient:
    """Distribution API calls against one registry; every call names what it is doing."""

    def __init__(self, session: RegistrySession) -> None:
        self.session = session
        self.registry = session.registry

    @classmethod
    def for_ref(cls, ref: RegistryRef, options: RegistryOptions, side: Side) -> "RegistryClient":
        """A client for ``ref``'s registry with the side's explicit credentials, else the ones
        stored for the repository by docker / podman login."""
        creds = options.credentials(side, ref.registry)
        if creds is None and options.docker_config:
            creds = find_credentials(ref.registry, ref.repository)
        return cls.open(ref.registry, options, creds)

    @classmethod
    def open(cls, registry: str, options: RegistryOptions,
             creds: Credentials | None) -> "RegistryClient":
        """A client with its own httpx.Client (built from ``options``)."""
        return cls(RegistrySession(registry, options, creds))

    def close(self) -> None:
        self.session.close()

    def _url(self, repository: str, kind: str, reference: str = "") -> str:
        return self.session.url(f"/v2/{repository}/{kind}/{reference}")

    # -- manifests ----------------------------------------------------------------------------

    def get_manifest(self, repository: str, reference: str, scopes: frozenset[str],
                     what: str) -> tuple[bytes, str, str]:
        """Exact bytes, media type (Content-Type) and digest of a manifest or index.

        The digest is checked against ``Docker-Content-Digest`` and, for a pull by digest,
        against the requested digest.
        """
        response = self.session.send("GET", self._url(repository, "manifests", reference),
                                     what=what, scopes=scopes, headers={"Accept": ACCEPT},
                                     stream=True)
        try:
            if response.status_code != 200:
                raise self.session.fail(response, what)
            raw = _read_limited(response, MANIFEST_LIMIT, what, raw=False)
        except httpx.HTTPError as exc:
            raise RegistryError(f"{what}: connection lost: {exc}") from exc
        finally:
            response.close()
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        digest = sha256_digest(raw)
        if ":" in reference:
            got = _digest_of(raw, reference.split(":", 1)[0])
            if got != reference:
                raise BlobError(f"{what}: content is {short(got)}, not the requested digest")
        header = response.headers.get("docker-content-digest", "")
        if header.startswith("sha256:") and header != digest:
            raise BlobError(f"{what}: registry says {short(header)} but the bytes are "
                            f"{short(digest)}")
        return raw, media_type, digest

    def put_manifest(self, repository: str, reference: str, raw: bytes, media_type: str,
                     scopes: frozenset[str], what: str) -> str:
        """PUT exact manifest bytes under a tag or digest; returns (and checks) the digest."""
        self.push_manifest(repository, reference, raw, media_type, scopes, what)
        return sha256_digest(raw)

    def push_manifest(self, repository: str, reference: str, raw: bytes, media_type: str,
                      scopes: frozenset[str], what: str) -> httpx.Headers:
        """Like ``put_manifest``, returning the reply's headers (``OCI-Subject`` says the
        registry indexed the manifest's ``subject`` for the referrers API)."""
        digest = sha256_digest(raw)
        response = self.session.send(
            "PUT", self._url(repository, "manifests", reference), what=what, scopes=scopes,
            headers={"Content-Type": media_type}, content=raw)
        response.close()
        if response.status_code not in (200, 201):
            raise self.session.fail(response, what)
        _check_stored(response, digest, what)
        return response.headers

    def get_referrers(self, repository: str, digest: str, scopes: frozenset[str],
                      what: str) -> bytes | None:
        """The referrers index of ``digest`` from the referrers API (distribution-spec 1.1), or
        None when the registry has no such API (it answers 404: a registry with the API
        answers an empty index for an unknown digest)."""
        response = self.session.send("GET", self._url(repository, "referrers", digest),
                                     what=what, scopes=scopes, headers={"Accept": OCI_INDEX},
                                     stream=True)
        try:
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise self.session.fail(response, what)
            media_type = response.headers.get("content-type", "").split(";")[0].strip()
            if media_type != OCI_INDEX:
                return None       # not the referrers API (e.g. a catch-all web page)
            return _read_limited(response, MANIFEST_LIMIT, what, raw=False)
        except httpx.HTTPError as exc:
            raise RegistryError(f"{what}: connection lost: {exc}") from exc
        finally:
            response.close()

    # -- listings -----------------------------------------------------------------------------

    def catalog(self, what: str, page: int = 1000) -> list[str]:
        """Every repository name the registry lists (``/v2/_catalog``, all pages)."""
        return self._list("/v2/_catalog", "repositories", frozenset({CATALOG_SCOPE}), what, page)

    def tags(self, repository: str, scopes: frozenset[str], what: str,
             page: int = 1000) -> list[str]:
        """Every tag of ``repository`` (``/v2/NAME/tags/list``, all pages)."""
        return self._list(f"/v2/{repository}/tags/list", "tags", scopes, what, page)

    def _list(self, path: str, key: str, scopes: frozenset[str], what: str,
              page: int) -> list[str]:
        """A paginated listing: follows ``Link: <...>; rel="next"`` on the registry's own
        origin only (never to another host, which would get our credentials)."""
        url = httpx.URL(self.session.url(path), params={"n": str(page)})
        origin = (url.scheme, url.host, url.port)
        out: list[str] = []
        for _ in range(MAX_PAGES):
            response = self.session.send("GET", str(url), what=what, scopes=scopes,
                                         stream=True)
            try:
                if response.status_code != 200:
                    raise self.session.fail(response, what)
                raw = _read_limited(response, MANIFEST_LIMIT, what, raw=False)
            except httpx.HTTPError as exc:
                raise RegistryError(f"{what}: connection lost: {exc}") from exc
            finally:
                response.close()
            try:
                names = json.loads(raw).get(key) or []
            except (ValueError, AttributeError) as exc:
                raise RegistryError(f"{what}: the registry sent a malformed listing") from exc
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise RegistryError(f"{what}: the registry sent a malformed listing")
            out.extend(names)
            following = _next_link(response.headers.get("link", ""))
            if following is None:
                return out
            url = response.url.join(following)
            if (url.scheme, url.host, url.port) != origin:
                raise RegistryError(f"{what}: the listing continues on another host "
                                    f"({url.host}); not followed")
        raise RegistryError(f"{what}: more than {MAX_PAGES} pages")

    # -- blobs --------------------------------------------------------------------------------

    def blob_size(self, repository: str, digest: str, scopes: frozenset[str],
                  what: str) -> int | None:
        """Size of a blob the repository has (HEAD), or None when it has not."""
        response = self.session.send("HEAD", self._url(repository, "blobs", digest),
                                     what=what, scopes=scopes)
        response.close()
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self.session.fail(response, what)
        try:
            return int(response.headers.get("content-length", "-1"))
        except ValueError:
            return -1

    def blob_response(self, repository: str, digest: str, scopes: frozenset[str], what: str,
                      offset: int = 0) -> httpx.Response:
        """An open streaming reply for a blob from ``offset`` (200, 206 or 416 for the caller).

        Redirects to blob storage are followed here; Authorization stays with the registry.
        """
        url = self._url(repository, "blobs", digest)
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        for _ in range(MAX_REDIRECTS + 1):
            response = self.session.send("GET", url, what=what, scopes=scopes,
                                         headers=headers, stream=True)
            if response.status_code in _REDIRECTS and "location" in response.headers:
                response.close()
                url = str(response.url.join(response.headers["location"]))
                continue
            if response.status_code not in (200, 206, 416):
                raise self.session.fail(response, what)
            return response
        raise RegistryError(f"{what}: more than {MAX_REDIRECTS} redirects")

    # -- uploads ------------------------------------------------------------------------------

    def start_upload(self, repository: str, scopes: frozenset[str], what: str,
                     mount: str | None = None, mount_from: str | None = None) -> str | None:
        """POST a new upload session and return its URL; with ``mount``/``mount_from`` try a
        cross-repository mount first and return None if the blob was mounted (201)."""
        params = {"mount": mount, "from": mount_from} if mount and mount_from else None
        response = self.session.send("POST", self._url(repository, "blobs/uploads"),
                                     what=what, scopes=scopes, params=params,
                                     headers={"Content-Length": "0"}, content=b"")
        response.close()
        if response.status_code == 201 and params:
            return None
        if response.status_code != 202 or "location" not in response.headers:
            raise self.session.fail(response, what)
        return str(response.url.join(response.headers["location"]))

    def patch_chunk(self, location: str, data: bytes, start: int, scopes: frozenset[str],
                    what: str) -> str:
        """PATCH one chunk at ``start``; returns the newest upload URL."""
        headers = {"Content-Type": OCTET, "Content-Length": str(len(data)),
                   "Content-Range": f"{start}-{start + len(data) - 1}"}
        response = self.session.send("PATCH", location, what=what, scopes=scopes,
                                     headers=headers, content=data)
        response.close()
        if response.status_code != 202:
            raise self.session.fail(response, what)
        return str(response.url.join(response.headers.get("location", location)))

    def finish_upload(self, location: str, digest: str, scopes: frozenset[str], what: str,
                      content: Body = b"", size: int = 0) -> None:
        """PUT ``?digest=`` to close an upload, optionally with the (remaining) content."""
        url = httpx.URL(location).copy_merge_params({"digest": digest})
        headers = {"Content-Type": OCTET, "Content-Length": str(size)}
        response = self.session.send("PUT", str(url), what=what, scopes=scopes,
                                     headers=headers, content=content)
        response.close()
        if response.status_code not in (201, 204):
            raise self.session.fail(response, what)
        _check_stored(response, digest, what)

    def upload(self, repository: str, digest: str, content: Body, size: int,
               scopes: frozenset[str], what: str) -> None:
        """Monolithic upload: POST then PUT ``?digest=`` with the whole body."""
        location = self.start_upload(repository, scopes, what)
        assert location is not None
        try:
            self.finish_upload(location, digest, scopes, what, content, size)
        except BaseException:
            self.cancel_upload(location, scopes, what)
            raise

    def cancel_upload(self, location: str, scopes: frozenset[str], what: str) -> None:
        """DELETE an upload session; failures are ignored (the registry expires it anyway)."""
        try:
            self.session.send("DELETE", location, what=what, scopes=scopes, retries=0).close()
        except (RegistryError, httpx.HTTPError):
            pass


def _next_link(header: str) -> str | None:
    """The ``rel="next"`` target of a Link header, or None."""
    match = _LINK_RE.search(header)
    return match.group(1) if match else None


def _read_limited(response: httpx.Response, limit: int, what: str, raw: bool = True) -> bytes:
    """The body of a streamed reply, refusing more than ``limit`` bytes; ``raw=False`` undoes
    a Content-Encoding (manifests are JSON documents that proxies may compress)."""
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RegistryError(f"{what}: {declared} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    total = 0
    for chunk in (response.iter_raw() if raw else response.iter_bytes()):
        total += len(chunk)
        if total > limit:
            raise RegistryError(f"{what}: more than the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _check_stored(response: httpx.Response, digest: str, what: str) -> None:
    """The registry's Docker-Content-Digest, when it sends one, must be what we sent."""
    header = response.headers.get("docker-content-digest", "")
    if header and header != digest:
        raise RegistryError(f"{what}: registry stored {short(header)}, expected {short(digest)}")
