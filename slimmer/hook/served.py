"""The registries the hook acts for: configuration, never event data.

An event names a registry (``target.url``, ``request.host``, Harbor's ``resource_url``); the
hook acts on it only when that name is one of the configured registries, and then reaches the
registry at the configured address. Credentials are bound to hosts the same way: ``--creds``
applies to the served registries, and a rule that pushes to another registry needs credentials
given for that host.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Mapping, Sequence

from slimmer.errors import UsageError
from slimmer.hook.rules import Rule
from slimmer.oci.refs import canonical_registry, parse_registry_reference, valid_registry
from slimmer.transports.registry.options import RegistryOptions


@dataclass(frozen=True)
class Served:
    """``hosts``: the registries whose events the hook takes (``HOST[:PORT]`` as events name
    them); ``address``: where to reach the registry when it is not that name (one host only);
    ``credentials``: (host, environment variable holding ``USER:PASS``) for registries rules
    push to besides the served ones."""

    hosts: tuple[str, ...]
    address: str | None = None
    credentials: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for host in (*self.hosts, *(h for h, _ in self.credentials),
                     *((self.address,) if self.address else ())):
            if not valid_registry(host):
                raise UsageError(f"registry {host!r} is not HOST[:PORT]")
        if self.address and len(self.hosts) != 1:
            raise UsageError("[registry] address needs exactly one registry in hosts "
                             "(--registry)")

    @property
    def _canonical(self) -> dict[str, str]:
        return {canonical_registry(h): h for h in self.hosts}

    def match(self, named: str | None) -> str | None:
        """The served registry an event names (None: not one of ours). An event that names
        no registry belongs to the only served one, if there is only one."""
        if named is None:
            return self.hosts[0] if len(self.hosts) == 1 else None
        found = self._canonical.get(canonical_registry(named))
        if found is None and self.address and \
                canonical_registry(named) == canonical_registry(self.address):
            found = self.hosts[0]
        return found

    def reach(self, host: str) -> str:
        """Where the served registry ``host`` is reached."""
        return self.address or host

    def serves(self, registry: str) -> bool:
        """Whether ``registry`` (as a job names it) is a served registry or its address."""
        names = set(self._canonical) | ({canonical_registry(self.address)} if self.address
                                        else set())
        return canonical_registry(registry) in names

    def credential_hosts(self) -> set[str]:
        return {canonical_registry(h) for h, _ in self.credentials}

    def allows_destination(self, rule: Rule, source_registry: str, destination: str) -> bool:
        """A destination on the source's registry, or on a host the rule names literally and
        credentials were given for."""
        dest = canonical_registry(parse_registry_reference(destination).registry)
        if dest == canonical_registry(source_registry):
            return True
        named = rule.destination_host()
        return named is not None and canonical_registry(named) == dest \
            and dest in self.credential_hosts()

    def check_rules(self, rules: Sequence[Rule]) -> None:
        """UsageError for a rule that pushes to a registry that is neither served nor given
        credentials (found at start-up, not at the first push)."""
        served = set(self._canonical)
        for rule in rules:
            host = rule.destination_host()
            if host is None or canonical_registry(host) in served:
                continue
            if canonical_registry(host) not in self.credential_hosts():
                raise UsageError(
                    f"rule {rule.name!r} pushes to {host}, which is not a served registry: "
                    f"add it to [registry.credentials] with the variable holding its "
                    f"USER:PASS, e.g. \"{host}\" = \"SLIM_CREDS_MIRROR\"")

    def registry_options(self, base: RegistryOptions,
                         environ: Mapping[str, str] | None = None) -> RegistryOptions:
        """``base`` with its explicit credentials bound to the served registries and the
        per-host credentials read from their variables (UsageError if one is unset)."""
        env = os.environ if environ is None else environ
        bound = []
        for host, variable in self.credentials:
            value = env.get(variable)
            if not value:
                raise UsageError(f"[registry.credentials] {host}: variable {variable} is "
                                 "not set (it holds USER:PASS)")
            bound.append((host, value))
        hosts = self.hosts + ((self.address,) if self.address else ())
        return dataclasses.replace(base, creds_hosts=hosts, host_creds=tuple(bound))


NO_REGISTRY = ("no registry configured: give --registry HOST[:PORT] (repeatable) or "
               "[registry] hosts = [\"HOST[:PORT]\"] in --config; the hook acts only for "
               "registries named there, never for the host an event names")
