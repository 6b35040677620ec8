"""Parse registry notifications into push events: CNCF distribution's envelope (v1 and v2
media types) and Harbor's ``PUSH_ARTIFACT`` webhook (default and CloudEvents formats).

Parsing is pure: bytes in, ``PushEvent`` records and reasons for skipped events out. Event
fields are untrusted input: repository names and tags are checked against the distribution
grammar, digests against ``sha256:<64 hex>``, sizes and registry names bounded; an event that
fails is *invalid* and skipped, the rest of its envelope still counts (a sender retries a
refused envelope without end, so one odd event must not block the ones after it). Only a body
that is not one of these formats raises ``EventError`` (the server answers 400 with its text).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from slimmer.errors import InputError
from slimmer.oci.media import INDEX_TYPES, MANIFEST_TYPES
from slimmer.oci.refs import valid_registry, valid_repository, valid_tag

#: Envelope media types sent by distribution 2.x (v1) and 3.x (v2); the JSON is the same shape.
DISTRIBUTION_V1 = "application/vnd.docker.distribution.events.v1+json"
DISTRIBUTION_V2 = "application/vnd.docker.distribution.events.v2+json"
#: Content types the webhook accepts (Harbor sends plain JSON).
ACCEPTED_TYPES = frozenset({DISTRIBUTION_V1, DISTRIBUTION_V2, "application/json",
                            "application/cloudevents+json"})
HARBOR_PUSH = "PUSH_ARTIFACT"
HARBOR_CLOUDEVENT_PUSH = "harbor.artifact.pushed"
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
#: Largest manifest a push event may announce (the registry client's own limit).
MAX_MANIFEST_SIZE = 4 << 20


class EventError(InputError, ValueError):
    """The body is not a notification this hook understands; the text says why."""


@dataclass(frozen=True)
class PushEvent:
    """A manifest or index pushed under a tag, as the registry reported it.

    ``registry`` is the address the registry advertised (``HOST[:PORT]``), if any, and
    ``also`` any other host the event names (``request.host`` when it differs from
    ``target.url``): every one of them must be served; ``media_type`` is None when the sender
    does not say (Harbor).
    """

    repository: str
    tag: str
    digest: str
    registry: str | None
    media_type: str | None = None
    user_agent: str | None = None
    event_id: str | None = None
    sender: str = "distribution"
    also: tuple[str, ...] = ()


@dataclass
class Parsed:
    """What one request body held: push events to consider, why the others were skipped
    (not pushes of tagged manifests), and why some were invalid (malformed fields)."""

    pushes: list[PushEvent]
    skipped: list[str]
    invalid: list[str] = field(default_factory=list)


def _invalid(repository: str | None, tag: str | None, digest: str | None,
             registry: str | None) -> str | None:
    """Why an event's fields are not acceptable, or None."""
    if not repository or not valid_repository(repository):
        return f"invalid repository name {_show(repository)}"
    if not tag or not valid_tag(tag):
        return f"invalid tag {_show(tag)}"
    if not digest or not _DIGEST_RE.match(digest):
        return f"invalid digest {_show(digest)}"
    if registry is not None and not valid_registry(registry):
        return f"invalid registry name {_show(registry)}"
    return None


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_notification(body: bytes, content_type: str | None = None) -> Parsed:
    """Parse a notification body; raise EventError when it is not JSON of a known shape."""
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if ctype and ctype not in ACCEPTED_TYPES:
        raise EventError(f"unsupported content type {ctype!r}")
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise EventError("body is not a JSON object")
    if "events" in doc:
        return _distribution(doc)
    if doc.get("type") == HARBOR_CLOUDEVENT_PUSH or "specversion" in doc:
        return _harbor(doc.get("data"), doc.get("type"), HARBOR_CLOUDEVENT_PUSH)
    if "type" in doc and "event_data" in doc:
        return _harbor(doc.get("event_data"), doc.get("type"), HARBOR_PUSH)
    raise EventError("not a distribution event envelope ({\"events\": [...]}) "
                     "or a Harbor webhook ({\"type\": ..., \"event_data\": ...})")


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _distribution(doc: dict[str, Any]) -> Parsed:
    events = doc["events"]
    if not isinstance(events, list):
        raise EventError("\"events\" is not a list")
    out = Parsed([], [])
    for n, event in enumerate(events):
        if not isinstance(event, dict):
            out.invalid.append(f"event {n} is not a JSON object")
            continue
        target = event.get("target")
        request: dict[str, Any] = event["request"] if isinstance(event.get("request"), dict) \
            else {}
        if not isinstance(target, dict):
            out.skipped.append("no target")
            continue
        action = event.get("action")
        media_type = _str(target.get("mediaType"))
        if action != "push":
            out.skipped.append(f"action {_show(action)}")
            continue
        if media_type not in MANIFEST_TYPES and media_type not in INDEX_TYPES:
            out.skipped.append(f"not a manifest push ({_show(media_type)})")
            continue
        repository, tag, digest = (_str(target.get(k)) for k in ("repository", "tag", "digest"))
        if not tag and target.get("tag") is None:
            out.skipped.append("push by digest (no tag)")
            continue
        size = target.get("size", 0)
        named = _registries(_str(target.get("url")), _str(request.get("host")))
        registry = named[0] if named else None
        why = _invalid(repository, tag, digest, registry)
        if why is None and (not isinstance(size, int) or isinstance(size, bool)
                            or not 0 <= size <= MAX_MANIFEST_SIZE):
            why = f"invalid manifest size {_show(size)}"
        if why is not None:
            out.invalid.append(f"event {n}: {why}")
            continue
        assert repository and tag and digest
        out.pushes.append(PushEvent(repository, tag, digest, registry, media_type,
                                    _str(request.get("useragent")), _str(event.get("id")),
                                    "distribution", tuple(named[1:])))
    return out


