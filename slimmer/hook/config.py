"""The hook's configuration: a TOML file (documented in README "Registry hook") and flags that
override it. Loading validates everything up front so a bad rule stops ``slim serve`` at start,
not at the first push."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from slimmer.errors import SlimmerError, UsageError
from slimmer.hook.rules import (
    DEFAULT_EXCLUDE_TAGS,
    OPTION_NAMES,
    TRUST_KEYS,
    Rule,
    options_from_mapping,
    trust_from_mapping,
)
from slimmer.hook.served import NO_REGISTRY, Served
from slimmer.options import SlimOptions
from slimmer.trust.options import TrustOptions
from slimmer.units import parse_duration, parse_size

DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_PATH = "/notifications"
DEFAULT_MAX_BODY = 1 << 20
DEFAULT_QUEUE_NAME = "slimmer-hook"
TOKEN_ENV = "SLIM_HOOK_TOKEN"


def default_db_path() -> str:
    """``$XDG_STATE_HOME/slimmer/hook.db`` (``~/.local/state`` when unset)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"),
                                                             ".local", "state")
    return os.path.join(base, "slimmer", "hook.db")


@dataclass(frozen=True)
class QueueConfig:
    """Where jobs and the huey queue live: a SQLite file (default) or a Redis URL."""

    sqlite: str | None = None
    redis: str | None = None
    name: str = DEFAULT_QUEUE_NAME

    def describe(self) -> str:
        return f"redis {self.redis}" if self.redis else f"sqlite {self.sqlite_path}"

    @property
    def sqlite_path(self) -> str:
        return self.sqlite or default_db_path()


@dataclass(frozen=True)
class WorkerConfig:
    """Retry, lease and shutdown settings of ``slim worker`` (seconds)."""

    concurrency: int = 1
    max_attempts: int = 5
    backoff: float = 10.0
    max_backoff: float = 600.0
    lease: float = 60.0
    requeue_after: float = 900.0
    shutdown_timeout: float = 60.0
    #: Seconds between catch-up runs (list the rules' repositories, queue tags without a slim
    #: counterpart); 0: never, run ``slim jobs --reconcile`` instead.
    reconcile_every: float = 0.0

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.max_attempts < 1:
            raise UsageError("worker concurrency and max_attempts must be at least 1")
        if min(self.backoff, self.max_backoff, self.lease, self.requeue_after,
               self.shutdown_timeout) < 0 or self.lease == 0:
            raise UsageError("worker durations must be positive")

    def retry_delay(self, attempts: int) -> float:
        """Backoff before attempt ``attempts + 1``: backoff * 2^(attempts-1), capped."""
        return float(min(self.max_backoff, self.backoff * (2 ** max(0, attempts - 1))))


@dataclass(frozen=True)
class ServerConfig:
    """The webhook front."""

    listen: str = DEFAULT_LISTEN
    path: str = DEFAULT_PATH
    max_body: int = DEFAULT_MAX_BODY
    auth_header: str = "Authorization"
    token: str | None = None
    allow_unauthenticated: bool = False
    max_connections: int = 64
    request_timeout: float = 10.0
    #: Jobs waiting (queued or retrying) beyond which pushes get 503 until workers catch up.
    max_queued: int = 10000
    tls_cert: str | None = None                 # PEM certificate (chain) to serve HTTPS with
    tls_key: str | None = None                  # its PEM private key

    def __post_init__(self) -> None:
        if self.max_queued < 1:
            raise UsageError("[server] max_queued must be at least 1")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise UsageError("give both --tls-cert and --tls-key (or neither)")

    @property
    def address(self) -> tuple[str, int]:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not port.isdigit():
            raise UsageError(f"listen address {self.listen!r} must be HOST:PORT")
        return host.strip("[]") or "0.0.0.0", int(port)


@dataclass(frozen=True)
class RegistryConfig:
    """The registries the hook serves (``hosts``: events naming any other are ignored), an
    address to reach the registry at, credentials for other registries rules push to (host ->
    name of the variable holding USER:PASS), and the TLS settings of ``RegistryOptions``."""

    hosts: tuple[str, ...] = ()
    address: str | None = None
    credentials: tuple[tuple[str, str], ...] = ()
    tls_verify: bool | None = None
    ca_file: str | None = None
    insecure: tuple[str, ...] = ()

    def served(self, extra_hosts: Sequence[str] = ()) -> Served:
        """The served registries: these hosts plus ``extra_hosts`` (``--registry``)."""
        hosts = tuple(dict.fromkeys((*extra_hosts, *self.hosts)))
        if not hosts:
            raise UsageError(NO_REGISTRY)
        return Served(hosts, self.address, self.credentials)


