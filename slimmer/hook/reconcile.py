"""Catching up on missed notifications: list the repositories of the served registries that
the rules match, and queue every tag that has no up-to-date slim counterpart.

A registry can lose a notification (distribution keeps its retry queue in memory, so a
restart drops it; an endpoint can be misconfigured for a while). Reconciling turns a lost
notification into a delay instead of a missing image. Tags go through the same intake as
events (served registries, rules, loop prevention, dedupe by job id, ``max_queued``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from slimmer.errors import NotFoundError, SlimmerError
from slimmer.globs import matches_name
from slimmer.hook.events import Parsed, PushEvent
from slimmer.hook.intake import Hook, QueueFull
from slimmer.hook.rules import Verdict, decide
from slimmer.oci.media import ANNOT_SOURCE_DIGEST
from slimmer.oci.refs import RegistryRef, canonical_registry, parse_registry_reference
from slimmer.transports.registry.client import RegistryClient
from slimmer.transports.registry.options import RegistryOptions
from slimmer.transports.registry.repository import Repository

log = logging.getLogger("slimmer.hook.reconcile")
_PLACEHOLDER_DIGEST = "sha256:" + "0" * 64


@dataclass
class Reconciled:
    """What one run found: tags looked at, tags already slimmed, the intake's summary of the
    ones handed to it, and errors that stopped part of the run (one line each)."""

    checked: int = 0
    up_to_date: int = 0
    summary: dict[str, list[object]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def queued(self) -> int:
        return len(self.summary.get("queued", []))


class _Clients:
    """One client per registry, closed together."""

    def __init__(self, options: RegistryOptions) -> None:
        self.options = options
        self._clients: dict[str, RegistryClient] = {}

    def get(self, registry: str, side: str = "source") -> RegistryClient:
        key = canonical_registry(registry)
        if key not in self._clients:
            ref = RegistryRef(registry, "_", None)
            self._clients[key] = RegistryClient.for_ref(ref, self.options,
                                                        "dest" if side == "dest" else "source")
        return self._clients[key]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def _slimmed(clients: _Clients, destination: str, digest: str) -> bool:
    """Whether ``destination`` already holds a slim image of source ``digest``."""
    ref = parse_registry_reference(destination)
    repo = Repository(clients.get(ref.registry, "dest"), ref)
    try:
        raw, _, _ = repo.get_manifest(ref.reference, f"reading {destination}")
    except NotFoundError:
        return False
    try:
        annotations = json.loads(raw).get("annotations") or {}
    except (ValueError, AttributeError):
        return False
    return isinstance(annotations, dict) and annotations.get(ANNOT_SOURCE_DIGEST) == digest


def _pushes_of(hook: Hook, clients: _Clients, host: str, found: Reconciled) -> list[PushEvent]:
    registry = hook.served.reach(host)
    client = clients.get(registry)
    pushes: list[PushEvent] = []
    for name in client.catalog(f"listing the repositories of {registry}"):
        if not any(matches_name(rule.match, name) for rule in hook.rules):
            continue
        repo = Repository(client, RegistryRef(registry, name, None))
        for tag in repo.tags(f"listing the tags of {registry}/{name}"):
            draft = decide(hook.rules, registry, name, tag, _PLACEHOLDER_DIGEST, [host])
            if draft.verdict != Verdict.MATCHED:
                continue
            found.checked += 1
            _, _, digest = repo.get_manifest(tag, f"reading {registry}/{name}:{tag}")
            decision = decide(hook.rules, registry, name, tag, digest, [host])
            if decision.destination is not None and \
                    _slimmed(clients, decision.destination, digest):
                found.up_to_date += 1
                continue
            pushes.append(PushEvent(name, tag, digest, host, None, None, None, "reconcile"))
    return pushes


def reconcile(hook: Hook, options: RegistryOptions) -> Reconciled:
    """Queue, through ``hook``, every matching tag of the served registries that has no slim
    counterpart of its current digest. Registry errors are reported, not raised."""
    found = Reconciled()
    clients = _Clients(options)
    try:
        pushes: list[PushEvent] = []
        for host in hook.served.hosts:
            try:
                pushes.extend(_pushes_of(hook, clients, host, found))
            except SlimmerError as exc:
                found.errors.append(str(exc))
                log.error("reconcile: %s", exc, extra={"error": str(exc)})
        try:
            found.summary = hook.process(Parsed(pushes, []))
        except QueueFull as exc:
            found.errors.append(f"nothing queued: {exc}")
    finally:
        clients.close()
    log.info("reconcile: %d tags checked, %d up to date, %d queued", found.checked,
             found.up_to_date, found.queued,
             extra={"checked": found.checked, "queued": found.queued})
    return found
