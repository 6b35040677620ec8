"""Parsing registry notifications: distribution envelopes (v1 from 2.x, v2 from 3.x with
references and descriptor fields), Harbor's default and CloudEvents webhooks, bad bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from slimmer.hook.events import (
    DISTRIBUTION_V1,
    DISTRIBUTION_V2,
    EventError,
    PushEvent,
    parse_notification,
)

DIGEST = "sha256:" + "ab" * 32
CHILD = "sha256:" + "cd" * 32
LAYER = "sha256:" + "ef" * 32


def distribution_event(**target: Any) -> dict[str, Any]:
    """One event as distribution's bridge writes it for a manifest PUT by tag."""
    t = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1042,
         "digest": DIGEST, "length": 1042, "repository": "team/app",
         "url": f"http://localhost:5000/v2/team/app/manifests/{DIGEST}", "tag": "1.4"}
    t.update(target)
    return {"id": "7f1c0a4e-2f4b-4a7e-9d0c-1c2b3a4d5e6f",
            "timestamp": "2026-11-24T15:14:03.123456789Z", "action": "push", "target": t,
            "request": {"id": "0b7f6c0e-3f4a-4b1d-8e2c-5d6e7f809a1b", "addr": "10.1.2.3:51234",
                        "host": "localhost:5000", "method": "PUT",
                        "useragent": "skopeo/1.9.3"},
            "actor": {"name": "ci"},
            "source": {"addr": "registry-0:5000",
                       "instanceID": "3c9d1f7e-6a5b-4c3d-9e8f-7a6b5c4d3e2f"}}


def envelope(*events: dict[str, Any]) -> bytes:
    # distribution marshals with three-space indentation; the parser must not care.
    return json.dumps({"events": list(events)}, indent=3).encode()


def test_distribution_v1_manifest_push_by_tag() -> None:
    parsed = parse_notification(envelope(distribution_event()), DISTRIBUTION_V1)
    assert parsed.pushes == [PushEvent(
        "team/app", "1.4", DIGEST, "localhost:5000",
        "application/vnd.oci.image.manifest.v1+json", "skopeo/1.9.3",
        "7f1c0a4e-2f4b-4a7e-9d0c-1c2b3a4d5e6f", "distribution")]
    assert parsed.skipped == []


def test_distribution_v2_index_with_references_and_descriptor_fields() -> None:
    # distribution 3.x: v2 media type, target embeds a full OCI descriptor (annotations,
    # artifactType) and, with includereferences, the index's children.
    event = distribution_event(
        mediaType="application/vnd.oci.image.index.v1+json", tag="2.0",
        annotations={"org.opencontainers.image.created": "2026-11-24T00:00:00Z"},
        references=[{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                     "digest": CHILD, "size": 900}])
    parsed = parse_notification(envelope(event), DISTRIBUTION_V2 + "; charset=utf-8")
    assert [(p.repository, p.tag, p.media_type) for p in parsed.pushes] == [
        ("team/app", "2.0", "application/vnd.oci.image.index.v1+json")]


def test_envelope_with_mixed_events_keeps_only_tagged_manifest_pushes() -> None:
    events = [
        distribution_event(mediaType="application/octet-stream", digest=LAYER, tag=""),
        distribution_event(tag=None, digest=CHILD),                       # child by digest
        {**distribution_event(), "action": "pull"},
        {**distribution_event(), "action": "delete"},
        distribution_event(mediaType="application/vnd.docker.distribution.manifest.v2+json",
                           repository="team/other", tag="latest"),
    ]
    parsed = parse_notification(envelope(*events), DISTRIBUTION_V1)
    assert [(p.repository, p.tag) for p in parsed.pushes] == [("team/other", "latest")]
    assert len(parsed.skipped) == 4
    assert any("no tag" in s for s in parsed.skipped)
    assert any("'pull'" in s for s in parsed.skipped)


def test_registry_address_from_url_else_request_host() -> None:
    no_url = distribution_event(url="")
    no_url["request"]["host"] = "registry.internal:5443"
    parsed = parse_notification(envelope(distribution_event(), no_url), DISTRIBUTION_V1)
    assert [p.registry for p in parsed.pushes] == ["localhost:5000", "registry.internal:5443"]


def test_incomplete_target_is_skipped_not_fatal() -> None:
    parsed = parse_notification(envelope(distribution_event(digest="md5:abc")),
                                DISTRIBUTION_V1)
    assert parsed.pushes == [] and "invalid digest" in parsed.invalid[0]


