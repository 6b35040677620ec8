"""Rules: which pushed repositories get a slim counterpart, where it goes, and with which
options. Also the inverse: whether a pushed reference looks like something a rule produced
(loop prevention).

Repository and tag globs are anchored name globs of ``slimmer.globs``: ``*`` matches within
one path component, ``**`` (a whole component) any number of components, ``?`` one character. Destination templates use ``{registry}``, ``{repo}``, ``{tag}`` and
``{digest}`` (the digest as a tag-safe ``sha256-HEX``); a template whose first component is
not a host (``{repo}:{tag}-slim``) stays on the source registry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Mapping, Sequence

from slimmer.errors import UsageError
from slimmer.globs import compile_name_glob, matches_name
from slimmer.oci.refs import is_registry_host, parse_registry_reference
from slimmer.options import SlimOptions
from slimmer.trust.options import TrustOptions
from slimmer.units import parse_size

PLACEHOLDERS = ("registry", "repo", "tag", "digest")
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
#: What each placeholder can expand to, for recognising produced references.
_PLACEHOLDER_PATTERNS = {"registry": r"[^/]+", "repo": r"[a-z0-9._/-]+",
                         "tag": r"[A-Za-z0-9_][A-Za-z0-9._-]*", "digest": r"sha256-[0-9a-f]{64}"}
#: Tags cosign and friends use for signatures, attestations and SBOMs: never images to slim.
DEFAULT_EXCLUDE_TAGS = ("sha256-*",)


def _full_template(template: str) -> str:
    """The template with ``{registry}/`` in front unless it names a registry itself."""
    first = template.split("/", 1)[0]
    if "/" in template and (first == "{registry}" or is_registry_host(first)):
        return template
    return "{registry}/" + template


def check_template(template: str) -> str:
    """Validate a destination template; returns it, or raises UsageError."""
    names = _PLACEHOLDER_RE.findall(template)
    unknown = [n for n in names if n not in PLACEHOLDERS]
    if unknown:
        raise UsageError(f"destination {template!r}: unknown placeholder {{{unknown[0]}}} "
                         f"(known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)})")
    if "{" in _PLACEHOLDER_RE.sub("", template) or "}" in _PLACEHOLDER_RE.sub("", template):
        raise UsageError(f"destination {template!r}: unbalanced braces")
    if ":" not in _PLACEHOLDER_RE.sub("x", template).rsplit("/", 1)[-1]:
        raise UsageError(f"destination {template!r} must end in a tag, e.g. "
                         "'{repo}:{tag}-slim' or 'slim/{repo}:{tag}'")
    sample = render_template(template, "registry.example:5000", "team/app", "1.0",
                             "sha256:" + "0" * 64)
    parse_registry_reference(sample)  # UsageError on a malformed result
    return template


def render_template(template: str, registry: str, repository: str, tag: str,
                    digest: str) -> str:
    """Fill a destination template (plain substitution, no format-string evaluation)."""
    values = {"registry": registry, "repo": repository, "tag": tag,
              "digest": digest.replace(":", "-", 1)}
    return _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], _full_template(template))


def template_regex(template: str) -> re.Pattern[str]:
    """A regex matching every ``REGISTRY/REPO:TAG`` the template can produce."""
    parts = []
    pos = 0
    full = _full_template(template)
    for m in _PLACEHOLDER_RE.finditer(full):
        parts.append(re.escape(full[pos:m.start()]))
        parts.append(_PLACEHOLDER_PATTERNS[m.group(1)])
        pos = m.end()
    parts.append(re.escape(full[pos:]))
    return re.compile("^" + "".join(parts) + "$")


@dataclass(frozen=True)
class Rule:
    """Repositories matching ``match`` (and a tag matching ``tags`` but none of
    ``exclude_tags``) are slimmed with ``options`` into ``destination``; ``trust`` (optional)
    verifies the source and signs the result as ``slim push --verify-key/--sign-key`` do."""

    match: str
    destination: str
    options: SlimOptions = field(default_factory=SlimOptions)
    tags: tuple[str, ...] = ("*",)
    exclude_tags: tuple[str, ...] = DEFAULT_EXCLUDE_TAGS
    name: str = ""
    trust: TrustOptions | None = None

    def __post_init__(self) -> None:
        check_template(self.destination)
        for pattern in (self.match, *self.tags, *self.exclude_tags):
            try:
                compile_name_glob(pattern)
            except ValueError as exc:
                raise UsageError(f"rule glob {pattern!r}: {exc}") from exc
        if not self.name:
            object.__setattr__(self, "name", self.match)

    def applies(self, repository: str, tag: str) -> bool:
        return (matches_name(self.match, repository)
                and any(matches_name(t, tag) for t in self.tags)
                and not any(matches_name(t, tag) for t in self.exclude_tags))

    def produces(self, reference: str) -> bool:
        """Whether ``REGISTRY/REPO:TAG`` could be this rule's output."""
        return bool(template_regex(self.destination).match(reference))

    def destination_host(self) -> str | None:
        """The registry the destination template names literally (None: the source's own
        registry, ``{registry}``, or a host built from placeholders)."""
        first = _full_template(self.destination).split("/", 1)[0]
        return None if "{" in first else first

    def destination_for(self, registry: str, repository: str, tag: str, digest: str) -> str:
        return render_template(self.destination, registry, repository, tag, digest)


