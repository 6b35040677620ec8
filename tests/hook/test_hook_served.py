"""The served registries: which event names are ours, where destinations may go, and how
credentials are bound to hosts."""

from __future__ import annotations

import pytest

from slimmer.errors import UsageError
from slimmer.hook.rules import Rule
from slimmer.hook.served import Served
from slimmer.transports.registry.options import Credentials, RegistryOptions


def test_match_names_only_served_registries() -> None:
    served = Served(("registry.example.com", "other.example:5000"))
    assert served.match("registry.example.com") == "registry.example.com"
    assert served.match("OTHER.example:5000") == "other.example:5000"
    assert served.match("evil.example") is None
    assert served.match("registry.example.com:443") is None     # another host:port
    assert served.match(None) is None                            # ambiguous: two served
    assert Served(("registry.example.com",)).match(None) == "registry.example.com"


def test_address_is_where_the_one_served_registry_is_reached() -> None:
    served = Served(("localhost:5000",), address="registry:5000")
    assert served.reach("localhost:5000") == "registry:5000"
    assert served.match("registry:5000") == "localhost:5000"
    assert served.serves("registry:5000") and served.serves("localhost:5000")
    assert not served.serves("evil:5000")
    with pytest.raises(UsageError, match="exactly one registry"):
        Served(("a.example", "b.example"), address="c.example")
    with pytest.raises(UsageError, match="is not HOST"):
        Served(("bad host",))


def test_destinations_stay_on_the_source_registry_unless_a_rule_names_a_host() -> None:
    local = Rule("team/*", "{repo}:{tag}-slim")
    mirror = Rule("team/*", "mirror.example:5000/{repo}:{tag}")
    built = Rule("team/*", "{registry}/slim/{repo}:{tag}")
    served = Served(("reg.example",), credentials=(("mirror.example:5000", "MIRROR"),))
    assert served.allows_destination(local, "reg.example", "reg.example/team/app:1-slim")
    assert served.allows_destination(mirror, "reg.example", "mirror.example:5000/team/app:1")
    assert served.allows_destination(built, "reg.example", "reg.example/slim/team/app:1")
    assert not served.allows_destination(local, "reg.example", "evil.example/team/app:1")
    no_creds = Served(("reg.example",))
    assert not no_creds.allows_destination(mirror, "reg.example",
                                           "mirror.example:5000/team/app:1")
    with pytest.raises(UsageError, match="pushes to mirror.example:5000, which is not a "
                                         "served registry"):
        no_creds.check_rules([mirror])
    served.check_rules([local, mirror, built])


def test_credentials_are_bound_to_the_served_and_credentialed_hosts() -> None:
    served = Served(("reg.example",), credentials=(("mirror.example", "MIRROR"),))
    options = served.registry_options(RegistryOptions(creds="hook:secret"),
                                      {"MIRROR": "m:n"})
    assert options.credentials("source", "reg.example") == Credentials("hook", "secret")
    assert options.credentials("dest", "mirror.example") == Credentials("m", "n")
    assert options.credentials("source", "evil.example") is None
    with pytest.raises(UsageError, match="variable MIRROR is not set"):
        served.registry_options(RegistryOptions(), {})
