"""The profile data model: rules, profiles and match results (frozen, hashable, no behaviour)."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    ``if_image_has`` / ``unless_image_has`` make the whole rule depend on the image: it applies
    only when some path of the image's final tree matches one of the first, and none matches
    one of the second (``Matcher.for_image`` decides; an undecided matcher leaves it out).
    They are left out of ``repr`` (which the options digest reads) and digested on their own
    when set, so the digests of rules without them stay what they were.
    """

    id: str
    profile: str
    description: str
    strip: tuple[str, ...]
    keep: tuple[str, ...] = ()
    content: tuple[str, ...] = ()
    min_size: int = 0
    types: tuple[str, ...] = ENTRY_KINDS
    if_image_has: tuple[str, ...] = field(default=(), repr=False)
    unless_image_has: tuple[str, ...] = field(default=(), repr=False)

    @property
    def conditional(self) -> bool:
        """True when whether the rule applies depends on what else the image holds."""
        return bool(self.if_image_has or self.unless_image_has)


#: Profile categories ``slim analyze`` knows: "ml" profiles are listed, with what each would
#: save, for images that look like machine-learning images.
CATEGORIES: tuple[str, ...] = ("ml",)


@dataclass(frozen=True)
class Profile:
    """A named, ordered set of rules loaded from a TOML file (built-in or the user's)."""

    name: str
    description: str
    rules: tuple[Rule, ...]
    default: bool = False
    warning: str | None = None
    source: str = "builtin"
    category: str | None = None


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