class Verdict(StrEnum):
    """The kind of decision taken for one push."""

    MATCHED = "matched"              # a rule matched: a job is due
    PRODUCED = "produced"            # the push looks like a rule's own output: ignored
    NO_RULE = "no rule"              # no rule matches the repository and tag: ignored
    BAD_DESTINATION = "bad destination"  # the matching rule renders an invalid reference


@dataclass(frozen=True)
class Decision:
    """What to do with one push: a job (rule and destination), or why to ignore it."""

    rule: Rule | None
    destination: str | None
    verdict: Verdict
    reason: str


def decide(rules: Sequence[Rule], registry: str, repository: str, tag: str, digest: str,
           aliases: Sequence[str] = ()) -> Decision:
    """Pick the first rule for a push, unless the push looks like a rule's own output.

    ``aliases`` are other names of the same registry (the advertised host when the worker
    uses an override), all checked for produced references.
    """
    for name in (registry, *aliases):
        ref = f"{name}/{repository}:{tag}"
        for rule in rules:
            if rule.produces(ref):
                return Decision(None, None, Verdict.PRODUCED, f"produced by rule {rule.name!r}")
    for rule in rules:
        if rule.applies(repository, tag):
            dest = rule.destination_for(registry, repository, tag, digest)
            try:
                parse_registry_reference(dest)
            except UsageError as exc:
                return Decision(None, None, Verdict.BAD_DESTINATION, f"rule {rule.name!r}: {exc}")
            return Decision(rule, dest, Verdict.MATCHED, "matched")
    return Decision(None, None, Verdict.NO_RULE, "no rule matches")


def job_id(source: str, destination: str) -> str:
    """Stable id of the job that slims ``source`` (pinned by digest) into ``destination``."""
    return hashlib.sha256(f"{source}\n{destination}".encode()).hexdigest()[:20]


# -- options <-> plain data --------------------------------------------------------------------

_OPTION_FIELDS = {f.name: f for f in dataclasses.fields(SlimOptions)}
_TUPLE_FIELDS = {n for n, f in _OPTION_FIELDS.items() if str(f.type).startswith("tuple")}
#: The SlimOptions keys a rule or job accepts.
OPTION_NAMES = frozenset(_OPTION_FIELDS)


