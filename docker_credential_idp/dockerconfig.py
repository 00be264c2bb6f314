"""Editing Docker's config.json: credHelpers entries that route registries to this helper.

config.json is shared with docker itself, other credential helpers and every tool that reads it, so we behave as a
guest: every other key stays, an "auths" object is kept (oras-py fails with KeyError: 'auths' without one), and an
entry that routes a host to another helper is left alone unless the user says --force; what we took over is given
back on --unset."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .errors import ConfigError
from .fsutil import LockTimeout, acquire_lock, atomic_write, cannot_write, lock_busy, read_file, read_private
from .jsontext import UnkeptNumber, loads
from .matching import DOCKER_HUB, DOCKER_HUB_SERVER_URL

HELPER_NAME = "idp"
CREDS_STORE = "credsStore"
# Docker Hub under every key a client looks it up by (measured; docs in README "configure-docker"): docker CLI and
# docker-py the index URL, containers/image (skopeo, podman, buildah) and oras-py docker.io, go-containerregistry
# (trivy, syft) and Helm index.docker.io as is. Where that last key routes nowhere, `trivy registry login docker.io`
# and `syft login` write the password base64 into config.json and Helm skips the helper.
DOCKER_HUB_INDEX_HOST = "index.docker.io"
DOCKER_HUB_KEYS = (DOCKER_HUB, DOCKER_HUB_INDEX_HOST, DOCKER_HUB_SERVER_URL)
# What was in config.json before we took an entry over, by config.json's real path. Kept in our home, not as a key
# in config.json: docker login and logout rewrite config.json with the keys docker knows only (docker CLI 28.2 drops
# any other), `buildah logout --all` deletes credHelpers whole, and a key there would be ours to explain to every
# tool that reads the file. It holds helper names (never a secret), and only while we hold an entry.
PREVIOUS_HELPERS_FILE = "docker-config-previous-helpers.json"
LOCK_FILE = "docker-config.lock"  # serialises our own writers of config.json and of PREVIOUS_HELPERS_FILE
MAX_CONFIG_BYTES = 16 * 1024 * 1024  # docker's config.json, and the containers tools' auth files doctor reads
MAX_PREVIOUS_BYTES = 1024 * 1024


def keys_for_host(host: str) -> list[str]:
    """The credHelpers keys clients look a registered host up by: Docker Hub's three (DOCKER_HUB_KEYS), else the
    host itself."""
    return list(DOCKER_HUB_KEYS) if host == DOCKER_HUB else [host]


def load(path: Path) -> dict[str, Any]:
    try:
        data = read_file(path, MAX_CONFIG_BYTES)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if data is None or not data.strip():
        return {}
    try:
        config = loads(data, finite=True)
    except UnkeptNumber as error:  # written back it would be `Infinity`, which docker refuses
        raise ConfigError(f"{path} holds the number {error}, which JSON cannot hold once read (NaN, Infinity or out "
                          "of range); fix it, then run this again (it was not changed)") from None
    except ValueError:
        raise ConfigError(f"{path} is not valid JSON; fix or move it, then run this again (it was not changed)") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path} does not hold a JSON object; fix or move it (it was not changed)")
    for key in ("credHelpers", "auths"):
        if not isinstance(config.get(key, {}), dict):
            raise ConfigError(f"{key} in {path} is not a JSON object; fix it (the file was not changed)")
    return config


def configured_hosts(path: Path) -> set[str]:
    """The hosts routed here under every key clients look them up by (Docker Hub under all three)."""
    try:
        helpers = load(path).get("credHelpers", {})
    except ConfigError:
        return set()
    routed = {key for key, value in helpers.items() if value == HELPER_NAME}
    return {key for key in routed if set(keys_for_host(key)) <= routed}


@dataclass(frozen=True)
class Update:
    """What `update` did to config.json. Keys are credHelpers keys, or "credsStore"; helpers are names as docker
    spells them (`gcloud` for docker-credential-gcloud)."""

    changed: tuple[str, ...] = ()  # keys routed here, or (unset) no longer
    auths_added: bool = False  # an empty "auths" object, which the file lacked
    taken_over: tuple[tuple[str, str], ...] = ()  # (key, the helper it was routed to), with --force
    given_back: tuple[tuple[str, str], ...] = ()  # (key, the helper routed to again), on --unset
    left: tuple[tuple[str, str], ...] = ()  # (key, another helper) not taken over, for want of --force

    @property
    def wrote(self) -> bool:
        return bool(self.changed or self.auths_added or self.taken_over or self.given_back)


def update(path: Path, hosts: Iterable[str], *, unset: bool, home: Path, creds_store: bool = False,
           force: bool = False, every_entry: bool = False) -> Update:
    """Add (or with `unset`, remove) our credHelpers entries (and credsStore); every other key stays.

    Another helper's entry is left (and reported) unless `force`; one taken over is remembered in the home
    (PREVIOUS_HELPERS_FILE) and restored on `unset`. With `unset` and `every_entry`, every credHelpers entry routed
    here goes, whichever hosts are registered now: a registration removed first leaves no other way to give its
    entries back. Our writers are serialised by a lock in the home; docker itself does not lock, which the atomic
    rename makes harmless. A home that cannot be written is one line naming it and the fix."""
    try:
        return _update(path, hosts, unset=unset, home=home, creds_store=creds_store, force=force,
                       every_entry=every_entry)
    except OSError as error:
        where = os.fspath(error.filename) if error.filename is not None else ""
        if where != os.fspath(home) and not where.startswith(os.path.join(os.fspath(home), "")):
            raise  # another file's failure (config.json's): the home's fix would not be the fix
        raise ConfigError(cannot_write(error, home)) from None


def _update(path: Path, hosts: Iterable[str], *, unset: bool, home: Path, creds_store: bool, force: bool,
            every_entry: bool) -> Update:
    lock, previous_helpers = home / LOCK_FILE, home / PREVIOUS_HELPERS_FILE
    try:
        held = acquire_lock(lock)
    except LockTimeout:
        raise ConfigError(lock_busy(lock)) from None
    try:
        config = load(path)
        # Through a symlinked config.json to its target, as docker's own Save does (dotfile managers link it).
        target = os.path.realpath(path)
        remembered_all = _read_previous(previous_helpers)
        remembered = dict(remembered_all.get(target, {}))
        helpers = dict(config.get("credHelpers", {}))
        keys = [key for host in hosts for key in keys_for_host(host)]
        if unset and every_entry:
            keys += [key for key, helper in helpers.items() if helper == HELPER_NAME]
            keys += [key for key in remembered if key != CREDS_STORE]  # credsStore goes with --creds-store only
        routes = [(helpers, key) for key in dict.fromkeys(keys)]
        if creds_store:
            routes.append((config, CREDS_STORE))
        changed: list[str] = []
        taken_over: list[tuple[str, str]] = []
        given_back: list[tuple[str, str]] = []
        left: list[tuple[str, str]] = []
        for table, key in routes:
            current = table.get(key)
            if unset:
                before = remembered.pop(key, None)
                if current != HELPER_NAME:
                    continue  # not ours (any more): a hand edit since is the user's, and nothing to give back
                if before:
                    table[key] = before
                    given_back.append((key, before))
                else:
                    del table[key]
                    changed.append(key)
            elif current == HELPER_NAME:
                continue
            elif isinstance(current, str) and current and not force:
                left.append((key, current))
            else:
                if isinstance(current, str) and current:
                    remembered[key] = current
                    taken_over.append((key, current))
                else:  # no entry (the user, or `buildah logout --all`, removed it since): we replace nothing
                    remembered.pop(key, None)
                    changed.append(key)
                table[key] = HELPER_NAME
        auths_added = "auths" not in config and not unset
        result = Update(tuple(changed), auths_added, tuple(taken_over), tuple(given_back), tuple(left))
        memory_changed = remembered != remembered_all.get(target, {})
        if not result.wrote:
            if memory_changed:  # entries changed by hand since we took them over: nothing left to give back
                _write_previous(previous_helpers, remembered_all, target, remembered)
            return result
        config.setdefault("auths", {})  # never removed; created whenever we write (docker writes {} too)
        if helpers:
            config["credHelpers"] = helpers
        else:
            config.pop("credHelpers", None)
        # Adding, remembered (or forgotten) before config.json changes: a crash between must not lose what was
        # there, nor keep a helper the user removed. Unsetting, forgotten once given back.
        if memory_changed and not unset:
            _write_previous(previous_helpers, remembered_all, target, remembered)
        mode = os.stat(target).st_mode & 0o777 if os.path.exists(target) else 0o600
        atomic_write(target, (json.dumps(config, indent="\t") + "\n").encode("utf-8"), mode=mode)
        if memory_changed and unset:
            _write_previous(previous_helpers, remembered_all, target, remembered)
        return result
    finally:
        os.close(held)


def _read_previous(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = read_private(path, MAX_PREVIOUS_BYTES, secret=False)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if data is None:
        return {}
    try:
        found = loads(data)
    except ValueError:
        found = None
    if not isinstance(found, dict) or not all(
            isinstance(entries, dict) and all(isinstance(v, str) for v in entries.values()) for entries in found.values()):
        raise ConfigError(f"{path} is damaged; remove it (it only remembers which helpers configure-docker --force "
                          "replaced, for --unset to restore them)")
    return found


def _write_previous(path: Path, every_config: dict[str, dict[str, str]], target: str,
                    remembered: dict[str, str]) -> None:
    updated = {**every_config, target: remembered}
    if not remembered:
        del updated[target]
    if not updated:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    atomic_write(path, (json.dumps(updated, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def auths_document(credentials: dict[str, tuple[str, str]]) -> str:
    """A docker config holding credentials, by registry host: {"auths": {KEY: {"auth": base64(user:password)}}},
    what DOCKER_AUTH_CONFIG (docker CLI 28.3 and later) and --authfile / REGISTRY_AUTH_FILE (skopeo, podman,
    buildah) read. Docker Hub's key is docker's index URL, which containers/image reads as docker.io too."""
    import base64

    from .matching import server_key

    auths = {server_key(host): {"auth": base64.b64encode(f"{username}:{password}".encode()).decode("ascii")}
             for host, (username, password) in sorted(credentials.items())}
    return json.dumps({"auths": auths}, indent=2) + "\n"
