"""Registry sources: the registry table synced from a platform's list of registries, so that a runner or a node
holds one platform token instead of one `registry add` per registry.

The platform of seed 000 lists an organisation's registries at `GET {url}/orgs/{org}/registries` (objects with
`id`, `registry` — the prefix —, `type` and `enable_ci`) and serves each one's credential at
`GET {url}/orgs/{org}/registries/{id}/creds`. Every listed registry with `enable_ci` true becomes a `platform`
registration `SOURCE.ID` whose credential comes from its creds endpoint; the others are skipped. A registration
made with `registry add` (or `docker login`) keeps its prefix: the listed one is reported as a conflict.

`get` syncs a source when its table is older than its refresh interval, or when no registration serves a request
(at most once a minute), bounded by the source's timeout, under a lock so that parallel callers sync once. A cache
hit never calls the platform. When the platform cannot be reached the last table keeps serving, with a warning.
"""

from __future__ import annotations

import os
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Optional

from .cache_policy import lock_wait, source_due
from .errors import IdpError, InvalidInput, ProviderError
from .fsutil import LockTimeout
from .httpclient import check_endpoint, network_reason, send
from .jsontext import loads
from .matching import parse_prefix
from .model import DEFAULT_FETCH_TIMEOUT, Registration, Secrets, validate_id
from .timebox import TimedOut, call_within
from .token_cache import acquire_fetch_lock
from .vault import Vault

DEFAULT_REFRESH = 600.0
TYPES = ("platform",)
Transport = Callable[[urllib.request.Request, Mapping[str, Any], float], tuple[int, Any, bytes]]


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
                "synced_at": self.synced_at, "attempted_at": self.attempted_at, "last_error": self.last_error}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Source:
        return cls(record["id"], record["url"], record["org"], record["token"], float(record["refresh"]),
                   float(record["timeout"]), record.get("ca_file"), record.get("synced_at"),
                   float(record.get("attempted_at") or 0), record.get("last_error"))


@dataclass
class Report:
    """What one sync did, for `source sync` to print and `get` to warn about."""

    added: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)  # listed with enable_ci false
    conflicts: list[str] = field(default_factory=list)  # one line each: which prefix, and who has it
    invalid: list[str] = field(default_factory=list)

    def lines(self, source_id: str) -> list[str]:
        out = [f"{source_id}: {len(self.added)} added, {len(self.moved)} moved, {len(self.removed)} removed, "
               f"{len(self.kept)} unchanged"]
        out += [f"{source_id}: added {r}" for r in self.added] + [f"{source_id}: moved {r}" for r in self.moved]
        out += [f"{source_id}: removed {r}" for r in self.removed]
        out += [f"{source_id}: skipped {r} (enable_ci is false on the platform)" for r in self.disabled]
        out += [f"{source_id}: conflict: {c}" for c in self.conflicts]
        out += [f"{source_id}: skipped {i}" for i in self.invalid]
        return out


def new_source(source_id: str, url: str, org: str, token: str, refresh: Optional[float], timeout: Optional[float],
               ca_file: Optional[str]) -> Source:
    validate_id(source_id)
    if not org.strip() or "/" in org:
        raise InvalidInput("--org must be a non-empty name without '/'")
    return Source(source_id, check_endpoint(url, "--url"), org, token, refresh or DEFAULT_REFRESH,
                  timeout or DEFAULT_FETCH_TIMEOUT, ca_file)


def list_url(source: Source) -> str:
    return f"{source.url.rstrip('/')}/orgs/{urllib.parse.quote(source.org, safe='')}/registries"


def fetch_listing(source: Source, transport: Transport = send) -> list[dict[str, Any]]:
    """The platform's list of the organisation's registries; ProviderError in one line when it cannot be read."""
    request = urllib.request.Request(list_url(source), headers={"Accept": "application/json"})
    request.add_unredirected_header("Authorization", f"Bearer {source.token}")
    where = f"the platform API at {urllib.parse.urlsplit(source.url).netloc}"
    try:
        status, _, body = transport(request, source.settings, source.timeout)
    except OSError as error:
        raise ProviderError(f"cannot reach {where}: {network_reason(error)}") from None
    if status == 401:
        raise ProviderError(f"{where} refused the token (HTTP 401); issue a new one and run: docker-credential-idp "
                            f"source add {source.id} --replace ... --token-stdin")
    if status == 403:
        raise ProviderError(f"the token may not list the registries of org {source.org!r} (HTTP 403)")
    if status != 200:
        raise ProviderError(f"{where} answered HTTP {status} to the list of registries")
    try:
        listing = loads(body)
    except ValueError:
        listing = None
    if not isinstance(listing, list) or not all(isinstance(item, dict) for item in listing):
        raise ProviderError(f"{where} answered the list of registries with something that is not a JSON list of "
                            "objects")
    return listing


