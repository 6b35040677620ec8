"""Image references: ``oci:DIR[:TAG|@DIGEST]`` layouts (registry references come later)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .digest import check_digest
from .errors import InputError, UsageError

_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class LayoutRef:
    """An OCI image layout directory plus an optional tag (ref.name) or digest."""

    path: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        if self.digest:
            return f"oci:{self.path}@{self.digest}"
        if self.tag:
            return f"oci:{self.path}:{self.tag}"
        return f"oci:{self.path}"


def parse_reference(text: str) -> LayoutRef:
    """Parse a user-given reference; raise UsageError on anything unsupported or malformed."""
    if not text.startswith("oci:"):
        raise UsageError(f"unsupported reference {text!r}: expected oci:DIR[:TAG|@DIGEST]")
    rest = text[4:]
    digest = tag = None
    if "@" in rest:
        rest, _, digest = rest.rpartition("@")
        try:
            check_digest(digest, "reference")
        except InputError as exc:
            raise UsageError(f"bad reference {text!r}: {exc}") from exc
    else:
        head, sep, last = rest.rpartition(":")
        # A colon after the last slash separates a tag (paths may contain colons elsewhere).
        if sep and "/" not in last:
            if not _TAG_RE.match(last):
                raise UsageError(f"bad reference {text!r}: invalid tag {last!r}")
            rest, tag = head, last
    if not rest:
        raise UsageError(f"bad reference {text!r}: empty directory")
    return LayoutRef(rest, tag, digest)