def options_from_mapping(data: Mapping[str, Any], base: SlimOptions | None = None,
                         where: str = "options") -> SlimOptions:
    """SlimOptions from a TOML table or JSON object (lists for tuple fields)."""
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in _OPTION_FIELDS:
            raise UsageError(f"{where}: unknown option {key!r} (known: "
                             f"{', '.join(sorted(_OPTION_FIELDS))})")
        if name in _TUPLE_FIELDS:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise UsageError(f"{where}: {key} must be a string or a list of strings")
            value = tuple(value)
        elif name == "merge_threshold" and isinstance(value, str):
            try:
                value = parse_size(value)
            except ValueError as exc:
                raise UsageError(f"{where}: merge_threshold: {exc}") from exc
        values[name] = value
    return dataclasses.replace(base or SlimOptions(), **values)


def options_to_mapping(options: SlimOptions) -> dict[str, Any]:
    """JSON-ready form of SlimOptions (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(options).items()}


# -- trust <-> plain data ----------------------------------------------------------------------

#: The keys of a rule that make its TrustOptions (the ``slim push`` trust flags).
TRUST_KEYS = ("verify_keys", "sign_key", "sign_key_password_env", "sign_key_password_file",
              "sign_annotations", "attach_report")
#: The entry of a job's options that records its rule's trust settings (paths only, no keys).
TRUST_RECORD = "trust"


def trust_from_mapping(data: Mapping[str, Any], where: str = "trust") -> TrustOptions | None:
    """TrustOptions from the trust keys of a rule table (None when it has none); key files
    are not read here (see ``TrustOptions.load``)."""
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in TRUST_KEYS:
            raise UsageError(f"{where}: unknown trust key {key!r} (known: "
                             f"{', '.join(TRUST_KEYS)})")
        if name == "verify_keys":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not value or \
                    not all(isinstance(v, str) and v for v in value):
                raise UsageError(f"{where}: verify_keys must be a list of key file paths")
            value = tuple(value)
        elif name == "sign_annotations":
            if not isinstance(value, dict) or not all(isinstance(v, str)
                                                      for v in value.values()):
                raise UsageError(f"{where}: sign_annotations must be a table of strings "
                                 "(KEY = \"VALUE\")")
        elif name == "attach_report":
            if not isinstance(value, bool):
                raise UsageError(f"{where}: attach_report must be true or false")
        elif not isinstance(value, str) or not value:
            raise UsageError(f"{where}: {name} must be a non-empty string")
        values[name] = value
    if not values:
        return None
    try:
        return TrustOptions(**values)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from exc


def _key_path(key: Any) -> str:
    """A key as configured: its path (or, for an already loaded key, where it came from)."""
    if isinstance(key, (str, os.PathLike)):
        return os.fspath(key)
    source = str(getattr(key, "source", "") or "loaded key")
    return source.removeprefix("public key ").removeprefix("private key ")


def trust_record(trust: TrustOptions | None) -> dict[str, Any] | None:
    """What a job records of its rule's trust: key paths and the attach setting, never keys
    or passwords (the worker uses the keys its own config loaded, by rule name)."""
    if trust is None:
        return None
    out: dict[str, Any] = {"verify_keys": [_key_path(k) for k in trust.verify_keys]}
    if trust.sign_key is not None:
        out["sign_key"] = _key_path(trust.sign_key)
    if trust.attach_report is not None:
        out["attach_report"] = trust.attach_report
    return out


def job_options(rule: Rule) -> dict[str, Any]:
    """The options a job records for ``rule``: its SlimOptions, plus the trust record."""
    out = options_to_mapping(rule.options)
    record = trust_record(rule.trust)
    if record is not None:
        out[TRUST_RECORD] = record
    return out


def split_job_options(data: Mapping[str, Any], where: str = "options"
                      ) -> tuple[SlimOptions, dict[str, Any] | None]:
    """A job's recorded options -> (SlimOptions, trust record or None)."""
    rest = dict(data)
    record = rest.pop(TRUST_RECORD, None)
    if record is not None and not isinstance(record, dict):
        raise UsageError(f"{where}: {TRUST_RECORD} must be an object")
    return options_from_mapping(rest, where=where), record
