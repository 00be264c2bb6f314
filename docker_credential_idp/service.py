"""The credsStore verbs other than `get`: `store` (docker login), `erase` (docker logout) and `list`, over the
registry table (table.py). `get` itself is the pipeline's (pipeline.py); this module is not loaded on a cache hit.
"""

from __future__ import annotations

from typing import Mapping, Optional

from .errors import PROG, AmbiguousRegistry, CredentialsNotFound
from .matching import host_matches, host_of, is_pattern, parse_server, registered_hosts, select, server_key
from .model import Login, Registration, Secrets
from .table import RegistryTable, Table

ID_MAX = 253


class CredsStore:
    def __init__(self, table: RegistryTable) -> None:
        self.table = table

    def store(self, server: str, username: str, secret: str) -> None:
        """docker login's credentials, kept apart from what `registry add` made so that `docker logout` (erase)
        restores the table exactly: a new `store` registration for that server, or a login laid over a `basic`
        registration with that prefix. A host a token provider serves keeps its tokens (login still succeeds)."""
        request = parse_server(server)

        def change(table: Table) -> Optional[str]:
            exact = next((r for r in table.values() if r.prefix == request), None)
            target = exact or _only(_reached(request, table, self.table.scope))
            if target is not None and target.type != "basic":
                return (
                    f"{PROG}: {request} is served by registration {target.id!r} (type {target.type}), "
                    "which fetches its own tokens; the credentials from docker login were not stored"
                )
            if exact is not None and exact.origin == "store":
                table[exact.id] = exact.replace(settings={**exact.settings, "username": username},
                                          secrets=Secrets({"password": secret}))
            elif exact is not None:
                table[exact.id] = exact.replace(login=Login(username, secret))
            else:
                new_id = _id_for(request, table)
                table[new_id] = Registration(id=new_id, prefix=request, type="basic", settings={"username": username},
                                             secrets=Secrets({"password": secret}), origin="store")
            return None

        note, settled = self.table.change_table(change)
        if note:
            self.table.warn(note)
        for line in [line for s in settled for line in s.lines()]:
            self.table.warn(f"{PROG}: {line}")

    def erase(self, server: str) -> None:
        """docker logout: removes exactly what store stored — its registration, or its login over a registration
        `registry add` made. A host that other registrations serve logs out all the same (trivy and Helm stop on a
        failing logout), with a note, once for the several erase calls one logout makes, that they stay. A host
        nothing serves is not found (docker ignores that)."""
        request = parse_server(server)
        removed: list[str] = []

        def change(table: Table) -> list[Registration]:
            exact = next((r for r in table.values() if r.prefix == request), None)
            if exact is not None and exact.origin == "store":
                del table[exact.id]
            elif exact is not None and exact.login is not None:
                table[exact.id] = exact.replace(login=None)
            else:
                return [exact] if exact is not None else _reached(request, table, self.table.scope)
            removed.append(exact.id)
            return []

        if not self.table.vault.exists():
            raise CredentialsNotFound()
        kept, _ = self.table.change_table(change)  # a synced registration the login shadowed serves again
        cache, now = self.table.token_cache(), self.table.now()
        if removed:
            cache.drop(removed, now)  # a logged-out password does not linger, even encrypted
            return
        if not kept:
            raise CredentialsNotFound()
        if cache.note_once(f"erase {request} {' '.join(r.id for r in kept)}", now):
            self.table.warn(_logout_note(request, kept))

    def list_servers(self) -> dict[str, str]:
        """What `list` answers: the keys clients look credentials up by (hosts; Docker Hub as docker's index URL),
        each with the username a host-only `get` of that key answers. The daemon strips every key to its host and
        takes the first match, so a key with a path would hand one team's credential to another's image; a host
        whose registrations a host-only request cannot choose between is left out, with a line on stderr. Nothing
        is fetched."""
        table = self.table.registrations()
        candidates = [(r.prefix, r.id) for r in table.values()]
        keys: dict[str, str] = {}
        for host in registered_hosts(r.prefix for r in table.values()):
            try:
                selection = select(host, candidates, self.table.scope)
            except AmbiguousRegistry as error:  # left out, with why
                self.table.warn(f"{PROG}: list leaves out {host}: {error.message}")
                continue
            keys[server_key(host)] = self.table.username_hint(table[selection.registration_id])
        return keys


def _reached(request: str, table: Table, scope: Optional[str]) -> list[Registration]:
    """The registrations a login or logout of `request` reaches: the one matching.select chooses, or, when a
    host-only request cannot choose, every one on the host (or a pattern matching it); none when nothing serves it."""
    try:
        return [table[select(request, [(r.prefix, r.id) for r in table.values()], scope).registration_id]]
    except CredentialsNotFound:
        return []
    except AmbiguousRegistry:
        host = host_of(request)
        return sorted((r for r in table.values() if host_of(r.prefix) == host
                       or (is_pattern(r.prefix) and host_matches(host_of(r.prefix), host))), key=lambda r: r.id)


def _only(registrations: list[Registration]) -> Optional[Registration]:
    return registrations[0] if len(registrations) == 1 else None


def _id_for(prefix: str, taken: Mapping[str, object]) -> str:
    """A registration id derived from a prefix: `127.0.0.1:5000/team` -> `127.0.0.1-5000-team`."""
    chars = [c if c.isascii() and (c.isalnum() or c in ".-") else "-" for c in prefix.lower()]
    base = "".join(chars).strip(".-")[: ID_MAX - 4].strip(".-") or "registry"
    candidate, counter = base, 2
    while candidate in taken:
        candidate, counter = f"{base}-{counter}", counter + 1
    return candidate


def _logout_note(request: str, kept: list[Registration]) -> str:
    """Why a logout left `request` served, and how to stop that: registrations from `registry add` are removed by
    id; a source's are the platform's list's to keep."""
    names = ", ".join(repr(r.id) for r in kept)
    fixes = "; ".join(f"the platform's list of source {r.source_id!r} keeps {r.id!r}"
                      if r.source_id is not None else f"{PROG} registry remove {r.id}" for r in kept)
    subject = "registration" if len(kept) == 1 else "registrations"
    return (f"{PROG}: logged out, but {subject} {names} still serve{'s' if len(kept) == 1 else ''} {request} "
            f"(logout removes only what a login stored); to stop that: {fixes}")
