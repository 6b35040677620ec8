"""The profile data model: rules, profiles and match results (frozen, hashable, no behaviour)."""

from __future__ import annotations

from dataclasses import dataclass

from slimmer.oci.layer import FILE_KINDS

#: Entry kinds a rule can name (``Rule.types`` is a subset of these): the files of an image.
ENTRY_KINDS: tuple[str, ...] = tuple(str(kind) for kind in FILE_KINDS)

#: Content kinds ``sniff_content`` can report; ``Rule.content`` is a subset of these.
CONTENT_KINDS: tuple[str, ...] = (
    "safetensors", "pytorch-zip", "pytorch-legacy", "gguf", "onnx", "hdf5", "numpy", "numpy-zip",
    "pickle",
)


@dataclass(frozen=True)
class Rule:
    """One strip rule: entries matching ``strip`` (and the conditions) are removed unless some
    selected rule's ``keep`` glob matches them; ``keep`` globs protect entries of every kind.

    ``content`` and ``min_size`` only ever hold for regular files and hard links (judged by the
    file linked to); ``types`` still decides which of those two kinds the rule applies to.
    """

    id: str
    profile: str
    description: str
    strip: tuple[str, ...]
    keep: tuple[str, ...] = ()
    content: tuple[str, ...] = ()
    min_size: int = 0
    types: tuple[str, ...] = ENTRY_KINDS


@dataclass(frozen=True)
class Profile:
    """A named, ordered set of rules loaded from a TOML file (built-in or the user's)."""

    name: str
    description: str
    rules: tuple[Rule, ...]
    default: bool = False
    warning: str | None = None
    source: str = "builtin"


@dataclass(frozen=True)
class Match:
    """Result of matching one entry: the strip rule that selected it and, when it is not to be
    stripped after all, the keep rule that protected it."""

    rule: Rule
    kept_by: Rule | None = None

    def __repr__(self) -> str:
        kept = self.kept_by.id if self.kept_by else None
        return f"Match(rule={self.rule.id!r}, kept_by={kept!r})"

    @property
    def stripped(self) -> bool:
        """True when the entry is to be removed (a strip rule matched and no keep rule did)."""
        return self.kept_by is None