@pytest.mark.parametrize("target, why", [
    ({"repository": "Team/App"}, "invalid repository name"),
    ({"repository": "team/../etc"}, "invalid repository name"),
    ({"repository": "a" * 256}, "invalid repository name"),
    ({"repository": None}, "invalid repository name"),
    ({"tag": "1.4/../x"}, "invalid tag"),
    ({"tag": "-x"}, "invalid tag"),
    ({"tag": "t" * 129}, "invalid tag"),
    ({"tag": 7}, "invalid tag"),
    ({"digest": "sha256:" + "AB" * 32}, "invalid digest"),
    ({"digest": "sha512:" + "ab" * 64}, "invalid digest"),
    ({"size": -1}, "invalid manifest size"),
    ({"size": 1 << 40}, "invalid manifest size"),
    ({"size": "12"}, "invalid manifest size"),
    ({"url": "http://evil host:5000/v2/x"}, "invalid registry name"),
])
def test_invalid_event_fields_are_skipped_and_the_envelope_still_counts(
        target: dict[str, Any], why: str) -> None:
    """One odd event must not turn the envelope into a 400: the sender would retry it forever
    and stall every later notification. The valid events beside it still count."""
    good = distribution_event(tag="ok")
    parsed = parse_notification(envelope(distribution_event(**target), good), DISTRIBUTION_V1)
    assert [p.tag for p in parsed.pushes] == ["ok"]
    assert len(parsed.invalid) == 1 and why in parsed.invalid[0], parsed.invalid


def test_non_object_events_are_invalid_not_fatal() -> None:
    body = json.dumps({"events": [1, distribution_event()]}).encode()
    parsed = parse_notification(body, DISTRIBUTION_V1)
    assert len(parsed.pushes) == 1 and parsed.invalid == ["event 0 is not a JSON object"]


def test_harbor_resource_with_invalid_fields_is_skipped() -> None:
    bad = json.loads(json.dumps(HARBOR))
    bad["event_data"]["resources"].append({"digest": DIGEST, "tag": "bad tag",
                                           "resource_url": "harbor.example.com/team/app:x"})
    parsed = parse_notification(json.dumps(bad).encode(), "application/json")
    assert [p.tag for p in parsed.pushes] == ["1.4"]
    assert "invalid tag" in parsed.invalid[0]


HARBOR = {
    "type": "PUSH_ARTIFACT", "occur_at": 1764000000, "operator": "robot$ci",
    "event_data": {
        "resources": [{"digest": DIGEST, "tag": "1.4",
                       "resource_url": "harbor.example.com/team/app:1.4"}],
        "repository": {"date_created": 1763000000, "name": "app", "namespace": "team",
                       "repo_full_name": "team/app", "repo_type": "private"}}}


def test_harbor_push_artifact() -> None:
    parsed = parse_notification(json.dumps(HARBOR).encode(), "application/json")
    assert parsed.pushes == [PushEvent("team/app", "1.4", DIGEST, "harbor.example.com",
                                       None, None, None, "harbor")]


def test_harbor_cloudevents_format() -> None:
    body = {"specversion": "1.0", "id": "4b2c", "source": "/projects/2/webhook/policies/3",
            "type": "harbor.artifact.pushed", "datacontenttype": "application/json",
            "time": "2026-11-24T15:14:03Z", "data": HARBOR["event_data"]}
    parsed = parse_notification(json.dumps(body).encode(), "application/cloudevents+json")
    assert [(p.repository, p.tag, p.sender) for p in parsed.pushes] == [
        ("team/app", "1.4", "harbor")]


def test_harbor_other_event_types_are_acknowledged_and_skipped() -> None:
    parsed = parse_notification(json.dumps({**HARBOR, "type": "PULL_ARTIFACT"}).encode(),
                                "application/json")
    assert parsed.pushes == [] and "PULL_ARTIFACT" in parsed.skipped[0]


@pytest.mark.parametrize("body, why", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"events": {"a": 1}}', "not a list"),
    (b'{"hello": "world"}', "not a distribution event envelope"),
    (b'{"type": "PUSH_ARTIFACT", "event_data": {"resources": 3}}', "without repository"),
])
def test_malformed_bodies_raise_with_a_reason(body: bytes, why: str) -> None:
    with pytest.raises(EventError, match=why):
        parse_notification(body, "application/json")


def test_unknown_content_type_is_refused() -> None:
    with pytest.raises(EventError, match="content type"):
        parse_notification(envelope(distribution_event()), "text/plain")