@dataclass(frozen=True)
class HookConfig:
    """Everything ``slim serve``, ``slim worker`` and ``slim jobs`` need."""

    server: ServerConfig = field(default_factory=ServerConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    rules: tuple[Rule, ...] = ()
    log_format: str = "text"
    log_level: str = "info"


_SECTIONS = {"server", "queue", "worker", "registry", "rules", "log"}


def _table(doc: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise UsageError(f"config: [{name}] must be a table")
    return dict(value)


def _known(table: Mapping[str, Any], cls: type, where: str, extra: tuple[str, ...] = ()
           ) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)} | set(extra)
    for key in table:
        if key not in names:
            raise UsageError(f"config: [{where}] has unknown key {key!r} (known: "
                             f"{', '.join(sorted(names))})")
    return {k: v for k, v in table.items() if k not in extra}


def _size(value: Any, where: str) -> int:
    try:
        return parse_size(value)
    except ValueError as exc:
        raise UsageError(f"config: {where}: {exc}") from exc


#: The keys that are durations (seconds, or "30s", "5m", "1h"), per section.
_DURATIONS = {"worker": ("backoff", "max_backoff", "lease", "requeue_after", "shutdown_timeout",
                         "reconcile_every"),
              "server": ("request_timeout",)}


def _durations(table: dict[str, Any], where: str) -> dict[str, Any]:
    out = dict(table)
    for key in _DURATIONS[where]:
        if key in out:
            try:
                out[key] = parse_duration(out[key])
            except ValueError as exc:
                raise UsageError(f"config: [{where}] {key}: {exc}") from exc
    return out


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"config: {where} must be a list of strings")
    return tuple(value)


def _registry_table(table: dict[str, Any]) -> dict[str, Any]:
    for key in ("hosts", "insecure"):
        if key in table:
            table[key] = _strings(table[key], f"[registry] {key}")
    if "credentials" in table:
        creds = table["credentials"]
        if not isinstance(creds, dict) or not all(isinstance(v, str) and v
                                                  for v in creds.values()):
            raise UsageError('config: [registry.credentials] maps hosts to variable names '
                             '("mirror.example:5000" = "MIRROR_CREDS")')
        table["credentials"] = tuple(sorted(creds.items()))
    return table