def _registries(url: str | None, host: str | None) -> list[str]:
    """The hosts (``HOST[:PORT]``) an event names: ``target.url``'s, then ``request.host`` if
    it is another (only names to compare with the served registries: the hook never connects
    to them)."""
    named: list[str] = []
    if url:
        try:
            netloc = urllib.parse.urlsplit(url).netloc
        except ValueError:
            netloc = url[:255]        # not a URL: fails the registry-name check
        if netloc:
            named.append(netloc.rsplit("@", 1)[-1])
    if host and host.lower() not in (n.lower() for n in named):
        named.append(host)
    return named


def _harbor(data: Any, kind: Any, push_type: str) -> Parsed:
    if kind != push_type:
        return Parsed([], [f"Harbor event {kind!r}"])
    if not isinstance(data, dict):
        raise EventError("Harbor webhook without an event_data/data object")
    repo = data.get("repository")
    resources = data.get("resources")
    if not isinstance(repo, dict) or not isinstance(resources, list):
        raise EventError("Harbor webhook without repository or resources")
    full = _str(repo.get("repo_full_name"))
    if full is None and _str(repo.get("namespace")) and _str(repo.get("name")):
        full = f"{repo['namespace']}/{repo['name']}"
    out = Parsed([], [])
    for n, resource in enumerate(resources):
        if not isinstance(resource, dict):
            out.invalid.append(f"Harbor resource {n} is not a JSON object")
            continue
        tag, digest = _str(resource.get("tag")), _str(resource.get("digest"))
        if not tag and resource.get("tag") is None:
            out.skipped.append("push by digest (no tag)")
            continue
        url = _str(resource.get("resource_url"))
        registry = url.split("/", 1)[0] if url and "/" in url else url
        why = _invalid(full, tag, digest, registry)
        if why is not None:
            out.invalid.append(f"Harbor resource {n}: {why}")
            continue
        assert full and tag and digest
        out.pushes.append(PushEvent(full, tag, digest, registry, None, None, None, "harbor"))
    return out
