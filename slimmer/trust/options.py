"""What ``slim`` does about trust: keys to verify the source with, a key to sign the result with,
and whether to attach the report. One object for the library, the CLI and the hook's rules.

``TrustOptions`` holds key *paths* (or already loaded keys); :meth:`TrustOptions.load` reads them
once and returns an equal object holding the loaded keys, so a long-running caller (the hook)
can load at start-up and report a bad key or password before any job runs. ``slim`` calls
``load`` itself; loading loaded options is a no-op.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from slimmer.errors import UsageError

if TYPE_CHECKING:
    from slimmer.trust.keys import PrivateKey, PublicKey

KeyPath = str | os.PathLike[str]

#: Keys of the signature payload's ``optional`` section that slimmer sets itself.
RESERVED_ANNOTATIONS = frozenset({"source", "profiles", "merge", "compression", "report"})


def _pairs(value: Any, what: str) -> tuple[tuple[str, str], ...]:
    items: Iterable[Any] = value.items() if isinstance(value, Mapping) else value
    out: dict[str, str] = {}
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, str)
                                                                   for x in item)):
            raise UsageError(f"{what}: expected KEY=VALUE strings, got {item!r}")
        key, text = item
        if not key:
            raise UsageError(f"{what}: empty key")
        out[key] = text
    return tuple(sorted(out.items()))


def parse_annotation(text: str, flag: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> ``(KEY, VALUE)``; UsageError naming ``flag`` otherwise."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"{flag} must be KEY=VALUE, got {text!r}")
    return key, value


@dataclass(frozen=True)
class TrustOptions:
    """Verify the source, sign the result, attach the report (registry references only).

    ``verify_keys``: PEM public keys (paths or :class:`PublicKey`); when given, the source must
    carry a valid cosign signature by any one of them for the digest it resolved to, signed for
    its repository, or nothing is pushed.
    ``sign_key``: a PEM private key (path or :class:`PrivateKey`) that signs the pushed image's
    digest after it is tagged; its password comes from the environment variable *named*
    ``sign_key_password_env`` or from the file ``sign_key_password_file``.
    ``sign_annotations``: extra ``optional`` entries of the signed payload (``cosign -a``).
    ``attach_report``: push the JSON report as an artifact referring to the image; None means
    "yes for a registry destination".
    ``report_created``: RFC 3339 time recorded on the report artifact (None: now).
    """

    verify_keys: tuple[KeyPath | PublicKey, ...] = ()
    sign_key: KeyPath | PrivateKey | None = None
    sign_key_password_env: str | None = None
    sign_key_password_file: KeyPath | None = None
    sign_annotations: tuple[tuple[str, str], ...] = ()
    attach_report: bool | None = None
    report_created: str | None = None
    environ: Mapping[str, str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys: Any = self.verify_keys
        if isinstance(keys, (str, os.PathLike)) or not hasattr(keys, "__iter__"):
            keys = (keys,)  # one path, or one loaded key
        object.__setattr__(self, "verify_keys", tuple(keys))
        pairs = _pairs(self.sign_annotations, "sign annotations")
        reserved = sorted(k for k, _ in pairs if k in RESERVED_ANNOTATIONS)
        if reserved:
            raise UsageError(f"sign annotation {reserved[0]!r} is set by slimmer itself "
                             f"(reserved: {', '.join(sorted(RESERVED_ANNOTATIONS))})")
        object.__setattr__(self, "sign_annotations", pairs)
        if self.sign_key is None and (self.sign_key_password_env
                                      or self.sign_key_password_file):
            raise UsageError("a sign key password was given without a sign key")

    @property
    def active(self) -> bool:
        """True if anything is to be verified, signed or attached explicitly."""
        return bool(self.verify_keys or self.sign_key is not None or self.attach_report)

    @property
    def loaded(self) -> bool:
        from slimmer.trust.keys import (  # cryptography loads only when keys matter
            PrivateKey,
            PublicKey,
        )
        return (all(isinstance(k, PublicKey) for k in self.verify_keys)
                and (self.sign_key is None or isinstance(self.sign_key, PrivateKey)))

    def load(self) -> "TrustOptions":
        """These options with every key read and parsed (TrustError on a missing, unreadable
        or undecryptable key, or a wrong password)."""
        if self.loaded:
            return self
        from slimmer.trust.keys import (
            PrivateKey,
            PublicKey,
            load_private_key_file,
            load_public_key_file,
        )
        verify = tuple(k if isinstance(k, PublicKey) else load_public_key_file(k)
                       for k in self.verify_keys)
        sign = self.sign_key
        if sign is not None and not isinstance(sign, PrivateKey):
            sign = load_private_key_file(sign, self.sign_key_password_env,
                                         self.sign_key_password_file, self.environ)
        return dataclasses.replace(self, verify_keys=verify, sign_key=sign,
                                   sign_key_password_env=None, sign_key_password_file=None)

    @property
    def public_keys(self) -> tuple[PublicKey, ...]:
        """The loaded verification keys (call :meth:`load` first)."""
        self._need_loaded()
        from slimmer.trust.keys import PublicKey
        return tuple(k for k in self.verify_keys if isinstance(k, PublicKey))

    @property
    def private_key(self) -> PrivateKey | None:
        """The loaded signing key (call :meth:`load` first)."""
        self._need_loaded()
        from slimmer.trust.keys import PrivateKey
        return self.sign_key if isinstance(self.sign_key, PrivateKey) else None

    def _need_loaded(self) -> None:
        if not self.loaded:
            raise UsageError("TrustOptions keys are not loaded; call .load() first")
