"""The credential service: what the commands and the credsStore verbs do with the registry table.

`get` itself is the pipeline's (pipeline.py); this module is not loaded on a cache hit.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Any, Callable, Mapping, Optional, TypeVar

from . import cache_policy, doctor
from .cache_policy import DEFAULT_REFRESH_MARGIN
from .doctor import Problem, Progress
from .errors import AmbiguousRegistry, CredentialsNotFound, IdpError, InvalidInput, NotRegistered
from .kubernetes import KubeletMatch
from .matching import (
    SCOPE_VARIABLE,
    Selection,
    concrete,
    host_matches,
    host_of,
    is_pattern,
    parse_prefix,
    parse_server,
    select,
    server_key,
)
from .model import Credential, Login, Registration, Secrets, validate_id
from .pipeline import GetPipeline
from .precedence import clash
from .providers import canonical_type, get_provider
from .providers.base import Provider
from .sources import Report, Settled, Source, apply, fetch_listing, is_hand_made, settle
from .sources import sync as sync_source
from .token_cache import CachedToken, TokenCache
from .vault import Vault

Table = dict[str, Registration]
T = TypeVar("T")
PROG = "docker-credential-idp"

ID_MAX = 253


def _id_for(prefix: str, taken: Mapping[str, object]) -> str:
    """A registration id derived from a prefix: `127.0.0.1:5000/team` -> `127.0.0.1-5000-team`."""
    chars = [c if c.isascii() and (c.isalnum() or c in ".-") else "-" for c in prefix.lower()]
    base = "".join(chars).strip(".-")[: ID_MAX - 4].strip(".-") or "registry"
    candidate, counter = base, 2
    while candidate in taken:
        candidate, counter = f"{base}-{counter}", counter + 1
    return candidate


class CredentialService:
    def __init__(
        self,
        vault: Vault,
        env: Mapping[str, str],
        warn: Callable[[str], None] = lambda message: None,
        providers: Callable[[str], Provider] = get_provider,
        now: Callable[[], float] = time.time,
        debug: Optional[Callable[[str], None]] = None,
    ) -> None:
        self.vault = vault
        self.env = env
        self.warn = warn
        self.providers = providers
        self.now = now
        self.pipeline = GetPipeline(vault, env, warn, now, debug)

    # -- matching ----------------------------------------------------------------------------------------------

    def choose(self, request: str) -> tuple[Registration, Selection]:
        """The registration serving a normalised request (see matching.select): one on its host, or a pattern.
        Registry sources that are due are synced first, as `get` does."""
        synced: set[str] = set()  # each source at most once
        self.pipeline.sync_sources(missing=False, synced=synced)
        try:
            return self._choose(request)
        except CredentialsNotFound:
            if self.pipeline.sync_sources(missing=True, synced=synced):
                return self._choose(request)
            raise

    def _choose(self, request: str) -> tuple[Registration, Selection]:
        on_host = self.vault.registrations_on_host(host_of(request)) + self.vault.pattern_registrations()
        selection = select(request, [(r.prefix, r.id) for r in on_host], self.env.get(SCOPE_VARIABLE))
        return next(r for r in on_host if r.id == selection.registration_id), selection

    def _serving(self, request: str, table: Table) -> Optional[Registration]:
        served = self._served_by(request, table)
        return served[0] if len(served) == 1 else None

    def _served_by(self, request: str, table: Table) -> list[Registration]:
        """The registrations a request reaches: the one select chooses, or every one on the host (or matching it)
        when a host-only request cannot choose between them; none when nothing serves it."""
        try:
            selection = select(request, [(r.prefix, r.id) for r in table.values()], self.env.get(SCOPE_VARIABLE))
        except CredentialsNotFound:
            return []
        except AmbiguousRegistry:
            host = host_of(request)
            return sorted((r for r in table.values() if host_of(r.prefix) == host
                           or (is_pattern(r.prefix) and host_matches(host_of(r.prefix), host))), key=lambda r: r.id)
        return [table[selection.registration_id]]

    # -- credentials -------------------------------------------------------------------------------------------

    def token_cache(self) -> TokenCache:
        return self.pipeline.token_cache()

    def username_hint(self, registration: Registration) -> str:
        """The username `list` reports without fetching anything."""
        if registration.login is not None:
            return registration.login.username
        return self.providers(registration.type).username_hint(registration)

    def credential(self, registration: Registration, request: str = "") -> Credential:
        """The registration's credential for a normalised request (whose host a pattern registration serves),
        through the get pipeline: cached while fresh, fetched once for all."""
        token = self.pipeline.credential_for(registration, request)
        return Credential(token.username, token.secret, token.expires_at)

    def get(self, server: str) -> CachedToken:
        return self.pipeline.get(server)

    # -- the credsStore verbs ----------------------------------------------------------------------------------

    def store(self, server: str, username: str, secret: str) -> None:
        """docker login's credentials, kept apart from what `registry add` made so that `docker logout` (erase)
        restores the table exactly: a new `store` registration for that server, or a login laid over a `basic`
        registration with that prefix. A host a token provider serves keeps its tokens (login still succeeds)."""
        request = parse_server(server)

        def change(table: Table) -> Optional[str]:
            exact = next((r for r in table.values() if r.prefix == request), None)
            target = exact or self._serving(request, table)
            if target is not None and target.type != "basic":
                return (
                    f"docker-credential-idp: {request} is served by registration {target.id!r} (type {target.type}), "
                    "which fetches its own tokens; the credentials from docker login were not stored"
                )
            if exact is not None and exact.origin == "store":
                table[exact.id] = replace(exact, settings={**exact.settings, "username": username},
                                          secrets=Secrets({"password": secret}))
            elif exact is not None:
                table[exact.id] = replace(exact, login=Login(username, secret))
            else:
                new_id = _id_for(request, table)
                table[new_id] = Registration(id=new_id, prefix=request, type="basic", settings={"username": username},
                                             secrets=Secrets({"password": secret}), origin="store")
            return None

        note, settled = self.change_table(change)
        if note:
            self.warn(note)
        for line in [line for s in settled for line in s.lines()]:
            self.warn(f"docker-credential-idp: {line}")

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
                table[exact.id] = replace(exact, login=None)
            else:
                return [exact] if exact is not None else self._served_by(request, table)
            removed.append(exact.id)
            return []

        if not self.vault.exists():
            raise CredentialsNotFound()
        kept, _ = self.change_table(change)  # a synced registration the login shadowed serves again
        cache = self.token_cache()
        if removed:
            cache.drop(removed, self.now())  # a logged-out password does not linger, even encrypted
            return
        if not kept:
            raise CredentialsNotFound()
        if cache.note_once(f"erase {request} {' '.join(r.id for r in kept)}", self.now()):
            self.warn(_logout_note(request, kept))

    def list_servers(self) -> dict[str, str]:
        """What `list` answers: the keys clients look credentials up by (hosts; Docker Hub as docker's index URL),
        each with the username a host-only `get` of that key answers. The daemon strips every key to its host and
        takes the first match, so a key with a path would hand one team's credential to another's image; a host
        whose registrations a host-only request cannot choose between is left out, with a line on stderr. Nothing
        is fetched."""
        table = self.vault.registrations()
        scope = self.env.get(SCOPE_VARIABLE)
        hosts = sorted({host_of(r.prefix) for r in table.values() if not is_pattern(r.prefix)})
        keys: dict[str, str] = {}
        for host in hosts:
            try:
                selection = select(host, [(r.prefix, r.id) for r in table.values()], scope)
            except AmbiguousRegistry as error:
                self.warn(f"docker-credential-idp: list leaves out {host}: {error.message}")
                continue
            registration = table[selection.registration_id]
            keys[server_key(host)] = self.username_hint(registration)
        return keys

    def ambiguity_after_change(self, host: str) -> Optional[str]:
        """The note for an administrator whose change leaves host-only requests for `host` unable to choose."""
        on_host = self.vault.registrations_on_host(host)
        try:
            select(host, [(r.prefix, r.id) for r in on_host])
        except AmbiguousRegistry as error:
            return error.message
        except CredentialsNotFound:
            pass
        return None

    # -- the registry table, for the commands ------------------------------------------------------------------

    def registration(self, registration_id: str) -> Registration:
        registration = self.vault.registrations().get(registration_id)
        if registration is None:
            raise NotRegistered(f"no registration with id {registration_id!r}; see: {PROG} registry list")
        return registration

    def serving(self, request: str) -> tuple[Registration, Selection]:
        """The registration serving a normalised request, or NotRegistered saying so in the commands' words."""
        try:
            return self.choose(request)
        except CredentialsNotFound:
            raise NotRegistered(f"no registration serves {request}; see: {PROG} registry list, or add one with: "
                                f"{PROG} registry add") from None

    def build_registration(self, registration_id: str, prefix: str, type_name: str, values: Mapping[str, Any],
                           common: Mapping[str, Any]) -> Registration:
        """A registration from `registry add`'s values: the type's options (secrets already read) and the options
        every type takes (timeout, refresh_margin, ca_file, insecure; None when not given)."""
        validate_id(registration_id)
        type_name = canonical_type(type_name)
        provider = self.providers(type_name)
        settings, secrets = provider.configure(values)
        provider.check_installed()
        settings.update(self.common_settings(common))
        _check_expire_outlives_margin(settings)
        registration = Registration(registration_id, parse_prefix(prefix), type_name, settings, Secrets(secrets))
        provider.check_prefix(registration)
        return registration

    @staticmethod
    def common_settings(common: Mapping[str, Any]) -> dict[str, Any]:
        """The options every type takes, checked: timeout, refresh_margin, ca_file, insecure (None: not given)."""
        settings: dict[str, Any] = {}
        if common.get("timeout") is not None:
            settings["timeout"] = _seconds(common["timeout"], "--timeout", 3600)
        if common.get("refresh_margin") is not None:
            settings["refresh_margin"] = _seconds(common["refresh_margin"], "--refresh-margin", 86400)
        if common.get("ca_file") is not None:
            settings["ca_file"] = _readable_file(common["ca_file"], "--ca-file")
        if common.get("insecure"):
            settings["insecure"] = True
        return settings

    def add(self, registration: Registration, replace_existing: bool = False) -> tuple[Optional[str], list[Settled]]:
        """Write a registration into the table: the note for a host it leaves ambiguous, if any, and what the
        sources' registrations it shadows (a registration made by hand wins over a synced one, precedence.py)."""

        def change(table: Table) -> None:
            existing = table.get(registration.id)
            if existing is not None and not is_hand_made(existing):
                raise InvalidInput(f"registration {registration.id!r} is synced from {existing.origin}; pick another "
                                   "id (yours wins over it whatever its prefix)")
            if existing is not None and not replace_existing:
                raise InvalidInput(f"registration {registration.id!r} already exists; add --replace to overwrite it")
            others = [(r.prefix, r.id) for r in table.values() if r.id != registration.id and is_hand_made(r)]
            found = clash(registration.prefix, others)
            if found is not None and found.equal:
                raise InvalidInput(f"prefix {registration.prefix} is already registered as {found.registration_id!r}; "
                                   "remove it or pick another prefix")
            if found is not None:
                raise InvalidInput(f"pattern {registration.prefix} {found.explain()}; make one more literal, or "
                                   "remove the other")
            table[registration.id] = registration

        _, settled = self.change_table(change)
        if replace_existing:  # re-adding is how a fix is applied: its next `get` asks the source at once
            self.token_cache().drop([registration.id], self.now(), answers=False)
        return self.ambiguity_after_change(registration.host), settled

    def change_table(self, change: Callable[[Table], T],
                     settles: Callable[[T], bool] = lambda result: True) -> tuple[T, list[Settled]]:
        """A change a person makes to the table (registry add or remove, docker login or logout), after which each
        source's last list is placed again around it (sources.settle) unless `settles(result)` says no: a synced
        registration shadowed drops its cached answers."""
        settled: list[Settled] = []

        def both(table: Table, records: dict[str, dict[str, Any]]) -> T:
            result = change(table)
            if settles(result):
                settled.extend(settle(table, records))
            return result

        result = self.vault.update_with_sources(both)
        shadowed = [c.registration_id for s in settled for c in s.shadowed]
        if shadowed:
            self.token_cache().drop(shadowed, self.now())
        return result, settled

    def test_registration(self, registration: Registration, request: str) -> Any:
        """`registry test`: the registry's /v2/ handshake with the registration's credential (registry_check)."""
        from . import registry_check
        from .errors import ProviderError
        from .timebox import TimedOut, call_within

        credential = self.credential(registration, request)
        served = concrete(registration.prefix, host_of(request))
        host, timeout = host_of(served), registration.fetch_timeout
        try:
            return call_within(timeout + 1, lambda: registry_check.check(registration, served, credential))
        except TimedOut:
            raise ProviderError(f"registry test: {host} did not finish the handshake within --timeout {timeout:g} s; "
                                "raise it with registry add --replace --timeout if the registry is slow") from None

    def doctor(self, online: bool = False, progress: Optional[Callable[[str], None]] = None) -> list[Problem]:
        """The whole chain checked (doctor.py): the vault, docker's config, ambiguous hosts, the containers auth
        files, each registration's identity, sudo; with `online`, each registration's /v2/ handshake, each step
        written to `progress` once the run has taken more than a second. A refused vault is reported and the other
        checks still run: from the file read for diagnosis only when it can be decrypted, else without it."""
        steps = doctor.Progress(progress or (lambda line: None), self.now) if online else None
        try:
            if steps:
                steps.step("checking docker's config, the auth files, the vault and each registration's identity")
            problems, table, trusted = doctor.vault(
                self.vault.home, lambda: list(self.vault.registrations().values()),
                lambda: list(self.vault.registrations_for_diagnosis().values()))
            candidates = [(r.prefix, r.id) for r in table or []]

            def serves(request: str) -> bool:
                try:
                    select(request, candidates, self.env.get(SCOPE_VARIABLE))
                except AmbiguousRegistry:
                    return True  # served, if ambiguously: the ambiguity check says so
                except IdpError:
                    return False
                return True

            problems += doctor.docker_config(self.env, table, serves, doctor.on_path(self.env))
            problems += doctor.ambiguous_hosts(table or [], self.env)
            problems += doctor.containers_auth_files(self.env, serves if table is not None else None, os.geteuid())
            if trusted:  # no provider runs for a table the helper refuses
                problems += doctor.identities(table or [], lambda r: self.providers(r.type).check_identity(r, self.env))
            problems += doctor.running_as(self.env, os.geteuid())
            if online and trusted:
                assert steps is not None
                problems += self._handshake_problems([r for r in table or [] if not is_pattern(r.prefix)], steps)
        finally:
            if steps:
                steps.done()
        return problems

    def _handshake_problems(self, table: list[Registration], steps: Progress) -> list[Problem]:
        """doctor --online: `registry test` for each registration, one progress step each."""
        problems = []
        for number, registration in enumerate(table, 1):
            steps.step(f"registry test {registration.id} ({number}/{len(table)}): {registration.prefix}")
            try:
                outcome = self.test_registration(registration, registration.prefix)
                verdict = None if outcome.ok else outcome.verdict
            except IdpError as error:
                verdict = error.message
            if verdict:
                problems.append(Problem("online", f"registration {registration.id}", verdict,
                                        f"pulls from {registration.prefix} fail",
                                        f"{PROG} registry test {registration.id} shows each step"))
        return problems

    def remove(self, registration_id: str) -> tuple[Registration, list[Settled]]:
        """Take a registration out of the table, and its cached answers with it: what it was, and what the sources'
        registrations it shadowed do now (they serve again)."""

        def change(table: Table) -> Registration:
            if registration_id not in table:
                raise NotRegistered(f"no registration with id {registration_id!r}; see: {PROG} registry list")
            return table.pop(registration_id)

        # A synced registration removed stays out until its source is synced again: settling would put it back.
        removed, settled = self.change_table(change, settles=is_hand_made)
        self.token_cache().drop([registration_id], self.now())
        return removed, settled

    def forget_tokens(self, registration_id: Optional[str]) -> int:
        """Drop the cached answers of one registration (or of all): how many were dropped."""
        if registration_id is not None:
            self.registration(registration_id)
        return self.token_cache().drop([registration_id] if registration_id else None, self.now())

    def kubelet_match(self, request: str) -> tuple[Optional[KubeletMatch], float]:
        """What the kubelet gets for an image: the serving registration's credential (None when none serves it)
        and the refresh margin that bounds how long the kubelet may keep it."""
        try:
            registration, _ = self.choose(request)
        except CredentialsNotFound:
            return None, DEFAULT_REFRESH_MARGIN
        credential = self.credential(registration, request)
        # A pattern's answer is keyed by the host it served, never by the pattern: the kubelet would otherwise
        # hand one account's token to every host the pattern matches.
        served = concrete(registration.prefix, host_of(request))
        siblings = len(self.vault.lines_on_host(host_of(request))) + (1 if is_pattern(registration.prefix) else 0)
        match = KubeletMatch(served, credential.username, credential.secret, credential.expires_at,
                             shares_host=siblings > 1)
        return match, float(registration.settings.get("refresh_margin", DEFAULT_REFRESH_MARGIN))


def _logout_note(request: str, kept: list[Registration]) -> str:
    """Why a logout left `request` served, and how to stop that: registrations from `registry add` are removed by
    id; a source's are the platform's list's to keep."""
    names = ", ".join(repr(r.id) for r in kept)
    fixes = "; ".join(f"the platform's list of source {r.origin.partition(':')[2]!r} keeps {r.id!r}"
                      if r.origin.startswith("source:") else f"{PROG} registry remove {r.id}" for r in kept)
    subject = "registration" if len(kept) == 1 else "registrations"
    return (f"{PROG}: logged out, but {subject} {names} still serve{'s' if len(kept) == 1 else ''} {request} "
            f"(logout removes only what a login stored); to stop that: {fixes}")


def _check_expire_outlives_margin(settings: Mapping[str, Any]) -> None:
    """--expire no longer than the time a token is refreshed before expiry would refetch it on every request."""
    if settings.get("expire") is None:
        return
    from .providers.base import format_duration

    lead = cache_policy.refresh_lead(float(settings.get("refresh_margin", DEFAULT_REFRESH_MARGIN)))
    if float(settings["expire"]) <= lead:
        raise InvalidInput(f"--expire {format_duration(settings['expire'])} is not longer than the "
                           f"{format_duration(lead)} before expiry at which a credential is refreshed (--refresh-margin, "
                           f"never under 5m), so every request would fetch anew; give --expire more than "
                           f"{format_duration(lead)}")


def _seconds(value: Any, flag: str, most: int) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= most:  # false for NaN
        raise InvalidInput(f"{flag} must be a number of seconds between 0 and {most}")
    return seconds


def _readable_file(path: str, flag: str) -> str:
    absolute = os.path.abspath(path)
    try:
        with open(absolute, "rb") as handle:
            handle.read(1)
    except OSError as error:
        raise InvalidInput(f"{flag}: cannot read {path}: {error.strerror}") from None
    return absolute


class SourceTable:
    """The registry sources of a vault (sources.py), for the `source` commands."""

    def __init__(self, service: CredentialService) -> None:
        self.service, self.vault, self.now = service, service.vault, service.now

    def add(self, source: Source, replace_existing: bool, progress: Callable[[str], None] = lambda step: None
            ) -> Report:
        """Keep a source and sync it at once. Its list is read first: a source whose list cannot be read is not
        kept."""
        from urllib.parse import urlsplit

        from .errors import ProviderError
        from .timebox import TimedOut, call_within

        progress(f"source {source.id!r}: reading the list of registries from {urlsplit(source.url).netloc} (at most "
                 f"{source.timeout:g} s)")
        try:
            listing = call_within(source.timeout + 1, lambda: fetch_listing(source))
        except TimedOut:
            raise ProviderError(f"source {source.id!r}: the platform API did not answer within {source.timeout:g} s; "
                                "raise --timeout if it is slow") from None
        progress(f"source {source.id!r}: {len(listing)} registries listed; updating the registry table")
        started = self.now()

        def change(table: Table, records: dict[str, dict[str, Any]]) -> Report:
            if source.id in records and not replace_existing:
                raise InvalidInput(f"source {source.id!r} already exists; add --replace to overwrite it")
            applied, report = apply(replace(source, synced_at=started, attempted_at=started), listing, table)
            records[source.id] = applied.to_record()
            return report

        return self.vault.update_with_sources(change)

    def sync(self, source_id: str, progress: Callable[[str], None] = lambda step: None) -> Report:
        report = sync_source(self.vault, source_id, self.now, progress=progress)
        assert report is not None
        return report

    def ids(self) -> list[str]:
        return sorted(self.vault.sources())

    def remove(self, source_id: str) -> list[str]:
        """Take a source out, with the registrations synced from it (and their cached answers): their ids."""
        removed: list[str] = []

        def change(table: Table, records: dict[str, dict[str, Any]]) -> None:
            if source_id not in records:
                raise NotRegistered(f"no source with id {source_id!r}; see: {PROG} source list")
            del records[source_id]
            removed.extend(r.id for r in table.values() if r.origin == f"source:{source_id}")
            for registration_id in removed:
                del table[registration_id]
            settle(table, records)  # what the other sources list that this one held comes in

        self.vault.update_with_sources(change)
        if removed:
            self.service.token_cache().drop(removed, self.now())
        return removed

    def rows(self) -> list[dict[str, Any]]:
        """What `source list` shows: never the token."""
        table = self.vault.registrations().values()
        rows = []
        for _, record in sorted(self.vault.sources().items()):
            source = Source.from_record(record)
            rows.append({"id": source.id, "type": "platform", "url": source.url, "org": source.org,
                         "refresh": source.refresh, "synced_at": source.synced_at, "last_error": source.last_error,
                         "registrations": sorted(r.id for r in table if r.origin == source.origin),
                         "shadowed": [{"id": c.registration_id, "prefix": c.prefix, "by": c.holder, "why": c.line()}
                                      for c in source.conflicts]})
        return rows
