"""Run the real CNCF distribution registry (Debian's ``docker-registry``) for tests: plain
HTTP, htpasswd basic auth, TLS with a generated CA, or bearer tokens from a small in-test token
server; plus an httpx transport that counts what is sent and can stop the registry mid-push."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx

REGISTRY_BIN = shutil.which("docker-registry")
SKOPEO = shutil.which("skopeo")
HTPASSWD = shutil.which("htpasswd")


def missing() -> str | None:
    """Why the registry tests cannot run here, or None."""
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return "python package cryptography is missing (scripts/setup --test)"
    for name, path in (("docker-registry", REGISTRY_BIN), ("skopeo", SKOPEO),
                       ("htpasswd", HTPASSWD)):
        if path is None:
            return f"{name} is not installed (scripts/setup --test)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- certificates ---------------------------------------------------------------------------

@dataclass
class Pki:
    """A self-signed CA, a server certificate for 127.0.0.1/localhost, and their files."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def _name(cn: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: Any, issuer: str, issuer_key: Any, ca: bool,
          sans: list[Any] | None = None) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path) -> Pki:
    """Generate a CA and a server certificate signed by it (EC P-256 keys)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("slimmer test CA", ca_key, "slimmer test CA", ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = _cert("127.0.0.1", key, "slimmer test CA", ca_key, False, sans)
    pem = serialization.Encoding.PEM
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    pki.ca_file.write_bytes(ca.public_bytes(pem))
    pki.cert_file.write_bytes(cert.public_bytes(pem))
    pki.key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return pki


# -- token server ---------------------------------------------------------------------------

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """The docker token protocol in front of a registry configured with ``auth: token``.

    Tokens are RS256 JWTs with the signing certificate in ``x5c`` (distribution verifies the
    chain against ``rootcertbundle``). ``exp`` is set ``ttl - 60`` s ahead because the registry
    allows 60 s of clock skew, so a token really stops working after ``ttl`` seconds.
    """

    directory: Path
    users: dict[str, str] = field(default_factory=dict)
    ttl: int = 60
    anonymous_pull: bool = False
    service: str = "slimmer-test-registry"
    issuer: str = "slimmer-test-issuer"
    refuse_after: int | None = None          # refuse every request after this many tokens
    advertised_ttl: int | None = None        # expires_in to announce (default: ttl)
    requests: list[dict[str, Any]] = field(default_factory=list)
    refresh_tokens: dict[str, str] = field(default_factory=dict)

    def start(self) -> "TokenServer":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = _cert("token signer", self._key, "token signer", self._key, True)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.cert_file = self.directory / "token-signer.pem"
        self.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                server._answer(self, query.get("scope", []), self._basic_user(), None)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                user = server.refresh_tokens.get((form.get("refresh_token") or [""])[0])
                scopes = " ".join(form.get("scope", [])).split()
                server._answer(self, scopes, user if user else False, form)

            def _basic_user(self) -> str | None | bool:
                header = self.headers.get("authorization", "")
                if not header.startswith("Basic "):
                    return None
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                return user if server.users.get(user) == password else False

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _answer(self, handler: BaseHTTPRequestHandler, scopes: list[str],
                user: str | None | bool, form: dict[str, list[str]] | None) -> None:
        self.requests.append({"scopes": list(scopes), "user": user, "method": handler.command})
        issued = sum(1 for r in self.requests if r.get("issued"))
        refused = (user is False or (user is None and not self.anonymous_pull)
                   or (self.refuse_after is not None and issued >= self.refuse_after))
        if refused:
            body = b'{"details":"access denied"}'
            handler.send_response(401)
        else:
            self.requests[-1]["issued"] = True
            token = self.token(scopes, user if isinstance(user, str) else None)
            key = "access_token" if form is not None else "token"
            ttl = self.ttl if self.advertised_ttl is None else self.advertised_ttl
            body = json.dumps({key: token, "expires_in": ttl,
                               "issued_at": datetime.datetime.now(
                                   datetime.timezone.utc).isoformat()}).encode()
            handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def token(self, scopes: list[str], user: str | None) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            allowed = actions.split(",") if user else [a for a in actions.split(",")
                                                       if a == "pull"]
            access.append({"type": kind, "name": name, "actions": allowed})
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": user or "", "aud": self.service,
                  "exp": now + self.ttl - 60, "nbf": now - 1, "iat": now,
                  "jti": hashlib.sha256(os.urandom(16)).hexdigest(), "access": access}
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        signing_input = (_b64url(json.dumps(header).encode()) + "." +
                         _b64url(json.dumps(claims).encode()))
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(signature)

    def reset(self, **settings: Any) -> None:
        """Forget past requests and change settings (ttl, refuse_after, ...)."""
        self.requests.clear()
        self.ttl, self.refuse_after, self.advertised_ttl = 60, None, None
        for name, value in settings.items():
            setattr(self, name, value)

    def issued_scopes(self) -> list[list[str]]:
        """The scope parameters of every token request that got a token."""
        return [r["scopes"] for r in self.requests if r.get("issued")]


# -- the registry ---------------------------------------------------------------------------

@dataclass
class Registry:
    """One ``docker-registry serve`` process on 127.0.0.1 with its storage in ``directory``."""

    directory: Path
    auth: str = "none"                       # none | htpasswd | token
    users: dict[str, str] = field(default_factory=dict)
    pki: Pki | None = None
    token_server: TokenServer | None = None
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def storage(self) -> Path:
        return self.directory / "storage"

    def _config(self) -> str:
        lines = ["version: 0.1", "log:", "  level: info", "  accesslog:", "    disabled: true",
                 "storage:", "  filesystem:", f"    rootdirectory: {self.storage}",
                 "  delete:", "    enabled: true", "  maintenance:", "    uploadpurging:",
                 "      enabled: false", "http:", f"  addr: 127.0.0.1:{self.port}",
                 "  secret: slimmer-test-secret"]
        if self.pki is not None:
            lines += ["  tls:", f"    certificate: {self.pki.cert_file}",
                      f"    key: {self.pki.key_file}"]
        if self.auth == "htpasswd":
            htpasswd = self.directory / "htpasswd"
            htpasswd.write_text("")
            for user, password in self.users.items():
                subprocess.run([str(HTPASSWD), "-bB", str(htpasswd), user, password],
                               check=True, capture_output=True)
            lines += ["auth:", "  htpasswd:", "    realm: slimmer-test", f"    path: {htpasswd}"]
        elif self.auth == "token":
            ts = self.token_server
            assert ts is not None
            lines += ["auth:", "  token:", f"    realm: {ts.realm}", f"    service: {ts.service}",
                      f"    issuer: {ts.issuer}", f"    rootcertbundle: {ts.cert_file}"]
        return "\n".join(lines) + "\n"

    def start(self) -> "Registry":
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        config = self.directory / "config.yml"
        config.write_text(self._config())
        self.log = self.directory / "registry.log"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([str(REGISTRY_BIN), "serve", str(config)],
                                            stdout=log, stderr=subprocess.STDOUT)
        scheme = "https" if self.pki else "http"
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"{scheme}://{self.host}/v2/", verify=False, timeout=1)
                return self
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("docker-registry did not start: " +
                                       self.log.read_text()[-2000:]) from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Kill the registry (as a crash would); ``start`` again reuses port and storage."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def blob_data(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob's bytes."""
        hexpart = digest.split(":", 1)[1]
        return (self.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart /
                "data")


