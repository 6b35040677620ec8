"""One HTTP session per registry host: timeouts, retries with backoff (connection errors, 429,
5xx, Retry-After), authentication on 401, and conversion of failures into RegistryError."""

from __future__ import annotations

import email.utils
import ssl
import time
from typing import Any, Callable, Iterable, Iterator

import httpx

from slimmer.errors import AuthError, NotFoundError, RegistryError
from slimmer.transports.registry.auth import Authenticator, _error_detail
from slimmer.transports.registry.options import Credentials, RegistryOptions

#: Statuses worth another try after a pause.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
Body = bytes | Callable[[], Iterable[bytes]] | None


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _tls_failure(exc: BaseException) -> str:
    """The TLS error behind a transport error (never worth a retry), or ''."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return getattr(seen, "verify_message", None) or seen.reason or str(seen)
        seen = seen.__cause__ or seen.__context__
    return ""


def describe(exc: httpx.TransportError) -> str:
    """Short text for a transport failure (the exception text, or its class name)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class RegistrySession:
    """Sends requests to one registry (and its token server / blob storage redirects).

    ``Authorization`` is only ever sent to the registry's own origin. Bodies are bytes or a
    factory of byte chunks, so a request can be sent again after a retry or a 401.
    """

    def __init__(self, registry: str, options: RegistryOptions, creds: Credentials | None,
                 http: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.registry = registry
        self.options = options
        self.base_url = options.base_url(registry)
        self.http = http or new_http_client(options)
        self.auth = Authenticator(registry, creds, self._send_plain)
        self._origin = _origin(httpx.URL(self.base_url))
        self._sleep = sleep

    def url(self, path: str) -> str:
        """Absolute URL of an API path (``/v2/...``)."""
        return self.base_url + path

    def close(self) -> None:
        self.http.close()

    # -- sending ------------------------------------------------------------------------------

    def _send_plain(self, method: str, url: str, *, what: str, **kw: Any) -> httpx.Response:
        """Send without registry auth (token server requests); retries apply, body is read."""
        return self.send(method, url, what=what, authenticate=False, **kw)

    def send(self, method: str, url: str, *, what: str, scopes: frozenset[str] = frozenset(),
             headers: dict[str, str] | None = None, content: Body = None,
             params: Any = None, data: Any = None, stream: bool = False,
             authenticate: bool = True, retries: int | None = None) -> httpx.Response:
        """Send with retries and authentication; returns any final response (caller checks
        the status), or raises RegistryError when the host cannot be reached."""
        retries = self.options.retries if retries is None else retries
        attempt = 0
        auth_retries = 0
        target = httpx.URL(url)
        own = _origin(target) == self._origin
        while True:
            hdrs = dict(headers or {})
            sent_auth = None
            if authenticate and own:
                sent_auth = self.auth.header(scopes, what)
                if sent_auth:
                    hdrs["Authorization"] = sent_auth
            body = content() if callable(content) else content
            request = self.http.build_request(method, target, headers=hdrs, content=body,
                                              params=params, data=data)
            try:
                response = self.http.send(request, stream=stream)
            except httpx.TransportError as exc:
                if _tls_failure(exc):
                    raise RegistryError(
                        f"{what}: TLS with {target.host} failed: {_tls_failure(exc)} (use "
                        f"--ca-file FILE, or --insecure-registry {self.registry} for plain "
                        f"HTTP)", temporary=False) from exc
                if attempt < retries:
                    self._sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                raise RegistryError(f"{what}: connection to {target.host} failed: "
                                    f"{describe(exc)} (after {attempt + 1} attempts)") from exc
            status = response.status_code
            if status == 401 and authenticate and own:
                response.read()
                response.close()
                retry = self.auth.challenge(response, scopes, sent_auth)
                if retry is not None and (auth_retries == 0 or retry != scopes) \
                        and auth_retries < 3:
                    scopes = retry
                    auth_retries += 1
                    continue
                raise self.auth.denied(response, what)
            if status in RETRY_STATUSES and attempt < retries:
                delay = _retry_after(response)
                delay = self._backoff(attempt) if delay is None else \
                    min(delay, self.options.max_retry_after)
                response.close()
                self._sleep(delay)
                attempt += 1
                continue
            return response

    def _backoff(self, attempt: int) -> float:
        return float(self.options.backoff * (2 ** attempt))

    # -- replies ------------------------------------------------------------------------------

    def fail(self, response: httpx.Response, what: str) -> RegistryError:
        """The error for an unexpected reply (the body is read for the registry's message)."""
        try:
            response.read()
        except httpx.HTTPError:
            pass
        response.close()
        status = response.status_code
        detail = _error_detail(response)
        text = f"{what}: {detail or response.reason_phrase or 'error'} (HTTP {status})"
        if status == 404:
            return NotFoundError(text, status)
        if status in (401, 403):
            return AuthError(text, status)
        return RegistryError(text, status)


def iter_file(path_or_file: Any, chunk: int = 1 << 20) -> Callable[[], Iterator[bytes]]:
    """A body factory that streams an open binary file from its start on every call."""
    def gen() -> Iterator[bytes]:
        path_or_file.seek(0)
        while True:
            data = path_or_file.read(chunk)
            if not data:
                return
            yield data
    return gen


def new_http_client(options: RegistryOptions) -> httpx.Client:
    """The httpx client for one registry: timeouts on every phase, no automatic redirects
    (blob redirects are followed by hand), our own TLS context (system CAs + --ca-file),
    ``options.user_agent`` as the User-Agent."""
    timeout = httpx.Timeout(options.timeout, connect=min(options.timeout, 15.0))
    headers = {"User-Agent": options.user_agent}
    if options.transport is not None:
        return httpx.Client(transport=options.transport, timeout=timeout, headers=headers,
                            follow_redirects=False)
    return httpx.Client(verify=options.ssl_context(), timeout=timeout, headers=headers,
                        follow_redirects=False)
