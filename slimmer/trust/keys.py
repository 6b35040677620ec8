"""Signing and verification keys: PEM in, small typed wrappers out.

Public interface
----------------
``load_public_key(data, what) -> PublicKey``
    A PEM ``PUBLIC KEY`` (SPKI; PKCS#1 ``RSA PUBLIC KEY`` also accepted).
``load_public_key_file(path) -> PublicKey``
``load_private_key(data, password, what) -> PrivateKey``
    PEM ``PRIVATE KEY`` (PKCS#8), ``ENCRYPTED PRIVATE KEY`` (PKCS#8 with a password),
    ``EC PRIVATE KEY`` (SEC1, optionally OpenSSL-encrypted) or ``RSA PRIVATE KEY`` (PKCS#1).
``load_private_key_file(path, password_env=None, password_file=None, environ=None) -> PrivateKey``
``read_password(password_env=None, password_file=None, environ=None) -> bytes | None``
    The password comes from the *name* of an environment variable or from a file path, never from
    a command-line value. A file's single trailing newline is dropped.

Supported algorithms, named as cosign uses them (``PublicKey.algorithm``):

* ``ecdsa-p256-sha256``: ECDSA on P-256 over SHA-256, ASN.1 DER signatures (cosign's default).
* ``rsa-pkcs1v15-sha256``: RSASSA-PKCS1-v1_5 with SHA-256, modulus >= 2048 bits. This is what
  cosign uses for RSA keys (sigstore ``LoadVerifier``; cosign docs: "For RSA, Cosign only supports
  RSA PKCS#1.5 padded keys").
* ``ed25519``: pure Ed25519 over the payload. (Recent cosign versions prefer Ed25519ph for some
  flows; ``cryptography`` has no Ed25519ph, so such signatures do not verify here.)

Other curves and key types are refused with a TrustError naming what was found.

cosign's own ``ENCRYPTED SIGSTORE PRIVATE KEY`` / ``ENCRYPTED COSIGN PRIVATE KEY`` files (scrypt +
NaCl secretbox) are recognised and refused with a one-line explanation of what to do instead:
slimmer does not use NaCl, and cosign has no command that exports its key as PKCS#8.

Every error is a :class:`slimmer.errors.TrustError` whose message names the key it was reading.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import Any, Mapping

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from slimmer.errors import TrustError

ECDSA_P256_SHA256 = "ecdsa-p256-sha256"
RSA_PKCS1V15_SHA256 = "rsa-pkcs1v15-sha256"
ED25519 = "ed25519"

MIN_RSA_BITS = 2048

_PEM_RE = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)

_COSIGN_LABELS = (b"ENCRYPTED SIGSTORE PRIVATE KEY", b"ENCRYPTED COSIGN PRIVATE KEY")
_PUBLIC_LABELS = (b"PUBLIC KEY", b"RSA PUBLIC KEY")
_PRIVATE_LABELS = (b"PRIVATE KEY", b"ENCRYPTED PRIVATE KEY", b"EC PRIVATE KEY", b"RSA PRIVATE KEY")

COSIGN_KEY_ADVICE = (
    "this is cosign's own format (scrypt + NaCl secretbox), which slimmer cannot decrypt without "
    "NaCl, and cosign has no command that exports it; sign with a PEM key instead, e.g. "
    "'openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out slim.key', and run "
    "'cosign import-key-pair --key slim.key' to use the same key pair with cosign")


@dataclass(frozen=True)
class PublicKey:
    """A verification key: ``key`` is the ``cryptography`` object, ``algorithm`` one of the names
    above, ``key_id`` the sha256 hex of its SubjectPublicKeyInfo DER (stable across PEM layouts),
    ``source`` where it came from (for messages)."""

    key: Any
    algorithm: str
    key_id: str
    source: str

    @property
    def short_id(self) -> str:
        """First 16 hex digits of ``key_id``, for human output."""
        return self.key_id[:16]

    def spki_pem(self) -> bytes:
        """The key as a PEM ``PUBLIC KEY`` (what ``cosign public-key`` prints)."""
        return self.key.public_bytes(serialization.Encoding.PEM,
                                     serialization.PublicFormat.SubjectPublicKeyInfo)

    def __str__(self) -> str:
        return f"{self.algorithm} key {self.short_id} ({self.source})"


@dataclass(frozen=True)
class PrivateKey:
    """A signing key with its matching :class:`PublicKey`."""

    key: Any
    algorithm: str
    public: PublicKey
    source: str

    def __repr__(self) -> str:  # never show key material
        return f"PrivateKey({self.algorithm}, {self.public.short_id}, {self.source!r})"


def _blocks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(label, whole PEM block) for every PEM block in ``data``, in order."""
    return [(m.group(1), m.group(0) + b"\n") for m in _PEM_RE.finditer(data)]


