"""Registry sources: the registry table synced from a platform's list of registries, so that a runner or a node
holds one platform token instead of one `registry add` per registry.

The platform of seed 000 lists an organisation's registries at `GET {url}/orgs/{org}/registries` (objects with
`id`, `registry` — the prefix —, `type` and `enable_ci`) and serves each one's credential at
`GET {url}/orgs/{org}/registries/{id}/creds`. Every listed registry with `enable_ci` true becomes a `platform`
registration `SOURCE.ID` whose credential comes from its creds endpoint; the others are skipped. A registration
made by hand (`registry add`, `docker login`) wins on any overlap: a listed entry that would change which
registration answers a request a hand-made one answers (precedence.taking), or that `registry add` would refuse
beside another (precedence.clash), is shadowed — kept out, and reported as a conflict. The source keeps its last
list, so that the table is settled again, without calling the platform, whenever a person changes it.

`get` syncs a source when its table is older than its refresh interval, or when no registration serves a request
(at most once a minute), bounded by the source's timeout, under a lock so that parallel callers sync once. A cache
hit never calls the platform. When the platform cannot be reached the last table keeps serving, with a warning.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from . import source_record
from .cache_policy import SyncReason, lock_wait, source_due
from .errors import PROG, IdpError, InvalidInput, ProviderError
from .fsutil import LockTimeout
from .httpclient import check_endpoint, send
from .matching import parse_prefix
from .model import DEFAULT_FETCH_TIMEOUT, Registration, Secrets, validate_id
from .platform_api import Platform, list_registries
from .precedence import Competition
from .timebox import TimedOut, call_within
from .token_cache import acquire_fetch_lock
from .vault import Vault

if TYPE_CHECKING:
    from .cache_policy import Reason
    from .httpclient import Transport

DEFAULT_REFRESH = 600.0
TYPES = ("platform",)


@dataclass(frozen=True)
class Source:
    id: str
    url: str
    org: str
    token: str = field(repr=False)
    refresh: float = DEFAULT_REFRESH
    timeout: float = DEFAULT_FETCH_TIMEOUT
    ca_file: Optional[str] = None
    synced_at: Optional[float] = None  # the last sync that read the list
    attempted_at: float = 0.0  # the last sync tried, read or not
    last_error: Optional[str] = None
    # What the last list read gave (None in a vault from before they were kept: the table's registrations stand for
    # them), so that the table can be settled again when a person changes it, without calling the platform.
    entries: Optional[tuple[Entry, ...]] = None
    conflicts: tuple[Conflict, ...] = ()

    @property
    def origin(self) -> str:
        """What the registrations synced from this source carry as their origin."""
        return f"source:{self.id}"

    @property
    def settings(self) -> dict[str, Any]:
        return {"ca_file": self.ca_file} if self.ca_file else {}

    def to_record(self) -> dict[str, Any]:
        return {"id": self.id, "type": "platform", "url": self.url, "org": self.org, "token": self.token,
                "refresh": self.refresh, "timeout": self.timeout, "ca_file": self.ca_file,
                "synced_at": self.synced_at, "attempted_at": self.attempted_at, "last_error": self.last_error,
                "entries": None if self.entries is None else [[e.registry_id, e.prefix] for e in self.entries],
                "conflicts": [c.to_record() for c in self.conflicts]}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Source:
        entries = record.get("entries")
        return cls(record["id"], record["url"], record["org"], record["token"], float(record["refresh"]),
                   float(record["timeout"]), record.get("ca_file"), record.get("synced_at"),
                   float(record.get("attempted_at") or 0), record.get("last_error"),
                   None if entries is None else tuple(Entry(*entry) for entry in entries),
                   tuple(Conflict.from_record(c) for c in record.get("conflicts") or ()))

    def to_text(self) -> str:
        """The source as the vault keeps it (source_record.py)."""
        return source_record.to_text(self.to_record())

    @classmethod
    def from_text(cls, text: str) -> Source:
        return cls.from_record(source_record.from_text(text))


@dataclass(frozen=True)
class Entry:
    """A registry the platform lists with enable_ci true, its id and prefix checked as `registry add` checks them."""

    registry_id: str
    prefix: str


@dataclass(frozen=True)
class Conflict:
    """A listed registry the table does not take (it is shadowed), and the registration that keeps it out."""

    registration_id: str  # the id it would have: SOURCE.REGISTRY
    registry_id: str
    prefix: str
    holder: str
    reason: str  # continues a sentence that starts with the prefix

    def line(self) -> str:
        return f"{self.prefix} ({self.registry_id}) {self.reason}"

    def to_record(self) -> dict[str, str]:
        return {"id": self.registration_id, "registry_id": self.registry_id, "prefix": self.prefix,
                "holder": self.holder, "reason": self.reason}

    @classmethod
    def from_record(cls, record: Mapping[str, str]) -> Conflict:
        return cls(record["id"], record["registry_id"], record["prefix"], record["holder"], record["reason"])


@dataclass
class Report:
    """What one sync did, for `source sync` to print and `get` to warn about. Every text in it that came from the
    platform was checked (an id) or is quoted with its control characters escaped."""

    added: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)  # listed with enable_ci false
    conflicts: list[str] = field(default_factory=list)  # one line each: which prefix, and who keeps it out
    invalid: list[str] = field(default_factory=list)

    def lines(self, source_id: str) -> list[str]:
        out = [f"{source_id}: {len(self.added)} added, {len(self.moved)} moved, {len(self.removed)} removed, "
               f"{len(self.kept)} unchanged, {len(self.conflicts)} shadowed"]
        out += [f"{source_id}: added {r}" for r in self.added] + [f"{source_id}: moved {r}" for r in self.moved]
        out += [f"{source_id}: removed {r}" for r in self.removed]
        out += [f"{source_id}: skipped {r} (enable_ci is false on the platform)" for r in self.disabled]
        out += [f"{source_id}: conflict: {c}" for c in self.conflicts]
        out += [f"{source_id}: skipped {i}" for i in self.invalid]
        return out


def new_source(source_id: str, url: str, org: str, token: str, refresh: Optional[float], timeout: Optional[float],
               ca_file: Optional[str]) -> Source:
    validate_id(source_id)
    if not org.strip() or "/" in org or not org.isprintable():
        raise InvalidInput("--org must be a non-empty name without '/' or control characters")
    if not url.isprintable():
        raise InvalidInput("--url must be an https URL such as https://api.example.com, without control characters")
    return Source(source_id, check_endpoint(url, "--url"), org, token, refresh or DEFAULT_REFRESH,
                  timeout or DEFAULT_FETCH_TIMEOUT, ca_file)


def fetch_listing(source: Source, transport: Transport = send,
                  sleep: Callable[[float], None] = time.sleep) -> list[dict[str, Any]]:
    """The platform's list of the organisation's registries (platform_api.py: its retries, all within the source's
    timeout); ProviderError in one line when it cannot be read."""
    return list_registries(Platform(source.url, source.org, source.token, source.settings, source.timeout, transport,
                                    sleep), source.id)


def quoted(value: object) -> str:
    """Platform text that failed its check, for a terminal: short, its control characters escaped (repr)."""
    return repr(value[:64]) if isinstance(value, str) else repr(value)[:64]


def read_listing(source: Source, listing: list[dict[str, Any]]) -> tuple[list[Entry], Report]:
    """The listed registries the table may take (enable_ci true), each id and prefix checked as `registry add`
    checks its input; the report says what was skipped and why."""
    report = Report()
    entries: list[Entry] = []
    seen: set[str] = set()
    for item in listing:
        registry_id, prefix_text, enabled = item.get("id"), item.get("registry"), item.get("enable_ci")
        if not isinstance(registry_id, str) or not isinstance(prefix_text, str) or not isinstance(enabled, bool):
            report.invalid.append(f"the entry with id {quoted(registry_id)}: it needs a string id and registry and "
                                  "enable_ci true or false")
            continue
        try:
            validate_id(f"{source.id}.{registry_id}")
        except InvalidInput:
            report.invalid.append(f"{quoted(registry_id)}: a registration cannot be named {source.id}.<this id> (use "
                                  "lowercase letters, digits, '-' and '.', each '.'-separated part starting and "
                                  "ending with a letter or digit, at most 253 characters in all)")
            continue
        if registry_id in seen:
            report.invalid.append(f"{registry_id}: listed more than once; the first is taken")
            continue
        seen.add(registry_id)
        if not enabled:
            report.disabled.append(registry_id)
            continue
        try:
            entries.append(Entry(registry_id, parse_prefix(prefix_text)))
        except InvalidInput as error:  # its message quotes the text with repr
            report.invalid.append(f"{registry_id}: {error.message}")
    return entries, report


def place(source: Source, entries: list[Entry], table: dict[str, Registration]) -> tuple[Report, list[Conflict]]:
    """Make the table's registrations from `source` those of `entries` (pure: changes `table` only).

    The source's registrations are taken out, then each entry put in, in id order, unless it clashes with one
    already in (precedence.clash: the check `registry add` makes) or would take a request from a registration made
    by hand (precedence.taking). Whatever a person registered, the table comes out the same."""
    report = Report()
    before = {r.id: r for r in table.values() if r.origin == source.origin}
    for registration_id in before:
        del table[registration_id]
    hand_made = {r.id for r in table.values() if is_hand_made(r)}
    # Each entry is checked against the registrations on its host and the patterns only (precedence.Competition):
    # against the whole table, a list of 5,000 took 46 s to place.
    competition = Competition([(r.prefix, r.id) for r in table.values()], hand_made)
    conflicts: list[Conflict] = []
    for entry in sorted(entries, key=lambda e: e.registry_id):
        registration_id = f"{source.id}.{entry.registry_id}"
        reason = _kept_out(registration_id, entry.prefix, table, competition)
        if reason is not None:
            conflicts.append(Conflict(registration_id, entry.registry_id, entry.prefix, *reason))
            report.conflicts.append(conflicts[-1].line())
            continue
        settings: dict[str, Any] = {"url": source.url, "org": source.org, "registry_id": entry.registry_id,
                                    "timeout": source.timeout, **source.settings}
        table[registration_id] = Registration(registration_id, entry.prefix, "platform", settings,
                                              Secrets({"token": source.token}), origin=source.origin)
        competition.add(entry.prefix, registration_id)
        old = before.get(registration_id)
        if old is None:
            report.added.append(f"{registration_id} ({entry.prefix})")
        elif old.prefix != entry.prefix:
            report.moved.append(f"{registration_id} ({old.prefix} -> {entry.prefix})")
        else:
            report.kept.append(registration_id)
    shadowed = {c.registration_id for c in conflicts}
    for registration_id, old in before.items():
        if registration_id not in table and registration_id not in shadowed:
            report.removed.append(f"{registration_id} ({old.prefix})")
    return report, conflicts


def _kept_out(registration_id: str, prefix: str, table: dict[str, Registration], competition: Competition
              ) -> Optional[tuple[str, str]]:
    """(holder, reason) when the entry cannot go in; the reason continues a sentence that starts with its prefix."""
    occupant = table.get(registration_id)
    if occupant is not None:
        return occupant.id, (f"would be registration {registration_id!r}, an id {_made_by(occupant)} took; "
                             "rename that one to take the platform's")
    found = competition.clash(prefix)
    if found is not None:
        holder = table[found.registration_id]
        fix = "; remove it to take the platform's" if is_hand_made(holder) else ""
        return holder.id, f"{found.explain()} ({_made_by(holder)}), which wins{fix}"
    taken = competition.taking(prefix, registration_id)
    if taken is not None:
        return taken.holder, (f"{taken.explain()}; a registration made by hand wins, remove it to take the "
                              "platform's")
    return None


def _made_by(registration: Registration) -> str:
    if registration.source_id is not None:
        return f"synced from source {registration.source_id}"
    return "made with docker login" if registration.origin == "store" else "made with registry add"


def is_hand_made(registration: Registration) -> bool:
    """Made by a person (`registry add`, `docker login`), not synced from a source."""
    return registration.source_id is None


def apply(source: Source, listing: list[dict[str, Any]], table: dict[str, Registration]) -> tuple[Source, Report]:
    """Make the table's registrations from `source` what the listing says (pure: changes `table` only); the source
    with the listing's entries and what was kept out, to be recorded."""
    entries, report = read_listing(source, listing)
    placed, conflicts = place(source, entries, table)
    report.added, report.moved, report.removed, report.kept = placed.added, placed.moved, placed.removed, placed.kept
    report.conflicts = placed.conflicts
    return replace(source, entries=tuple(entries), conflicts=tuple(conflicts)), report


