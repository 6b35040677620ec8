"""Rules: globs, destination templates, loop prevention by destination pattern, job ids, and
the TOML config / flag forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimmer.errors import ProfileError, TrustError, UsageError
from slimmer.globs import matches_name
from slimmer.hook.config import load_config, load_rule_trust, parse_rule_flag
from slimmer.hook.rules import (
    Rule,
    decide,
    job_id,
    job_options,
    options_from_mapping,
    options_to_mapping,
    render_template,
    trust_record,
)
from slimmer.options import SlimOptions
from slimmer.trust import PrivateKey, PublicKey, TrustOptions

DIGEST = "sha256:" + "ab" * 32
REG = "127.0.0.1:5000"


@pytest.mark.parametrize("pattern, name, ok", [
    ("team/*", "team/app", True),
    ("team/*", "team/app/sub", False),
    ("team/**", "team/app/sub", True),
    ("*/app", "team/app", True),
    ("team/ap?", "team/app", True),
    ("team/ap?", "team/apps", False),
    ("team.io/*", "teamxio/app", False),     # dots are literal
    ("**", "anything/at/all", True),
    ("team/**/app", "team/app", True),       # ** is zero or more whole components
    ("team/**/app", "team/a/b/app", True),
    ("x*", "team/x", False),                 # anchored: the whole name must match
])
def test_globs(pattern: str, name: str, ok: bool) -> None:
    assert matches_name(pattern, name) is ok


def test_bad_rule_glob_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"rule glob 'team\*\*'"):
        Rule("team**", "{repo}:{tag}-slim")


def test_templates_fill_placeholders_and_default_to_the_source_registry() -> None:
    assert render_template("{repo}:{tag}-slim", REG, "team/app", "1.4", DIGEST) == \
        f"{REG}/team/app:1.4-slim"
    assert render_template("slim/{repo}:{tag}", REG, "team/app", "1.4", DIGEST) == \
        f"{REG}/slim/team/app:1.4"
    assert render_template("{registry}/mirror/{repo}:{tag}", REG, "team/app", "1", DIGEST) == \
        f"{REG}/mirror/team/app:1"
    assert render_template("other.example:5000/{repo}:{digest}", REG, "a/b", "1", DIGEST) == \
        f"other.example:5000/a/b:sha256-{'ab' * 32}"


@pytest.mark.parametrize("template, why", [
    ("{repo}:{version}", "unknown placeholder"),
    ("{repo}", "must end in a tag"),
    ("{repo:{tag}", "unknown placeholder|unbalanced"),
    ("{repo}/Sub:{tag}", "lowercase"),
])
def test_bad_templates_are_refused(template: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        Rule("team/*", template)


def test_decide_picks_the_first_matching_rule() -> None:
    rules = [Rule("team/db", "{repo}:{tag}-tiny", SlimOptions(profiles=("all",)), name="db"),
             Rule("team/*", "{repo}:{tag}-slim")]
    d = decide(rules, REG, "team/db", "1", DIGEST)
    assert d.rule is rules[0] and d.destination == f"{REG}/team/db:1-tiny"
    d = decide(rules, REG, "team/app", "1", DIGEST)
    assert d.rule is rules[1] and d.destination == f"{REG}/team/app:1-slim"
    d = decide(rules, REG, "other/app", "1", DIGEST)
    assert d.rule is None and d.reason == "no rule matches"


def test_produced_references_are_ignored_even_when_a_source_glob_matches() -> None:
    # team/app:1.4-slim matches the source glob team/* too: without this check every slim
    # push would start another job (1.4-slim-slim, ...).
    rules = [Rule("team/*", "{repo}:{tag}-slim"), Rule("**", "slim/{repo}:{tag}")]
    for repo, tag in (("team/app", "1.4-slim"), ("slim/team/app", "1.4")):
        d = decide(rules, REG, repo, tag, DIGEST)
        assert d.rule is None and d.reason.startswith("produced by rule"), (repo, tag)
    assert decide(rules, REG, "team/app", "1.4", DIGEST).rule is rules[0]


def test_produced_check_uses_the_advertised_name_too() -> None:
    rules = [Rule("team/*", "localhost:5000/mirror/{repo}:{tag}")]
    d = decide(rules, REG, "mirror/team/app", "1", DIGEST, aliases=["localhost:5000"])
    assert d.rule is None and d.reason.startswith("produced")


def test_tag_filters_and_default_signature_exclusion() -> None:
    rule = Rule("team/*", "{repo}:{tag}-slim", tags=("v*", "1.*"))
    assert rule.applies("team/app", "v2")
    assert not rule.applies("team/app", "latest")
    plain = Rule("team/*", "{repo}:{tag}-slim")
    assert not plain.applies("team/app", f"sha256-{'ab' * 32}.sig")


def test_job_id_is_stable_and_distinguishes_destinations() -> None:
    src = f"{REG}/team/app@{DIGEST}"
    assert job_id(src, f"{REG}/team/app:1-slim") == job_id(src, f"{REG}/team/app:1-slim")
    assert job_id(src, f"{REG}/team/app:1-slim") != job_id(src, f"{REG}/team/app:2-slim")
    assert len(job_id(src, "x")) == 20


def test_options_round_trip_through_plain_data() -> None:
    opts = SlimOptions(profiles=("caches", "docs"), strip=("/opt/x/**",), compression="gzip",
                       merge_threshold=1 << 20, base=1)
    assert options_from_mapping(options_to_mapping(opts)) == opts
    assert options_from_mapping({"merge_threshold": "4MiB", "profiles": "caches"}) == \
        SlimOptions(merge_threshold=4 << 20, profiles=("caches",))
    with pytest.raises(UsageError, match="unknown option 'colour'"):
        options_from_mapping({"colour": "red"})


CONFIG = """
[server]
listen = "0.0.0.0:9000"
path = "/hooks/registry"
max_body = "64KiB"
token_file = "{token}"