def run_registry(directory: Path, **kw: Any) -> Iterator[Registry]:
    """Generator for fixtures: a started registry, stopped afterwards."""
    registry = Registry(directory, **kw).start()
    try:
        yield registry
    finally:
        registry.stop()


# -- a transport that watches (and can break) the traffic ------------------------------------

class _CountingStream(httpx.SyncByteStream):
    def __init__(self, inner: Any, add: Callable[[int], None]) -> None:
        self._inner = inner
        self._add = add

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._add(len(chunk))
            yield chunk


class WatchingTransport(httpx.BaseTransport):
    """Counts requests and request-body bytes; ``before`` runs before each request."""

    def __init__(self, verify: Any = True,
                 before: Callable[[httpx.Request, int], None] | None = None) -> None:
        self._inner = httpx.HTTPTransport(verify=verify)
        self._before = before
        self._lock = threading.Lock()
        self.log: list[tuple[str, str]] = []
        self.upload_bytes = 0          # body bytes sent to /blobs/uploads/ (PATCH, PUT, POST)

    def _add(self, n: int) -> None:
        with self._lock:
            self.upload_bytes += n

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.log.append((request.method, request.url.raw_path.decode()))
            count = len(self.log)
        if self._before is not None:
            self._before(request, count)
        if "/blobs/uploads" in request.url.path:
            request.stream = _CountingStream(request.stream, self._add)
        return self._inner.handle_request(request)

    def close(self) -> None:
        """Kept open: the source's and the sink's clients share this transport."""

    def count(self, method: str, fragment: str = "") -> int:
        """Requests sent with ``method`` whose path and query contain ``fragment``."""
        with self._lock:
            return sum(1 for m, p in self.log if m == method and fragment in p)


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run skopeo (no policy file needed: an insecure-accept-anything policy is passed)."""
    policy = Path(os.environ.get("TMPDIR", "/tmp")) / "slimmer-test-policy.json"
    if not policy.exists():
        policy.write_text('{"default":[{"type":"insecureAcceptAnything"}]}')
    cmd = [str(SKOPEO), "--policy", str(policy), *args]
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)
