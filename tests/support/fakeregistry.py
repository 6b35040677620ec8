"""An in-memory distribution registry behind ``httpx.MockTransport`` for unit tests of the
registry client, with switches for the misbehaviour real registries and networks show."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator

import httpx

from slimmer.transports.registry import RegistryOptions

HOST = "reg.test"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Body(httpx.SyncByteStream):
    """A body that is streamed like a network reply (httpx pre-reads plain ``content=``)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self._data


def _reply(status: int, data: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    headers = {**(headers or {}), "Content-Length": str(len(data))}
    return httpx.Response(status, stream=_Body(data), headers=headers)


class _Breaking(httpx.SyncByteStream):
    """Yields ``data`` then raises a ReadError, like a connection dropped mid-body."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self._data
        raise httpx.ReadError("connection reset by peer")


@dataclass
class FakeRegistry:
    """State and quirks; ``transport()`` gives the MockTransport to put in RegistryOptions."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    links: set[tuple[str, str]] = field(default_factory=set)   # (repository, digest)
    uploads: dict[str, tuple[str, bytearray]] = field(default_factory=dict)
    log: list[httpx.Request] = field(default_factory=list)
    refuse_patch: int | None = None       # status for every PATCH
    redirect_blobs: bool = False          # GET blob -> 307 to storage.test
    drop_blob_after: int | None = None    # first GET of a blob breaks after this many bytes
    truncate_blobs: int | None = None     # serve only this many bytes of every blob
    ignore_range: bool = False
    wrong_digest_header: bool = False
    fail_first: list[int] = field(default_factory=list)   # statuses to answer first
    retry_after: str | None = None
    basic: tuple[str, str] | None = None  # require this user/password
    bearer: bool = False                  # require tokens from auth.test
    token_ttl: int = 60
    tokens: list[dict[str, Any]] = field(default_factory=list)
    mountable: bool = True

    def options(self, **kw: Any) -> RegistryOptions:
        kw.setdefault("backoff", 0.001)
        return RegistryOptions(transport=httpx.MockTransport(self.handle),
                               insecure=(HOST,), docker_config=False, **kw)

    # -- helpers ------------------------------------------------------------------------------

    def add_blob(self, data: bytes, repository: str = "team/app") -> str:
        self.blobs[sha(data)] = data
        self.links.add((repository, sha(data)))
        return sha(data)

    def add_manifest(self, ref: str, raw: bytes, media_type: str) -> str:
        self.manifests[ref] = (raw, media_type)
        self.manifests[sha(raw)] = (raw, media_type)
        return sha(raw)

    def requests(self, method: str, fragment: str = "") -> list[httpx.Request]:
        return [r for r in self.log if r.method == method and fragment in str(r.url)]

    @staticmethod
    def _error(status: int, code: str, message: str,
               headers: dict[str, str] | None = None) -> httpx.Response:
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        return httpx.Response(status, content=body, headers=headers)

    # -- auth ---------------------------------------------------------------------------------

    def _token_endpoint(self, request: httpx.Request) -> httpx.Response:
        scopes = request.url.params.get_list("scope")
        if request.method == "POST":
            form = dict(x.split("=", 1) for x in request.content.decode().split("&"))
            scopes = urllib.parse.unquote_plus(form.get("scope", "")).split()
        auth = request.headers.get("authorization", "")
        self.tokens.append({"scopes": scopes, "auth": auth, "method": request.method})
        token = f"tok{len(self.tokens)}:" + " ".join(sorted(scopes))
        return httpx.Response(200, json={"token": token, "expires_in": self.token_ttl})

    def _authorized(self, request: httpx.Request, scope: str) -> httpx.Response | None:
        header = request.headers.get("authorization", "")
        if self.basic is not None:
            want = "Basic " + base64.b64encode(":".join(self.basic).encode()).decode()
            if header != want:
                return self._error(401, "UNAUTHORIZED", "authentication required",
                                   {"WWW-Authenticate": 'Basic realm="fake"'})
        if self.bearer:
            granted = header[len("Bearer "):].split(":", 1)[-1].split() \
                if header.startswith("Bearer tok") else []
            if scope not in granted and not any(
                    g.rsplit(":", 1)[0] == scope.rsplit(":", 1)[0]
                    and set(scope.rsplit(":", 1)[1].split(",")) <=
                    set(g.rsplit(":", 1)[1].split(",")) for g in granted):
                challenge = (f'Bearer realm="http://auth.test/token",service="fake",'
                             f'scope="{scope}"')
                return self._error(401, "UNAUTHORIZED", "authentication required",
                                   {"WWW-Authenticate": challenge})
        return None

    # -- the API ------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.log.append(request)
        request.read()
        if request.url.host == "auth.test":
            return self._token_endpoint(request)
        if request.url.host == "storage.test":
            if "authorization" in request.headers:
                return httpx.Response(400, text="Authorization sent to storage")
            return self._blob_get(request, request.url.path.rsplit("/", 1)[1])
        if self.fail_first:
            status = self.fail_first.pop(0)
            headers = {"Retry-After": self.retry_after} if self.retry_after else None
            return self._error(status, "UNAVAILABLE", "try later", headers)
        path = request.url.path
        m = re.match(r"^/v2/(.+?)/(manifests|blobs/uploads|blobs)/(.*)$", path)
        if not m:
            return httpx.Response(200 if path == "/v2/" else 404)
        repo, kind, rest = m.groups()
        push = request.method in ("POST", "PUT", "PATCH", "DELETE")
        denied = self._authorized(request, f"repository:{repo}:{'pull,push' if push else 'pull'}")
        if denied is not None:
            return denied
        if kind == "manifests":
            return self._manifest(request, repo, rest)
        if kind == "blobs/uploads":
            return self._upload(request, repo, rest)
        if (repo, rest) not in self.links:
            return self._error(404, "BLOB_UNKNOWN", "blob unknown to registry")
        if request.method == "HEAD":
            if rest not in self.blobs:
                return httpx.Response(404)
            return httpx.Response(200, headers={"Content-Length": str(len(self.blobs[rest]))})
        if self.redirect_blobs:
            return httpx.Response(307, headers={"Location": f"http://storage.test/b/{rest}"})
        return self._blob_get(request, rest)

    def _blob_get(self, request: httpx.Request, digest: str) -> httpx.Response:
        if digest not in self.blobs:
            return self._error(404, "BLOB_UNKNOWN", "blob unknown to registry")
        data = self.blobs[digest]
        if self.truncate_blobs is not None:
            data = data[:self.truncate_blobs]
        start = 0
        rng = request.headers.get("range")
        if rng and not self.ignore_range:
            start = int(rng[len("bytes="):].rstrip("-"))
            if start >= len(data):
                return httpx.Response(416)
            headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            return _reply(206, data[start:], headers)
        if self.drop_blob_after is not None:
            cut, self.drop_blob_after = self.drop_blob_after, None
            return httpx.Response(200, stream=_Breaking(data[:cut]))
        return _reply(200, data)

    def _manifest(self, request: httpx.Request, repo: str, ref: str) -> httpx.Response:
        if request.method == "PUT":
            raw = request.content
            media_type = request.headers["content-type"]
            if ref.startswith("sha256:") and sha(raw) != ref:
                return self._error(400, "DIGEST_INVALID", "digest mismatch")
            self.add_manifest(ref, raw, media_type)
            return httpx.Response(201, headers={"Docker-Content-Digest": sha(raw)})
        if ref not in self.manifests:
            return self._error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        raw, media_type = self.manifests[ref]
        header = sha(raw + b" ") if self.wrong_digest_header else sha(raw)
        return _reply(200, raw, {"Content-Type": media_type, "Docker-Content-Digest": header})

    def _upload(self, request: httpx.Request, repo: str, rest: str) -> httpx.Response:
        if request.method == "POST":
            mount = request.url.params.get("mount")
            source = (request.url.params.get("from", ""), mount)
            if mount and self.mountable and source in self.links:
                self.links.add((repo, mount))
                return httpx.Response(201, headers={"Docker-Content-Digest": mount})
            uid = uuid.uuid4().hex
            self.uploads[uid] = (repo, bytearray())
            return httpx.Response(202, headers={
                "Location": f"/v2/{repo}/blobs/uploads/{uid}?_state=0"})
        uid = rest
        if uid not in self.uploads:
            return self._error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown")
        buf = self.uploads[uid][1]
        state = request.url.params.get("_state")
        if request.method == "DELETE":
            del self.uploads[uid]
            return httpx.Response(204)
        if request.method == "PATCH":
            if self.refuse_patch is not None:
                return self._error(self.refuse_patch, "UNSUPPORTED", "no chunked uploads")
            if state != str(len(buf)):
                return self._error(400, "BLOB_UPLOAD_INVALID", "stale upload location")
            start, end = map(int, request.headers["content-range"].split("-"))
            if start != len(buf) or end - start + 1 != len(request.content):
                return httpx.Response(416)
            buf += request.content
            return httpx.Response(202, headers={
                "Location": f"/v2/{repo}/blobs/uploads/{uid}?_state={len(buf)}",
                "Range": f"0-{len(buf) - 1}"})
        if request.method == "PUT":
            buf += request.content
            digest = request.url.params["digest"]
            if sha(bytes(buf)) != digest:
                return self._error(400, "DIGEST_INVALID", "digest mismatch")
            self.blobs[digest] = bytes(buf)
            self.links.add((repo, digest))
            del self.uploads[uid]
            return httpx.Response(201, headers={"Docker-Content-Digest": digest})
        return httpx.Response(405)