def apply(source: Source, listing: list[dict[str, Any]], table: dict[str, Registration]) -> Report:
    """Make the table's registrations from `source` what the listing says (pure: changes `table` only)."""
    report = Report()
    wanted: dict[str, Registration] = {}
    for item in listing:
        registry_id, prefix_text = item.get("id"), item.get("registry")
        if not isinstance(registry_id, str) or not isinstance(prefix_text, str):
            report.invalid.append(f"an entry without string id and registry ({str(registry_id)[:40]!r})")
            continue
        if item.get("enable_ci") is not True:
            report.disabled.append(registry_id[:100])
            continue
        try:
            registration_id = validate_id(f"{source.id}.{registry_id}")
            prefix = parse_prefix(prefix_text)
        except InvalidInput as error:
            report.invalid.append(f"{registry_id[:100]!r}: {error.message}")
            continue
        settings: dict[str, Any] = {"url": source.url, "org": source.org, "registry_id": registry_id,
                                    "timeout": source.timeout, **source.settings}
        wanted[registration_id] = Registration(registration_id, prefix, "platform", settings,
                                               Secrets({"token": source.token}), origin=source.origin)
    others = {r.prefix: r.id for r in table.values() if r.origin != source.origin}
    applied: set[str] = set()
    for registration_id, registration in sorted(wanted.items()):
        holder = others.get(registration.prefix)
        clash = table.get(registration_id)
        if holder is not None or (clash is not None and clash.origin != source.origin):
            who = holder if holder is not None else registration_id
            report.conflicts.append(f"{registration.prefix} ({registration.settings['registry_id']}) is registered as "
                                    f"{who!r}, which wins; remove it to take the platform's")
            continue
        if clash is None:
            report.added.append(f"{registration_id} ({registration.prefix})")
        elif clash.prefix != registration.prefix:
            report.moved.append(f"{registration_id} ({clash.prefix} -> {registration.prefix})")
        else:
            report.kept.append(registration_id)
        table[registration_id] = registration
        applied.add(registration_id)
    for registration_id in [r.id for r in table.values() if r.origin == source.origin and r.id not in applied]:
        report.removed.append(f"{registration_id} ({table[registration_id].prefix})")
        del table[registration_id]
    return report


def sync(vault: Vault, source_id: str, now: Callable[[], float] = time.time, transport: Transport = send,
         only_if_due: Optional[bool] = None) -> Optional[Report]:
    """Read the source's list and apply it, under the source's lock (parallel callers sync once). With
    `only_if_due` (True: a request found no registration; False: the table's age), a source another caller synced
    meanwhile is left alone and None returned. A failure is recorded (the last table keeps serving) and raised."""
    sources = vault.sources()
    if source_id not in sources:
        from .errors import NotRegistered

        raise NotRegistered(f"no source with id {source_id!r}; see: docker-credential-idp source list")
    source = Source.from_record(sources[source_id])
    try:
        lock: Optional[int] = acquire_fetch_lock(vault.home, "source:" + source_id, lock_wait(source.timeout))
    except LockTimeout:
        raise ProviderError(f"source {source_id!r}: another caller has been syncing it for longer than one sync may "
                            "take") from None
    except OSError:
        lock = None  # a read-only home: sync without the lock (the write below will say why it cannot)
    try:
        if only_if_due is not None:
            vault.forget()  # another caller may have synced while this one waited for the lock
            line = next((line for line in vault.source_lines() if line.id == source_id), None)
            if line is None or not source_due(now(), line.attempted_at, line.refresh, only_if_due):
                return None
        started = now()
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
            raise ProviderError(f"source {source_id!r}: {message}") from None
        report = Report()

        def change(table: dict[str, Registration], records: dict[str, dict[str, Any]]) -> None:
            if source_id not in records:  # removed while the list was read
                return
            current = Source.from_record(records[source_id])  # the token may have changed meanwhile
            nonlocal report
            report = apply(current, listing, table)
            records[source_id] = replace(current, synced_at=started, attempted_at=started, last_error=None).to_record()

        vault.update_with_sources(change)
        return report
    finally:
        if lock is not None:
            os.close(lock)


def _record(vault: Vault, source_id: str, update: Callable[[Source], Source]) -> None:
    def change(table: dict[str, Registration], records: dict[str, dict[str, Any]]) -> None:
        if source_id in records:
            records[source_id] = update(Source.from_record(records[source_id])).to_record()

    vault.update_with_sources(change)
