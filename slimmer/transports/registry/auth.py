"""Registry authentication: the ``WWW-Authenticate`` challenge, HTTP basic, and bearer tokens
from the token server (docker token spec), cached by scope set and renewed when they expire."""

from __future__ import annotations

import base64
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import httpx

from slimmer.errors import AuthError, RegistryError
from slimmer.transports.registry.options import Credentials

#: Lifetime assumed when the token server does not say (the token spec's default).
DEFAULT_TOKEN_LIFETIME = 60.0
_TOKEN68 = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN_RE = re.compile(_TOKEN68)
_PARAM_RE = re.compile(r'\s*(' + _TOKEN68 + r')\s*=\s*("(?:[^"\\]|\\.)*"|' + _TOKEN68 + r')')

Send = Callable[..., httpx.Response]


def repository_scope(repository: str, actions: str) -> str:
    """The token scope ``repository:NAME:ACTIONS``."""
    return f"repository:{repository}:{actions}"


def _split_scope(scope: str) -> tuple[str, frozenset[str]]:
    resource, _, actions = scope.rpartition(":")
    return resource, frozenset(a for a in actions.split(",") if a)


def merge_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """One scope per resource with the union of its actions (``pull`` + ``push``:
    ``pull,push``)."""
    merged: dict[str, set[str]] = {}
    for scope in scopes:
        resource, actions = _split_scope(scope)
        if resource:
            merged.setdefault(resource, set()).update(actions)
    return frozenset(f"{r}:{','.join(sorted(a))}" for r, a in merged.items())


def covers(have: Iterable[str], need: Iterable[str]) -> bool:
    """True if a token granted ``have`` includes every action of ``need``."""
    granted: dict[str, frozenset[str]] = dict(_split_scope(s) for s in have)
    return all(actions <= granted.get(resource, frozenset())
               for resource, actions in map(_split_scope, need))


def parse_challenges(header: str) -> list[tuple[str, dict[str, str]]]:
    """``WWW-Authenticate`` -> [(scheme lowercased, {param: value})], in order."""
    out: list[tuple[str, dict[str, str]]] = []
    pos = 0
    while pos < len(header):
        if header[pos] in " ,\t":
            pos += 1
            continue
        param = _PARAM_RE.match(header, pos)
        if param and out:
            value = param.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            out[-1][1][param.group(1).lower()] = value
            pos = param.end()
            continue
        scheme = _TOKEN_RE.match(header, pos)
        if not scheme:
            break
        out.append((scheme.group(0).lower(), {}))
        pos = scheme.end()
    return out


@dataclass(frozen=True)
class _Token:
    value: str
    scopes: frozenset[str]
    expires: float


