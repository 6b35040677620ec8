"""Find stored registry credentials the way docker and podman do: containers ``auth.json``,
docker ``config.json`` (``auths``, ``identitytoken``, ``credsStore``, ``credHelpers``)."""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
from typing import Any, Mapping

from slimmer.oci.refs import DOCKER_HUB, HUB_ALIASES
from slimmer.transports.registry.options import Credentials

#: The key docker uses for Docker Hub in config.json and with credential helpers.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
#: Seconds a ``docker-credential-*`` helper may take.
HELPER_TIMEOUT = 30


def auth_files(environ: Mapping[str, str]) -> list[str]:
    """Candidate auth files, most specific first (podman's order, then docker's)."""
    files = []
    if environ.get("REGISTRY_AUTH_FILE"):
        files.append(environ["REGISTRY_AUTH_FILE"])
    if environ.get("XDG_RUNTIME_DIR"):
        files.append(os.path.join(environ["XDG_RUNTIME_DIR"], "containers", "auth.json"))
    if environ.get("DOCKER_CONFIG"):
        files.append(os.path.join(environ["DOCKER_CONFIG"], "config.json"))
    elif environ.get("HOME"):
        files.append(os.path.join(environ["HOME"], ".docker", "config.json"))
    return files


def _normalise(key: str) -> tuple[str, str]:
    """An auths / credHelpers key -> (registry, repository prefix)."""
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix):]
            host, _, _ = key.partition("/")   # a URL path (/v1/, /v2/) is not a repository
            key = host
            break
    host, _, path = key.partition("/")
    if host in HUB_ALIASES:
        host = DOCKER_HUB
    return host, path.rstrip("/")


def _best_key(keys: Any, registry: str, repository: str) -> str | None:
    """The key naming ``registry`` (and the longest matching repository prefix)."""
    best: tuple[int, str] | None = None
    for key in keys:
        if not isinstance(key, str):
            continue
        host, path = _normalise(key)
        if host != registry:
            continue
        if path and repository != path and not repository.startswith(path + "/"):
            continue
        if best is None or len(path) > best[0]:
            best = (len(path), key)
    return best[1] if best else None


def _server_url(registry: str) -> str:
    return DOCKER_HUB_KEY if registry == DOCKER_HUB else registry


def run_helper(name: str, registry: str) -> Credentials | None:
    """Ask ``docker-credential-NAME get``; None if it is missing or has nothing stored."""
    try:
        proc = subprocess.run([f"docker-credential-{name}", "get"],
                              input=_server_url(registry).encode(), capture_output=True,
                              timeout=HELPER_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    try:
        doc = json.loads(proc.stdout)
        user, secret = doc.get("Username", ""), doc.get("Secret", "")
    except (ValueError, AttributeError):
        return None
    if not isinstance(user, str) or not isinstance(secret, str) or not secret:
        return None
    if user == "<token>":
        return Credentials(user, "", identity_token=secret)
    return Credentials(user, secret)


def _from_entry(entry: Any) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    user = password = ""
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            user, _, password = base64.b64decode(auth).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
    else:
        user = entry.get("username") or ""
        password = entry.get("password") or ""
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        return Credentials(user or "<token>", "", identity_token=token)
    if user and isinstance(user, str) and isinstance(password, str):
        return Credentials(user, password)
    return None


def from_config(doc: Mapping[str, Any], registry: str, repository: str) -> Credentials | None:
    """Credentials for ``registry/repository`` from one parsed config.json / auth.json."""
    helpers = doc.get("credHelpers")
    if isinstance(helpers, dict):
        key = _best_key(helpers, registry, repository)
        if key is not None and isinstance(helpers[key], str):
            return run_helper(helpers[key], registry)
    store = doc.get("credsStore")
    if isinstance(store, str) and store:
        found = run_helper(store, registry)
        if found is not None:
            return found
    auths = doc.get("auths")
    if isinstance(auths, dict):
        key = _best_key(auths, registry, repository)
        if key is not None:
            return _from_entry(auths[key])
    return None


def find_credentials(registry: str, repository: str,
                     environ: Mapping[str, str] | None = None) -> Credentials | None:
    """Stored credentials for a repository, from the first auth file that has some."""
    env = os.environ if environ is None else environ
    for path in auth_files(env):
        try:
            with open(path, "rb") as fh:
                doc = json.loads(fh.read(1 << 20))
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict):
            found = from_config(doc, registry, repository)
            if found is not None:
                return found
    return None