[queue]
redis = "redis://127.0.0.1:6379/3"

[registry]
hosts = ["registry.example.com"]
address = "127.0.0.1:5000"
insecure = ["registry.internal:5000"]

[registry.credentials]
"mirror.example.com:5000" = "MIRROR_CREDS"

[worker]
max_attempts = 3
backoff = 2
lease = 30

[log]
format = "json"

[[rules]]
name = "databases"
match = "team/db*"
destination = "{{repo}}:{{tag}}-tiny"
profiles = ["caches", "docs", "locales"]
compression = "gzip"
exclude_tags = ["*-debug"]

[[rules]]
match = "team/**"
destination = "slim/{{repo}}:{{tag}}"
"""


def test_config_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    path = tmp_path / "hook.toml"
    path.write_text(CONFIG.format(token=token))
    cfg = load_config(str(path))
    assert cfg.server.address == ("0.0.0.0", 9000)
    assert cfg.server.path == "/hooks/registry" and cfg.server.max_body == 64 << 10
    assert cfg.server.token == "s3cret"
    assert cfg.queue.redis == "redis://127.0.0.1:6379/3"
    assert cfg.registry.address == "127.0.0.1:5000"
    assert cfg.registry.hosts == ("registry.example.com",)
    assert cfg.registry.credentials == (("mirror.example.com:5000", "MIRROR_CREDS"),)
    served = cfg.registry.served()
    assert served.match("registry.example.com") == "registry.example.com"
    assert served.match("Registry.Example.COM") == "registry.example.com"
    assert served.match("127.0.0.1:5000") == "registry.example.com"   # its address
    assert served.match("evil.example.com") is None
    assert served.reach("registry.example.com") == "127.0.0.1:5000"
    assert cfg.registry.insecure == ("registry.internal:5000",)
    assert (cfg.worker.max_attempts, cfg.worker.backoff, cfg.worker.lease) == (3, 2, 30)
    assert cfg.worker.retry_delay(1) == 2 and cfg.worker.retry_delay(3) == 8
    assert cfg.log_format == "json"
    db, rest = cfg.rules
    assert db.name == "databases" and db.options.compression == "gzip"
    assert db.options.profiles == ("caches", "docs", "locales")
    assert db.exclude_tags == ("*-debug",)
    assert rest.name == "team/**" and rest.options == SlimOptions()


@pytest.mark.parametrize("text, why", [
    ("[server]\nport = 1\n", "unknown key 'port'"),
    ("[surver]\n", "unknown section"),
    ("[[rules]]\nmatch = 'a/*'\n", "needs 'destination'"),
    ("[[rules]]\nmatch = 'a/*'\ndestination = '{repo}:{tag}'\nmerge = 'some'\n", "--merge"),
    ("[[rules]]\nmatch = 'a/*'\ndestination = '{repo}:{tag}'\ncolour = 1\n", "unknown option"),
    ("rules = 3\n", "array of tables"),
    ("[worker]\nmax_attempts = 0\n", "at least 1"),
    ("x = [\n", "config"),
])
def test_config_errors_name_the_problem(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "hook.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=why):
        load_config(str(path))


def test_config_rejects_unknown_profiles(tmp_path: Path) -> None:
    path = tmp_path / "hook.toml"
    path.write_text("[[rules]]\nmatch = 'a/*'\ndestination = '{repo}:{tag}-s'\n"
                    "profiles = ['nope']\n")
    with pytest.raises(ProfileError, match="nope"):
        load_config(str(path))


def test_rule_flag() -> None:
    rule = parse_rule_flag("team/*={repo}:{tag}-slim", SlimOptions(profiles=("caches,docs",)))
    assert rule.match == "team/*" and rule.destination == "{repo}:{tag}-slim"
    assert rule.options.profiles == ("caches,docs",)
    with pytest.raises(UsageError, match="GLOB=DESTINATION"):
        parse_rule_flag("team/*", SlimOptions())


# -- trust keys in rules -----------------------------------------------------------------------

def _write_keys(directory: Path, password: str) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = directory / "sign.pem", directory / "verify.pub"
    private.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode())))
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


TRUST_RULE = """
[[rules]]
name = "signed"
match = "team/*"
destination = "{{repo}}:{{tag}}-slim"
profiles = ["caches"]
verify_keys = ["{public}"]
sign_key = "{private}"
sign_key_password_env = "HOOK_TEST_KEY_PASSWORD"
sign_annotations = {{ team = "db", pipeline = "hook" }}
attach_report = false