@dataclass(frozen=True)
class Settled:
    """What settling one source changed: the registrations it shadows now, those it serves again."""

    source_id: str
    shadowed: tuple[Conflict, ...]
    restored: tuple[str, ...]  # "id (prefix)"

    def lines(self) -> list[str]:
        return ([f"Shadowed {c.registration_id}, synced from source {self.source_id}: {c.line()}" for c in self.shadowed]
                + [f"Restored {r}, synced from source {self.source_id}: nothing registered by hand shadows it now"
                   for r in self.restored])


def settle(table: dict[str, Registration], records: dict[str, str]) -> list[Settled]:
    """Place every source's last list again around the registrations made by hand, after a person changed them
    (`registry add` shadows a synced registration, removing it brings that back), without calling the platform."""
    settled = []
    for source_id in sorted(records):
        source = Source.from_text(records[source_id])
        entries = list(source.entries) if source.entries is not None else [
            Entry(r.settings["registry_id"], r.prefix) for r in table.values() if r.origin == source.origin]
        report, conflicts = place(source, entries, table)
        records[source_id] = replace(source, entries=tuple(entries), conflicts=tuple(conflicts)).to_text()
        known = {c.registration_id for c in source.conflicts}
        shadowed = tuple(c for c in conflicts if c.registration_id not in known)
        if shadowed or report.added:
            settled.append(Settled(source_id, shadowed, tuple(report.added)))
    return settled