def read_token_file(path: str) -> str:
    """The token in a file (surrounding whitespace dropped)."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UsageError(f"token file {path}: {exc.strerror}") from exc
    if not token:
        raise UsageError(f"token file {path} is empty")
    return token


_RULE_KEYS = ("match", "destination", "name", "tags", "exclude_tags")


def rule_from_mapping(table: Mapping[str, Any], where: str) -> Rule:
    """A Rule from one ``[[rules]]`` table: match, destination, name, tags, exclude_tags,
    any SlimOptions field (profiles, compression, strip, keep, platforms, merge, ...) and the
    trust keys (verify_keys, sign_key, sign_key_password_env/_file, sign_annotations,
    attach_report). Key files are read later, by :func:`load_rule_trust`."""
    table = dict(table)
    for key in table:
        name = key.replace("-", "_")
        if key not in _RULE_KEYS and name not in OPTION_NAMES and name not in TRUST_KEYS:
            known = sorted({*_RULE_KEYS, *OPTION_NAMES, *TRUST_KEYS})
            raise UsageError(f"config: {where}: unknown option {key!r} (known: "
                             f"{', '.join(known)})")
    trust = trust_from_mapping({k: table.pop(k) for k in list(table)
                                if k.replace("-", "_") in TRUST_KEYS}, f"config: {where}")
    try:
        match, destination = table.pop("match"), table.pop("destination")
    except KeyError as exc:
        raise UsageError(f"config: {where} needs {exc.args[0]!r}") from None
    name = table.pop("name", "")
    tags = table.pop("tags", ["*"])
    exclude = table.pop("exclude_tags", list(DEFAULT_EXCLUDE_TAGS))
    for key, value in (("match", match), ("destination", destination), ("name", name)):
        if not isinstance(value, str):
            raise UsageError(f"config: {where}: {key} must be a string")
    for key, value in (("tags", tags), ("exclude_tags", exclude)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UsageError(f"config: {where}: {key} must be a list of strings")
    options = options_from_mapping(table, where=f"config: {where}")
    try:
        return Rule(match, destination, check_options(options), tuple(tags), tuple(exclude),
                    name, trust)
    except UsageError as exc:
        raise UsageError(f"config: {where}: {exc}") from exc


def trust_by_rule(rules: Sequence[Rule]) -> dict[str, TrustOptions | None]:
    """Each rule name's TrustOptions: how a worker finds the keys of a job's rule. Rules that
    share a name must share their trust settings too (UsageError otherwise)."""
    out: dict[str, TrustOptions | None] = {}
    for rule in rules:
        if rule.name in out and out[rule.name] != rule.trust:
            raise UsageError(f"config: two rules are named {rule.name!r} but verify or sign "
                             "differently; give them distinct names")
        out.setdefault(rule.name, rule.trust)
    return out


def load_rule_trust(rules: Sequence[Rule]) -> tuple[Rule, ...]:
    """The rules with their keys read and decrypted, once, at start-up: a missing key file,
    a bad key or a wrong password stops ``slim serve``/``slim worker`` before any job runs."""
    trust_by_rule(rules)
    out = []
    for rule in rules:
        if rule.trust is not None:
            try:
                rule = dataclasses.replace(rule, trust=rule.trust.load())
            except SlimmerError as exc:
                raise type(exc)(f"config: rule {rule.name!r}: {exc}") from exc
        out.append(rule)
    return tuple(out)


def check_options(options: SlimOptions) -> SlimOptions:
    """Validate SlimOptions now (merge, compression, profiles) rather than per job."""
    from slimmer.profiles import select_profiles
    options.check()
    select_profiles(list(options.profiles), list(options.profile_files))
    return options


def load_config(path: str | None) -> HookConfig:
    """Read a TOML config file; None gives the defaults."""
    if path is None:
        return HookConfig()
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise UsageError(f"config {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config {path}: {exc}") from exc
    for key in doc:
        if key not in _SECTIONS:
            raise UsageError(f"config {path}: unknown section or key {key!r} (known: "
                             f"{', '.join(sorted(_SECTIONS))})")
    server = _known(_table(doc, "server"), ServerConfig, "server", ("token_file",))
    raw_server = _table(doc, "server")
    if "token_file" in raw_server:
        server["token"] = read_token_file(str(raw_server["token_file"]))
    if "max_body" in server:
        server["max_body"] = _size(server["max_body"], "server.max_body")
    server = _durations(server, "server")
    registry = _registry_table(_known(_table(doc, "registry"), RegistryConfig, "registry"))
    log = _table(doc, "log")
    _known_keys(log, ("format", "level"), "log")
    rules_doc = doc.get("rules", [])
    if not isinstance(rules_doc, list):
        raise UsageError(f"config {path}: rules must be an array of tables ([[rules]])")
    rules = tuple(rule_from_mapping(t, f"rules[{n}]") for n, t in enumerate(rules_doc))
    trust_by_rule(rules)
    try:
        return HookConfig(
            server=ServerConfig(**server),
            queue=QueueConfig(**_known(_table(doc, "queue"), QueueConfig, "queue")),
            worker=WorkerConfig(**_durations(_known(_table(doc, "worker"), WorkerConfig,
                                                    "worker"), "worker")),
            registry=RegistryConfig(**registry), rules=rules,
            log_format=str(log.get("format", "text")), log_level=str(log.get("level", "info")))
    except TypeError as exc:
        raise UsageError(f"config {path}: {exc}") from exc


def _known_keys(table: Mapping[str, Any], names: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in names:
            raise UsageError(f"config: [{where}] has unknown key {key!r} (known: "
                             f"{', '.join(names)})")


def parse_rule_flag(text: str, options: SlimOptions) -> Rule:
    """``--rule 'GLOB=TEMPLATE'`` with the options given by flags."""
    match, sep, destination = text.partition("=")
    if not sep or not match or not destination:
        raise UsageError(f"--rule {text!r} must be GLOB=DESTINATION, e.g. "
                         "'team/*={repo}:{tag}-slim'")
    return Rule(match.strip(), destination.strip(), check_options(options))
