"""``slim serve``, ``slim worker`` and ``slim jobs``: the hook's commands, with the same
registry flags and error handling as the rest of ``slim``."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

import click

from slimmer.cli.common import DurationType, SizeType, registry_from_flags, registry_options, run
from slimmer.errors import RegistryError, UsageError
from slimmer.hook.config import (
    TOKEN_ENV,
    HookConfig,
    QueueConfig,
    load_config,
    load_rule_trust,
    parse_rule_flag,
    read_token_file,
    trust_by_rule,
)
from slimmer.hook.logs import setup_logging
from slimmer.hook.served import Served
from slimmer.hook.store.model import STATES, Job
from slimmer.options import COMPRESSION_CHOICES, SlimOptions
from slimmer.transports.registry.options import RegistryOptions
from slimmer.units import format_size as human

log = logging.getLogger("slimmer.hook")


def _queue_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
                     metavar="FILE", help="Hook configuration (TOML; see README).",
                     envvar="SLIM_HOOK_CONFIG", show_envvar=True),
        click.option("--db", metavar="PATH",
                     help="SQLite file of the queue and job table (default: "
                          "$XDG_STATE_HOME/slimmer/hook.db)."),
        click.option("--redis", metavar="URL",
                     help="Use Redis for the queue and job table, e.g. redis://host:6379/0."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _log_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
                     help="Log lines as text (default) or JSON lines, on stderr."),
        click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
                     default=None, help="Least severe level logged (default: info)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _served_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--registry", "served_registries", multiple=True, metavar="HOST[:PORT]",
                     help="A registry this hook acts for (repeatable; also [registry] hosts). "
                          "Events naming any other host are ignored."),
        click.option("--registry-address", metavar="HOST[:PORT]",
                     help="Reach the (one) served registry at this address instead."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _served(cfg: HookConfig, kw: dict[str, Any]) -> Served:
    """The served registries from --registry and [registry] (UsageError if none)."""
    registry = cfg.registry
    if kw.get("registry_address"):
        registry = dataclasses.replace(registry, address=kw["registry_address"])
    return registry.served(tuple(kw.get("served_registries") or ()))


def _config(kw: dict[str, Any]) -> HookConfig:
    """The config file with the queue and log flags applied."""
    cfg = load_config(kw.get("config_path"))
    queue = cfg.queue
    if kw.get("redis") and kw.get("db"):
        raise UsageError("give --db or --redis, not both")
    if kw.get("redis"):
        queue = QueueConfig(sqlite=None, redis=kw["redis"], name=queue.name)
    elif kw.get("db"):
        queue = QueueConfig(sqlite=kw["db"], redis=None, name=queue.name)
    return dataclasses.replace(cfg, queue=queue,
                               log_format=kw.get("log_format") or cfg.log_format,
                               log_level=kw.get("log_level") or cfg.log_level)


def _registry_for(cfg: HookConfig, flags: RegistryOptions, served: Served) -> RegistryOptions:
    """Registry options from flags and environment, completed by the config's [registry];
    the explicit credentials are bound to the served registries."""
    r = cfg.registry
    options = dataclasses.replace(
        flags, tls_verify=flags.tls_verify if flags.tls_verify is not None else r.tls_verify,
        ca_file=flags.ca_file or r.ca_file, insecure=tuple(flags.insecure) + tuple(r.insecure))
    return served.registry_options(options)


def _logging(cfg: HookConfig) -> None:
    try:
        setup_logging(cfg.log_format, cfg.log_level)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


@click.command()
@_queue_options
@click.option("--listen", metavar="HOST:PORT",
              help="Address to listen on (default: 127.0.0.1:8080).")
@click.option("--path", "webhook_path", metavar="PATH",
              help="Webhook path the registry posts to (default: /notifications).")
@click.option("--rule", "rules", multiple=True, metavar="GLOB=DESTINATION",
              help="Slim repositories matching GLOB into DESTINATION, e.g. "
                   "'team/*={repo}:{tag}-slim' (repeatable; before the config's rules).")
@click.option("--profile", "profiles", multiple=True, metavar="NAME[,NAME...]",
              help="Strip profiles for --rule rules (default: caches,docs).")
@click.option("--compression", type=click.Choice(list(COMPRESSION_CHOICES)),
              default=None, help="Output compression for --rule rules (default: zstd).")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help=f"File with the webhook token (or set {TOKEN_ENV}).")
@click.option("--auth-header", metavar="NAME",
              help="Header carrying the token (default: Authorization; 'Bearer TOKEN' "
                   "or the bare token).")
@click.option("--no-auth", is_flag=True,
              help="Accept notifications without a token (trusted networks only).")
@click.option("--max-body", type=SizeType(), metavar="SIZE",
              help="Largest accepted body (default: 1MiB).")
@click.option("--max-queued", type=click.IntRange(min=1), default=None,
              help="Answer 503 (the registry retries) while this many jobs wait "
                   "(default: 10000).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), metavar="PEM",
              help="Serve HTTPS with this certificate (chain); needs --tls-key.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), metavar="PEM",
              help="The private key of --tls-cert.")
@_served_options
@click.option("--workers", type=click.IntRange(min=0), default=1, show_default=True,
              help="Job threads in this process; 0 runs the front only (run "
                   "'slim worker' elsewhere).")
@_log_options
@registry_options
def serve(**kw: Any) -> None:
    """Receive registry notifications and slim pushed images into their destinations."""
    run(lambda: _serve(kw, registry_from_flags(kw)))

@click.command()
@_queue_options
@click.option("--concurrency", type=click.IntRange(min=1), default=None,
              help="Jobs run at once in this process (default: 1).")
@click.option("--max-attempts", type=click.IntRange(min=1), default=None,
              help="Attempts per job before it fails (default: 5).")
@click.option("--reconcile-every", type=DurationType(), default=None, metavar="DURATION",
              help="Also queue missed tags (as --reconcile) at start and every DURATION, "
                   "e.g. 10m (default: never).")
@_served_options
@_log_options
@registry_options
def worker(**kw: Any) -> None:
    """Run queued jobs until SIGTERM (finish or re-queue running jobs) or SIGINT."""
    run(lambda: _worker(kw, registry_from_flags(kw)))

@click.command()
@_queue_options
@click.option("--state", type=click.Choice([str(s) for s in STATES]), default=None,
              help="Only jobs in this state.")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many recent jobs.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@click.option("--reconcile", is_flag=True,
              help="Instead: list the served registries' repositories the rules match and "
                   "queue every tag without an up-to-date slim counterpart.")
@_served_options
@registry_options
def jobs(**kw: Any) -> None:
    """List recent hook jobs: state, source, destination, attempts, error, bytes saved."""
    run(lambda: _reconcile(kw, registry_from_flags(kw)) if kw.get("reconcile")
        else _jobs(kw))



def _serve(kw: dict[str, Any], flags: RegistryOptions) -> None:
    from slimmer.hook.intake import Hook
    from slimmer.hook.queue import JobQueue, open_store
    from slimmer.hook.server import HookServer, serve_in_thread

    cfg = _config(kw)
    _logging(cfg)
    server_cfg = cfg.server
    changes: dict[str, Any] = {}
    for key, flag in (("listen", "listen"), ("path", "webhook_path"),
                      ("auth_header", "auth_header"), ("max_body", "max_body"),
                      ("max_queued", "max_queued"), ("tls_cert", "tls_cert"),
                      ("tls_key", "tls_key")):
        if kw.get(flag) is not None:
            changes[key] = kw[flag]
    token = (read_token_file(kw["token_file"]) if kw.get("token_file")
             else os.environ.get(TOKEN_ENV) or server_cfg.token)
    changes["token"] = None if kw.get("no_auth") else token
    changes["allow_unauthenticated"] = bool(kw.get("no_auth")) or \
        server_cfg.allow_unauthenticated
    server_cfg = dataclasses.replace(server_cfg, **changes)
    options = SlimOptions(profiles=tuple(kw.get("profiles") or ()),
                          compression=kw.get("compression") or "zstd")
    rules = tuple(parse_rule_flag(r, options) for r in kw.get("rules") or ()) + cfg.rules
    if not rules:
        raise UsageError("no rules: give --rule GLOB=DESTINATION or [[rules]] in --config")
    trust_by_rule(rules)
    served = _served(cfg, kw)
    served.check_rules(rules)
    workers = kw.get("workers", 1)
    # Keys are read once, before anything listens or runs; a front without job threads
    # (--workers 0) never uses them and need not hold them.
    loaded = load_rule_trust(rules) if workers else rules
    registry = _registry_for(cfg, flags, served) if workers else flags

    store = open_store(cfg.queue)
    queue = JobQueue(cfg.queue)
    hook = Hook(rules, store, queue.enqueue, served, queue.pending, server_cfg.max_queued)
    try:
        server = HookServer(server_cfg, hook)
    except OSError as exc:
        raise UsageError(f"cannot listen on {server_cfg.listen}: {exc.strerror}") from exc
    log.info("listening on %s%s (%d rules, queue %s)", server.url, server_cfg.path, len(rules),
             cfg.queue.describe(), extra={"listen": server.url, "path": server_cfg.path})
    if workers:
        # The worker (and the pipeline and httpx under it) loads only when this process
        # runs jobs: a front with --workers 0 stays small.
        from slimmer.hook.worker import Worker, run_consumer
        worker_cfg = dataclasses.replace(cfg.worker, concurrency=workers)
        job_worker = Worker(store, queue, worker_cfg, registry, rules=loaded, served=served)
        serve_in_thread(server)

        def stop_http() -> None:
            server.shutdown()
            server.server_close()
        run_consumer(job_worker, on_stop=stop_http)
        return

    def stop(signum: int, frame: Any) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        store.close()
    log.info("stopped")


def _worker(kw: dict[str, Any], flags: RegistryOptions) -> None:
    from slimmer.hook.queue import JobQueue, open_store
    from slimmer.hook.worker import Worker, run_consumer

    cfg = _config(kw)
    _logging(cfg)
    changes = {k: kw[k] for k in ("concurrency", "max_attempts", "reconcile_every")
               if kw.get(k) is not None}
    worker_cfg = dataclasses.replace(cfg.worker, **changes)
    served = _served(cfg, kw)
    served.check_rules(cfg.rules)
    registry = _registry_for(cfg, flags, served)
    rules = load_rule_trust(cfg.rules)        # bad keys or passwords stop us here
    store = open_store(cfg.queue)
    queue = JobQueue(cfg.queue)
    job_worker = Worker(store, queue, worker_cfg, registry, rules=rules, served=served)
    run_consumer(job_worker)


def _reconcile(kw: dict[str, Any], flags: RegistryOptions) -> None:
    from slimmer.hook.intake import Hook
    from slimmer.hook.queue import JobQueue, open_store
    from slimmer.hook.reconcile import reconcile

    cfg = _config(kw)
    if not cfg.rules:
        raise UsageError("--reconcile needs the rules: give --config")
    served = _served(cfg, kw)
    served.check_rules(cfg.rules)
    registry = _registry_for(cfg, flags, served)
    store = open_store(cfg.queue)
    try:
        queue = JobQueue(cfg.queue)
        hook = Hook(cfg.rules, store, queue.enqueue, served, queue.pending,
                    cfg.server.max_queued)
        found = reconcile(hook, registry)
    finally:
        store.close()
    if kw.get("as_json"):
        sys.stdout.write(json.dumps({"checked": found.checked, "up_to_date": found.up_to_date,
                                     **found.summary, "errors": found.errors},
                                    sort_keys=True) + "\n")
    else:
        click.echo(f"reconcile: {found.checked} tags checked, {found.up_to_date} up to date, "
                   f"{found.queued} queued, {len(found.summary.get('duplicates', []))} "
                   "already queued")
        for item in found.summary.get("queued", []):
            assert isinstance(item, dict)
            click.echo(f"  queued {item['repository']}:{item['tag']} -> {item['destination']}")
    if found.errors:
        raise RegistryError("reconcile: " + "; ".join(found.errors))


def _jobs(kw: dict[str, Any]) -> None:
    from slimmer.hook.queue import open_store
    cfg = _config(kw)
    store = open_store(cfg.queue)
    try:
        rows = store.recent(kw["limit"], kw.get("state"))
    finally:
        store.close()
    if kw.get("as_json"):
        for job in rows:
            sys.stdout.write(json.dumps(job.to_dict(), sort_keys=True) + "\n")
        return
    click.echo(render_jobs(rows).rstrip("\n"))


def render_jobs(rows: list[Job], now: float | None = None) -> str:
    """A table of jobs, newest first; errors on an indented line below their job."""
    if not rows:
        return "no jobs\n"
    now = time.time() if now is None else now
    lines = [f"{'JOB':<12} {'STATE':<9} {'TRIES':>5} {'SAVED':>10} {'UPDATED':>8}  "
             f"SOURCE -> DESTINATION"]
    for job in rows:
        saved = human(job.bytes_saved) if job.bytes_saved is not None else "-"
        lines.append(f"{job.id[:12]:<12} {job.state:<9} {job.attempts:>5} {saved:>10} "
                     f"{_ago(now - (job.updated or now)):>8}  {job.source} -> "
                     f"{job.destination}")
        if job.error:
            lines.append(f"{'':<12} error: {job.error}")
    return "\n".join(lines) + "\n"


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"