class HomeNotWritable(IdpError):
    """A sync that could not record its result: nothing was synced (the table as last synced keeps serving)."""

    def __init__(self, source_id: str, home: str, error: OSError) -> None:
        super().__init__(f"source {source_id!r} was not synced: cannot write in {home} "
                         f"({error.strerror or type(error).__name__})")


def sync(vault: Vault, source_id: str, now: Callable[[], float] = time.time, transport: Transport = send,
         reason: Reason = SyncReason.ASKED, progress: Callable[[str], None] = lambda step: None) -> Optional[Report]:
    """Read the source's list and apply it, under the source's lock (parallel callers sync once). For any `reason`
    but ASKED (a `source sync`), a source that is no longer due (cache_policy.source_due), because another caller
    synced it meanwhile, is left alone and None returned. A failure is recorded (the last table keeps serving) and
    raised, transient when the platform did not answer;
    a home that cannot be written is HomeNotWritable, found before the platform is called when it can be.
    `progress` hears each step as it starts."""
    sources = vault.sources()
    if source_id not in sources:
        from .errors import NotRegistered

        raise NotRegistered(f"no source with id {source_id!r}; see: {PROG} source list")
    source = Source.from_text(sources[source_id])
    try:
        lock = acquire_fetch_lock(vault.home, "source:" + source_id, lock_wait(source.timeout))
    except LockTimeout:
        raise ProviderError(f"source {source_id!r}: another caller has been syncing it for longer than one sync may "
                            "take") from None
    except OSError as error:  # a read-only home: its result could not be kept, so the platform is not called
        raise HomeNotWritable(source_id, vault.home, error) from None
    try:
        if reason != SyncReason.ASKED:
            vault.forget()  # another caller may have synced while this one waited for the lock
            text = vault.sources().get(source_id)
            if text is None or not source_due(now(), *source_record.schedule(text), reason):
                return None
        started = now()
        progress(f"source {source_id!r}: reading the list of registries from {urllib.parse.urlsplit(source.url).netloc}"
                 f" (at most {source.timeout:g} s)")
        try:
            listing = call_within(source.timeout + 1, lambda: fetch_listing(source, transport))
        except (ProviderError, TimedOut) as error:
            message = error.message if isinstance(error, ProviderError) else \
                f"the platform API did not answer within {source.timeout:g} s"
            try:
                failed_at = now()  # the next try is one refresh interval after this one gave up
                _record(vault, source_id, lambda s: replace(s, attempted_at=failed_at, last_error=message))
            except (IdpError, OSError):
                pass  # a home that cannot be written: the next call tries again
            transient = error.transient if isinstance(error, ProviderError) else True
            raise ProviderError(f"source {source_id!r}: {message}", transient=transient) from None
        progress(f"source {source_id!r}: {len(listing)} registries listed; updating the registry table")
        report = Report()

        def change(table: dict[str, Registration], records: dict[str, str]) -> None:
            if source_id not in records:  # removed while the list was read
                return
            current = Source.from_text(records[source_id])  # the token may have changed meanwhile
            nonlocal report
            applied, report = apply(current, listing, table)
            records[source_id] = replace(applied, synced_at=started, attempted_at=started, last_error=None).to_text()

        try:
            vault.update_with_sources(change)
        except OSError as error:  # a full disk
            raise HomeNotWritable(source_id, vault.home, error) from None
        return report
    finally:
        os.close(lock)


