"""Options of registry access (credentials, TLS, plain-HTTP hosts, timeouts, retries) shared by
the registry source and sink; the CLI fills them from flags and environment variables."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import httpx

from slimmer.errors import UsageError
from slimmer.oci.refs import DOCKER_HUB, LOOPBACK_HOSTS, canonical_registry, host_of
from slimmer.version import slimmer_version

#: The host that actually serves Docker Hub's registry API.
DOCKER_HUB_API = "registry-1.docker.io"

Side = Literal["source", "dest"]


def default_user_agent() -> str:
    """``slimmer/VERSION``: the User-Agent of every registry request unless set otherwise."""
    return f"slimmer/{slimmer_version()}"


@dataclass(frozen=True)
class Credentials:
    """A username with a password, or an identity (refresh) token from ``docker login``."""

    username: str
    password: str = ""
    identity_token: str | None = None

    def __repr__(self) -> str:  # never print secrets
        return f"Credentials(username={self.username!r}, password=***)"


def parse_creds(text: str, flag: str = "--creds") -> Credentials:
    """``USER:PASS`` (the password may contain colons) -> Credentials; UsageError otherwise."""
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise UsageError(f"{flag} must be USER:PASSWORD")
    return Credentials(user, password)


@dataclass(frozen=True)
class RegistryOptions:
    """How to reach registries. ``tls_verify=None`` means: verify certificates, and reach
    loopback hosts (localhost, 127.0.0.1, [::1]) over plain HTTP unless ``ca_file`` is given;
    ``True``/``False`` force HTTPS with/without verification on every host but ``insecure``.
    ``user_agent`` is sent on every request (registry, token server, blob redirects)."""

    creds: str | None = None                # USER:PASS for both sides
    src_creds: str | None = None            # USER:PASS for the source registry
    dest_creds: str | None = None           # USER:PASS for the destination registry
    tls_verify: bool | None = None
    ca_file: str | None = None              # extra CA bundle (PEM) on top of the system CAs
    insecure: tuple[str, ...] = ()          # HOST or HOST:PORT reached over plain HTTP
    docker_config: bool = True              # also look in docker / containers auth files
    timeout: float = 60.0                   # seconds, per request (connect, read, write)
    retries: int = 3                        # extra attempts on connection errors, 429, 5xx
    backoff: float = 0.5                    # first retry delay in seconds, doubled each time
    max_retry_after: float = 30.0           # upper bound on an honoured Retry-After
    chunk_size: int = 8 << 20               # bytes per PATCH of a streamed upload
    transport: httpx.BaseTransport | None = None  # a test seam (httpx.MockTransport)
    user_agent: str = field(default_factory=default_user_agent)  # sent on every request
    #: The registries ``creds``/``src_creds``/``dest_creds`` are given for; empty: whichever
    #: registry the side names (``slim push`` refuses one password for two hosts instead).
    creds_hosts: tuple[str, ...] = ()
    #: Credentials bound to one registry each: (HOST[:PORT], USER:PASS); they win over the rest.
    host_creds: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        agent = self.user_agent
        if not agent.strip() or not (agent.isascii() and agent.isprintable()):
            raise UsageError(f"user agent {agent!r} must be non-empty printable ASCII on "
                             "one line")

    def credentials(self, side: Side, registry: str | None = None) -> Credentials | None:
        """Explicit credentials for ``registry`` on one side: a ``host_creds`` entry for it,
        else ``src_creds``/``dest_creds``, else ``creds`` — the last three only when
        ``creds_hosts`` is empty or names ``registry``. Credentials are never handed out for
        a host they were not given for."""
        host = canonical_registry(registry) if registry else None
        for bound, text in self.host_creds:
            if host is not None and canonical_registry(bound) == host:
                return parse_creds(text, f"credentials for {bound}")
        if self.creds_hosts and (host is None or host not in
                                 {canonical_registry(h) for h in self.creds_hosts}):
            return None
        if side == "source" and self.src_creds:
            return parse_creds(self.src_creds, "--src-creds")
        if side == "dest" and self.dest_creds:
            return parse_creds(self.dest_creds, "--dest-creds")
        return parse_creds(self.creds) if self.creds else None

    def check_sides(self, source: str | None, dest: str | None) -> None:
        """UsageError when ``creds`` would go to two different registries (source ``source``
        and destination ``dest``, HOST[:PORT] or None for a layout): a typo in a host name
        must not send the password to it. ``src_creds``/``dest_creds`` say it explicitly."""
        if not self.creds or self.creds_hosts or source is None or dest is None:
            return
        if self.src_creds or self.dest_creds:
            return
        if canonical_registry(source) != canonical_registry(dest):
            raise UsageError(f"--creds would send one password to {source} and to {dest}; "
                             "give --src-creds and --dest-creds (SLIM_SRC_CREDS, "
                             "SLIM_DEST_CREDS) for registries on different hosts")

    def plain_http(self, registry: str) -> bool:
        """True if ``registry`` (HOST[:PORT]) is to be reached over plain HTTP."""
        host = host_of(registry)
        if registry in self.insecure or host in self.insecure:
            return True
        return host in LOOPBACK_HOSTS and self.tls_verify is None and self.ca_file is None

    def base_url(self, registry: str) -> str:
        """``scheme://host[:port]`` of the registry API (Docker Hub's API host for docker.io)."""
        host = DOCKER_HUB_API if registry == DOCKER_HUB else registry
        return f"{'http' if self.plain_http(registry) else 'https'}://{host}"

    def ssl_context(self) -> ssl.SSLContext | bool:
        """What httpx gets as ``verify``: the system CAs plus ``ca_file``, or False."""
        if self.tls_verify is False:
            return False
        try:
            ctx = ssl.create_default_context()
            if self.ca_file:
                ctx.load_verify_locations(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"--ca-file {self.ca_file}: {exc}") from exc
        return ctx