def _algorithm(pub: Any, what: str) -> str:
    if isinstance(pub, ec.EllipticCurvePublicKey):
        if not isinstance(pub.curve, ec.SECP256R1):
            raise TrustError(f"{what}: ECDSA curve {pub.curve.name} is not supported, use P-256")
        return ECDSA_P256_SHA256
    if isinstance(pub, rsa.RSAPublicKey):
        if pub.key_size < MIN_RSA_BITS:
            raise TrustError(f"{what}: RSA key of {pub.key_size} bits is too small "
                             f"(at least {MIN_RSA_BITS})")
        return RSA_PKCS1V15_SHA256
    if isinstance(pub, ed25519.Ed25519PublicKey):
        return ED25519
    raise TrustError(f"{what}: unsupported key type {type(pub).__name__}; "
                     "use ECDSA P-256, RSA or Ed25519")


def _wrap_public(pub: Any, source: str) -> PublicKey:
    algorithm = _algorithm(pub, source)
    der = pub.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return PublicKey(pub, algorithm, hashlib.sha256(der).hexdigest(), source)


def load_public_key(data: bytes, what: str = "public key") -> PublicKey:
    """Parse a PEM public key; raise TrustError saying what is wrong with it."""
    blocks = _blocks(data)
    if not blocks:
        raise TrustError(f"{what}: not a PEM file (no -----BEGIN ...----- block)")
    for label, block in blocks:
        if label in _PUBLIC_LABELS:
            try:
                pub = serialization.load_pem_public_key(block)
            except (ValueError, UnsupportedAlgorithm) as exc:
                raise TrustError(f"{what}: unreadable public key ({exc})") from exc
            return _wrap_public(pub, what)
    labels = ", ".join(label.decode() for label, _ in blocks)
    if any(label in _PRIVATE_LABELS or label in _COSIGN_LABELS for label, _ in blocks):
        raise TrustError(f"{what}: is a private key ({labels}); give the public key "
                         "(PEM 'PUBLIC KEY', e.g. cosign.pub)")
    raise TrustError(f"{what}: no PUBLIC KEY block, found {labels}")


def load_public_key_file(path: str | os.PathLike[str]) -> PublicKey:
    """Read and parse a PEM public key file."""
    return load_public_key(_read(path, "public key"), f"public key {os.fspath(path)}")


def load_private_key(data: bytes, password: bytes | None = None,
                     what: str = "private key") -> PrivateKey:
    """Parse a PEM private key, decrypting it with ``password`` if it is encrypted.

    A password given for an unencrypted key is ignored. Raises TrustError for a missing or wrong
    password, an unsupported key type, or a cosign-format encrypted key (with conversion advice).
    """
    blocks = _blocks(data)
    if not blocks:
        raise TrustError(f"{what}: not a PEM file (no -----BEGIN ...----- block)")
    for label, _ in blocks:
        if label in _COSIGN_LABELS:
            raise TrustError(f"{what}: cannot read '{label.decode()}': {COSIGN_KEY_ADVICE}")
    chosen = next((b for b in blocks if b[0] in _PRIVATE_LABELS), None)
    if chosen is None:
        labels = ", ".join(label.decode() for label, _ in blocks)
        raise TrustError(f"{what}: no private key block, found {labels}")
    label, block = chosen
    encrypted = label == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in block
    if encrypted and not password:
        raise TrustError(f"{what}: key is encrypted and no password was given "
                         "(use a password environment variable or file)")
    try:
        key = serialization.load_pem_private_key(block, password if encrypted else None)
    except TypeError as exc:  # encryption state not as the PEM header suggested
        raise TrustError(f"{what}: {exc}") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        if encrypted:
            raise TrustError(f"{what}: wrong password or corrupt key") from exc
        raise TrustError(f"{what}: unreadable private key ({exc})") from exc
    public = _wrap_public(key.public_key(), what)
    return PrivateKey(key, public.algorithm, public, what)


def load_private_key_file(path: str | os.PathLike[str], password_env: str | None = None,
                          password_file: str | os.PathLike[str] | None = None,
                          environ: Mapping[str, str] | None = None) -> PrivateKey:
    """Read a PEM private key file; the password (if any) comes from :func:`read_password`."""
    password = read_password(password_env, password_file, environ)
    what = f"private key {os.fspath(path)}"
    return load_private_key(_read(path, "private key"), password, what)


def read_password(password_env: str | None = None,
                  password_file: str | os.PathLike[str] | None = None,
                  environ: Mapping[str, str] | None = None) -> bytes | None:
    """The key password from the environment variable *named* ``password_env`` or from the file
    ``password_file`` (one trailing newline dropped); None if neither is given.

    A named variable that is unset is an error, so a typo does not silently mean "no password".
    """
    if password_env and password_file:
        raise TrustError("give the key password either by environment variable or by file, "
                         "not both")
    if password_env:
        env = os.environ if environ is None else environ
        if password_env not in env:
            raise TrustError(f"key password: environment variable {password_env} is not set")
        return env[password_env].encode()
    if password_file:
        raw = _read(password_file, "key password file")
        if raw.endswith(b"\r\n"):
            raw = raw[:-2]
        elif raw.endswith(b"\n"):
            raw = raw[:-1]
        return raw
    return None


def _read(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20)
    except OSError as exc:
        raise TrustError(f"reading {what} {os.fspath(path)}: {exc.strerror or exc}") from exc