def _record(vault: Vault, source_id: str, update: Callable[[Source], Source]) -> None:
    def change(table: dict[str, Registration], records: dict[str, str]) -> None:
        if source_id in records:
            records[source_id] = update(Source.from_text(records[source_id])).to_text()

    vault.update_with_sources(change)


class SourceTable:
    """The registry sources of a vault, for the `source` commands (and `registry list`'s shadowed entries).
    `forget` drops the cached answers of registrations taken out of the table."""

    def __init__(self, vault: Vault, now: Callable[[], float], forget: Callable[[list[str]], None]) -> None:
        self.vault, self.now, self.forget = vault, now, forget

    def add(self, source: Source, replace_existing: bool, progress: Callable[[str], None] = lambda step: None
            ) -> Report:
        """Keep a source and sync it at once. Its list is read first: a source whose list cannot be read is not
        kept."""
        progress(f"source {source.id!r}: reading the list of registries from "
                 f"{urllib.parse.urlsplit(source.url).netloc} (at most {source.timeout:g} s)")
        try:
            listing = call_within(source.timeout + 1, lambda: fetch_listing(source))
        except TimedOut:
            raise ProviderError(f"source {source.id!r}: the platform API did not answer within {source.timeout:g} s; "
                                "raise --timeout if it is slow") from None
        progress(f"source {source.id!r}: {len(listing)} registries listed; updating the registry table")
        started = self.now()

        def change(table: dict[str, Registration], records: dict[str, str]) -> Report:
            if source.id in records and not replace_existing:
                raise InvalidInput(f"source {source.id!r} already exists; add --replace to overwrite it")
            applied, report = apply(replace(source, synced_at=started, attempted_at=started), listing, table)
            records[source.id] = applied.to_text()
            return report

        return self.vault.update_with_sources(change)

    def sync(self, source_id: str, progress: Callable[[str], None] = lambda step: None) -> Report:
        report = sync(self.vault, source_id, self.now, progress=progress)
        assert report is not None
        return report

    def ids(self) -> list[str]:
        return sorted(self.vault.sources())

    def remove(self, source_id: str) -> list[str]:
        """Take a source out, with the registrations synced from it (and their cached answers): their ids."""
        from .errors import NotRegistered

        removed: list[str] = []

        def change(table: dict[str, Registration], records: dict[str, str]) -> None:
            if source_id not in records:
                raise NotRegistered(f"no source with id {source_id!r}; see: {PROG} source list")
            del records[source_id]
            removed.extend(r.id for r in table.values() if r.source_id == source_id)
            for registration_id in removed:
                del table[registration_id]
            settle(table, records)  # what the other sources list that this one held comes in

        self.vault.update_with_sources(change)
        if removed:
            self.forget(removed)
        return removed

    def rows(self) -> list[dict[str, Any]]:
        """What `source list` shows: never the token."""
        table = self.vault.registrations().values()
        rows = []
        for _, text in sorted(self.vault.sources().items()):
            source = Source.from_text(text)
            rows.append({"id": source.id, "type": "platform", "url": source.url, "org": source.org,
                         "refresh": source.refresh, "synced_at": source.synced_at, "last_error": source.last_error,
                         "registrations": sorted(r.id for r in table if r.origin == source.origin),
                         "shadowed": [{"id": c.registration_id, "prefix": c.prefix, "by": c.holder, "why": c.line()}
                                      for c in source.conflicts]})
        return rows

    def shadowed(self) -> dict[str, list[dict[str, str]]]:
        """The listed registries each registration keeps out of the table (Conflict), by the holder's id."""
        found: dict[str, list[dict[str, str]]] = {}
        for source_id, text in sorted(self.vault.sources().items()):
            for conflict in Source.from_text(text).conflicts:
                found.setdefault(conflict.holder, []).append({"id": conflict.registration_id, "prefix": conflict.prefix,
                                                              "source": source_id})
        return found