class Authenticator:
    """Produces the ``Authorization`` header for a request needing ``scopes`` and learns the
    scheme from 401 challenges. Thread-safe; one per registry client."""

    def __init__(self, registry: str, creds: Credentials | None, send: Send,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.creds = creds
        self._send = send
        self._clock = clock
        self._scheme: str | None = None
        self._realm = ""
        self._service = ""
        self._tokens: list[_Token] = []
        self._lock = threading.Lock()
        self._fetch_lock = threading.Lock()
        self.tokens_fetched = 0

    # -- headers ------------------------------------------------------------------------------

    def header(self, scopes: frozenset[str], what: str) -> str | None:
        """Authorization header value for a request needing ``scopes`` (None: anonymous)."""
        if self._scheme == "basic":
            return self._basic()
        if self._scheme == "bearer":
            return "Bearer " + self._token(scopes, what)
        return None

    def _basic(self) -> str | None:
        if self.creds is None or not self.creds.password:
            return None
        pair = f"{self.creds.username}:{self.creds.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def _cached(self, scopes: frozenset[str]) -> str | None:
        with self._lock:
            now = self._clock()
            self._tokens = [t for t in self._tokens if t.expires > now]
            for token in self._tokens:
                if covers(token.scopes, scopes):
                    return token.value
        return None

    def _token(self, scopes: frozenset[str], what: str) -> str:
        found = self._cached(scopes)
        if found is not None:
            return found
        with self._fetch_lock:  # one fetch at a time; others then find it in the cache
            found = self._cached(scopes)
            if found is not None:
                return found
            token = self._fetch(scopes, what)
            with self._lock:
                self._tokens.append(token)
            return token.value

    # -- challenges ---------------------------------------------------------------------------

    def challenge(self, response: httpx.Response, scopes: frozenset[str],
                  sent: str | None) -> frozenset[str] | None:
        """Learn from a 401 reply; the scopes to retry with, or None when retrying is futile."""
        challenges = dict(parse_challenges(response.headers.get("www-authenticate", "")))
        if "bearer" in challenges:
            params = challenges["bearer"]
            self._scheme = "bearer"
            self._realm = params.get("realm", self._realm)
            self._service = params.get("service", self._service)
            if sent and sent.startswith("Bearer "):
                with self._lock:   # refused (expired or too narrow): never offer it again
                    self._tokens = [t for t in self._tokens if "Bearer " + t.value != sent]
            asked = params.get("scope", "").split()
            return merge_scopes([*scopes, *asked])
        if "basic" in challenges:
            self._scheme = "basic"
            if self._basic() is None or (sent or "").startswith("Basic "):
                return None
            return scopes
        return None

    def denied(self, response: httpx.Response, what: str) -> AuthError:
        """The error for a 401/403 we cannot get past, naming what is missing."""
        if self._scheme == "basic" and self._basic() is None:
            why = f"{self.registry} requires a login (use --creds or docker login)"
        elif self._scheme == "basic":
            why = f"{self.registry} refused the username or password"
        elif response.status_code == 403:
            why = f"{self.registry} denied access (HTTP 403)"
        else:
            who = f"user {self.creds.username!r}" if self.creds else "anonymous access"
            why = f"{self.registry} denied access for {who}"
        detail = _error_detail(response)
        return AuthError(f"{what}: {why}{': ' + detail if detail else ''}",
                         response.status_code)

    # -- token server -------------------------------------------------------------------------

    def _fetch(self, scopes: frozenset[str], what: str) -> _Token:
        if not self._realm:
            raise AuthError(f"{what}: {self.registry} asked for a bearer token without a realm")
        realm_host = httpx.URL(self._realm).host
        ordered = sorted(scopes)
        started = self._clock()
        creds = self.creds
        if creds is not None and creds.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                    "client_id": "slimmer", "scope": " ".join(ordered)}
            if self._service:
                form["service"] = self._service
            response = self._send("POST", self._realm, what=what, data=form)
        else:
            params = [("service", self._service)] if self._service else []
            params += [("scope", s) for s in ordered]
            headers = {}
            if creds is not None and creds.password:
                params.append(("account", creds.username))
                headers["Authorization"] = self._basic() or ""
            response = self._send("GET", self._realm, what=what, params=params, headers=headers)
        self.tokens_fetched += 1
        if response.status_code in (401, 403):
            who = f"the credentials of {creds.username!r}" if creds else "anonymous access"
            raise AuthError(f"{what}: token server {realm_host} refused {who} "
                            f"(HTTP {response.status_code})", response.status_code)
        if response.status_code != 200:
            raise RegistryError(f"{what}: token server {realm_host} answered HTTP "
                                f"{response.status_code}", response.status_code)
        try:
            doc = response.json()
            value = doc.get("token") or doc.get("access_token")
            expires_in = doc.get("expires_in")
            lifetime = DEFAULT_TOKEN_LIFETIME if expires_in is None else float(expires_in)
        except (ValueError, AttributeError, TypeError) as exc:
            raise RegistryError(f"{what}: token server {realm_host} sent a malformed reply") \
                from exc
        if not isinstance(value, str) or not value:
            raise RegistryError(f"{what}: token server {realm_host} sent no token")
        # Renew a little before the end so a request never leaves with a dying token.
        margin = min(10.0, lifetime / 5)
        return _Token(value, scopes, started + lifetime - margin)


def _error_detail(response: httpx.Response) -> str:
    """``CODE: message`` of a distribution error body, or ''."""
    try:
        errors = response.json().get("errors") or []
        first = errors[0]
        return f"{first.get('code', '')}: {first.get('message', '')}".strip(": ")
    except Exception:  # noqa: BLE001 - any non-JSON or odd body means no detail
        return ""