[[rules]]
match = "other/*"
destination = "{{repo}}:{{tag}}-slim"
"""


def test_config_rules_take_the_trust_keys(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    private, public = _write_keys(tmp_path, "hunter2")
    path = tmp_path / "hook.toml"
    path.write_text(TRUST_RULE.format(public=public, private=private))
    signed, plain = load_config(str(path)).rules
    assert plain.trust is None
    assert signed.options.profiles == ("caches",)
    assert signed.trust == TrustOptions(
        verify_keys=(str(public),), sign_key=str(private),
        sign_key_password_env="HOOK_TEST_KEY_PASSWORD",
        sign_annotations=(("pipeline", "hook"), ("team", "db")), attach_report=False)
    assert not signed.trust.loaded              # parsing reads no key file ...
    monkeypatch.setenv("HOOK_TEST_KEY_PASSWORD", "hunter2")
    loaded, _ = load_rule_trust((signed, plain))   # ... start-up does, once
    assert loaded.trust is not None and loaded.trust.loaded
    assert isinstance(loaded.trust.sign_key, PrivateKey)
    assert [type(k) for k in loaded.trust.verify_keys] == [PublicKey]
    assert trust_record(loaded.trust) == trust_record(signed.trust) == {
        "verify_keys": [str(public)], "sign_key": str(private), "attach_report": False}
    assert job_options(signed)["trust"] == trust_record(signed.trust)
    assert "trust" not in job_options(plain)


@pytest.mark.parametrize("keys, why", [
    ("verify_key = 'k.pub'", "unknown option 'verify_key'"),
    ("verify_keys = 3", "verify_keys must be a list of key file paths"),
    ("verify_keys = []", "verify_keys must be a list"),
    ("sign_key = 'k.pem'\nsign_annotations = { n = 1 }", "sign_annotations must be a table"),
    ("sign_key = 'k.pem'\nsign_annotations = { source = 'x' }", "reserved"),
    ("attach_report = 'yes'", "attach_report must be true or false"),
    ("sign_key_password_env = 'PW'", "password was given without a sign key"),
    ("sign_key = ''", "sign_key must be a non-empty string"),
])
def test_config_trust_keys_are_checked(tmp_path: Path, keys: str, why: str) -> None:
    path = tmp_path / "hook.toml"
    path.write_text(f"[[rules]]\nmatch = 'a/*'\ndestination = '{{repo}}:{{tag}}-s'\n{keys}\n")
    with pytest.raises(UsageError, match=why):
        load_config(str(path))


def test_missing_keys_and_wrong_passwords_fail_at_load(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    private, public = _write_keys(tmp_path, "hunter2")
    cases = [(TrustOptions(verify_keys=(str(tmp_path / "gone.pub"),)),
              r"config: rule 'r': reading public key .*gone\.pub"),
             (TrustOptions(sign_key=str(private), sign_key_password_env="HOOK_TEST_PW"),
              "environment variable HOOK_TEST_PW is not set"),
             (TrustOptions(sign_key=str(private), sign_key_password_file=str(public)),
              "wrong password")]
    monkeypatch.delenv("HOOK_TEST_PW", raising=False)
    for trust, why in cases:
        with pytest.raises(TrustError, match=why):
            load_rule_trust([Rule("a/*", "{repo}:{tag}-s", name="r", trust=trust)])


def test_rules_sharing_a_name_must_share_their_trust(tmp_path: Path) -> None:
    path = tmp_path / "hook.toml"
    path.write_text("[[rules]]\nname = 'x'\nmatch = 'a/*'\ndestination = '{repo}:{tag}-s'\n"
                    "verify_keys = ['k.pub']\n"
                    "[[rules]]\nname = 'x'\nmatch = 'b/*'\ndestination = '{repo}:{tag}-s'\n")
    with pytest.raises(UsageError, match="two rules are named 'x'"):
        load_config(str(path))
