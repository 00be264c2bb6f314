"""Editing Docker's config.json: credHelpers entries that route registries to this helper."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from .errors import ConfigError
from .fsutil import LockTimeout, acquire_lock, atomic_write, lock_busy, read_file
from .jsontext import loads
from .matching import DOCKER_HUB, DOCKER_HUB_SERVER_URL

HELPER_NAME = "idp"
MAX_CONFIG_BYTES = 16 * 1024 * 1024  # docker's config.json, and the containers tools' auth files doctor reads


def keys_for_host(host: str) -> list[str]:
    """credHelpers keys for a registered host. Docker CLI and docker-py look Docker Hub up as docker's index URL,
    containers/image (skopeo, podman) as docker.io."""
    return [DOCKER_HUB, DOCKER_HUB_SERVER_URL] if host == DOCKER_HUB else [host]


def load(path: Path) -> dict[str, Any]:
    try:
        data = read_file(path, MAX_CONFIG_BYTES)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if data is None or not data.strip():
        return {}
    try:
        config = loads(data)
    except ValueError:
        raise ConfigError(f"{path} is not valid JSON; fix or move it, then run this again (it was not changed)") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path} does not hold a JSON object; fix or move it (it was not changed)")
    if not isinstance(config.get("credHelpers", {}), dict):
        raise ConfigError(f"credHelpers in {path} is not a JSON object; fix it (the file was not changed)")
    return config


def configured_hosts(path: Path) -> set[str]:
    try:
        helpers = load(path).get("credHelpers", {})
    except ConfigError:
        return set()
    return {key for key, value in helpers.items() if value == HELPER_NAME}


def update(path: Path, hosts: Iterable[str], *, unset: bool, lock: Path, creds_store: bool = False) -> list[str]:
    """Add (or with `unset`, remove) our credHelpers entries; every other key stays. Returns the keys changed.

    `lock` serialises our own writers; docker itself does not lock, which the atomic rename makes harmless."""
    try:
        held = acquire_lock(lock)
    except LockTimeout:
        raise ConfigError(lock_busy(lock)) from None
    try:
        config = load(path)
        helpers = dict(config.get("credHelpers", {}))
        changed = []
        for host in hosts:
            for key in keys_for_host(host):
                if unset and helpers.get(key) == HELPER_NAME:
                    del helpers[key]
                    changed.append(key)
                elif not unset and helpers.get(key) != HELPER_NAME:
                    helpers[key] = HELPER_NAME
                    changed.append(key)
        if creds_store:
            if unset and config.get("credsStore") == HELPER_NAME:
                del config["credsStore"]
                changed.append("credsStore")
            elif not unset and config.get("credsStore") != HELPER_NAME:
                config["credsStore"] = HELPER_NAME
                changed.append("credsStore")
        if not changed:
            return []
        if helpers:
            config["credHelpers"] = helpers
        else:
            config.pop("credHelpers", None)
        # Through a symlinked config.json to its target, as docker's own Save does (dotfile managers link it).
        target = os.path.realpath(path)
        mode = os.stat(target).st_mode & 0o777 if os.path.exists(target) else 0o600
        atomic_write(target, (json.dumps(config, indent="\t") + "\n").encode("utf-8"), mode=mode)
        return changed
    finally:
        os.close(held)


def auths_document(credentials: dict[str, tuple[str, str]]) -> str:
    """A docker config holding credentials, by registry host: {"auths": {KEY: {"auth": base64(user:password)}}},
    what DOCKER_AUTH_CONFIG (docker CLI 28.3 and later) and --authfile / REGISTRY_AUTH_FILE (skopeo, podman,
    buildah) read. Docker Hub's key is docker's index URL, which containers/image reads as docker.io too."""
    import base64

    from .matching import server_key

    auths = {server_key(host): {"auth": base64.b64encode(f"{username}:{password}".encode()).decode("ascii")}
             for host, (username, password) in sorted(credentials.items())}
    return json.dumps({"auths": auths}, indent=2) + "\n"
