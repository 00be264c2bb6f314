"""The one `get` pipeline: a request to its credential, the cheap steps first.

Docker runs `get` on every pull, push and build step, and nearly every call ends at step 4:

  1. normalise the request (matching)                                   the standard library's cheapest modules
  2. open the vault: read, check, unwrap the data key, decrypt (once per process)          + the crypto backend
  3. the answer cache: the registration this vault generation resolved the request to, and its answer
  4. else resolve from the vault's lines — prefix, id and fetch timeout are columns, no JSON is parsed;
     a fresh answer is returned here
  5. take the registration's fetch lock, so that of many parallel callers one fetches and the others wait for
     it, bounded by one fetch's timeout; an answer that landed meanwhile is returned; a source that did not answer
     moments ago is not asked again before its retry point (cache_policy.held_back): the same line at once
  6. only now load the record, the provider and its SDK (fetching.py), fetch, cache the answer (or the failure)

Commands that already hold a registration (creds, kubelet, pull-secret) enter at step 3 (`credential_for`); the
diagnostic ones (registry test, doctor --online) too, but past the hold of step 5: they are how a person checks a
fix, so they ask the source, and their success ends the hold for every caller.
Nothing here imports json, typing, dataclasses or a provider before step 6 (tests/test_pipeline.py checks it).
"""

from __future__ import annotations

import os
import time

from . import cache_policy, matching
from .errors import PROG, ProviderError
from .token_cache import CachedToken, FetchFailure, NoTokenCache, Target, TokenCache, acquire_fetch_lock

TYPE_CHECKING = False  # typing itself is not imported: it costs a cache hit several ms
if TYPE_CHECKING:
    from typing import Callable, Mapping, Optional

    from .cache_policy import Reason
    from .model import Registration
    from .token_cache import Entries
    from .vault import Vault

    Resolution = tuple[str, str, str]  # vault generation, DOCKER_CREDENTIAL_IDP_SCOPE, normalised request
    Pod = tuple[str, Mapping[str, str]]  # kubelet mode: the pod's service-account token, the annotations used


class GetPipeline:
    def __init__(self, vault: Vault, env: Mapping[str, str], warn: Callable[[str], None] = lambda message: None,
                 now: Callable[[], float] = time.time, debug: Optional[Callable[[str], None]] = None,
                 jitter: Callable[[], float] = lambda: int.from_bytes(os.urandom(2), "big") / 65536) -> None:
        self.vault, self.env, self.warn, self.now = vault, env, warn, now
        self._debug = debug
        self.jitter = jitter  # a fraction in [0, 1) spreading a failed registration's retry point
        self._cache: Optional[TokenCache] = None

    def token_cache(self) -> TokenCache:
        """The answer cache, sealed with the vault's data key; before the vault exists, one that keeps nothing."""
        if self._cache is None:
            opened = self.vault.open()
            self._cache = (TokenCache(self.vault.home, opened.data_key, on_write_failure=self._cannot_cache) if opened
                           else NoTokenCache())
        return self._cache

    def _cannot_cache(self, reason: str) -> None:
        self.warn(f"{PROG}: warning: {reason}; answering without caching, so the next call fetches "
                  "again (make the home writable, or free space, to cache)")

    def debug(self, message: str) -> None:
        """With DOCKER_CREDENTIAL_IDP_DEBUG: which step answered, and why the next one ran. Never a secret."""
        if self._debug is not None:
            self._debug(f"{PROG}: debug: {message}")

    # -- steps 1 to 4 ------------------------------------------------------------------------------------------

    def get(self, server: str) -> CachedToken:
        """The answer for a server URL (docker's `get`); CredentialsNotFound or AmbiguousRegistry when there is none.

        A registry source is synced at most once per call, whatever its refresh interval and the platform's speed:
        after a sync the steps run again on the new table, three passes at most (as read, after due sources were
        synced, after a miss synced them), the last one syncing nothing."""
        from .errors import CredentialsNotFound

        request = matching.parse_server(server)
        scope = self.env.get(matching.SCOPE_VARIABLE) or ""
        synced: set[str] = set()  # the sources this call synced (or tried to)
        for may_sync in (True, True, False):
            opened = self.vault.open()
            if opened is None:
                raise CredentialsNotFound()
            resolution = (opened.generation, scope, request)
            entries = self.token_cache().load()
            target = entries.resolutions.get(resolution)
            if target is not None:
                self.debug(f"resolved to registration {target.registration_id!r} by the answer cache")
                token = target.answer(entries)
                if token is not None and self._state(token) == cache_policy.FRESH:
                    self.debug("answered from the answer cache")
                    return token  # a cache hit: no source is asked, nothing else is read
            if may_sync and self.sync_sources(cache_policy.SyncReason.DUE, synced):  # a table older than its refresh
                continue
            if target is not None:
                return self._credential(target, entries, None, self._loader(target))
            try:
                target = self.resolve(request)
            except CredentialsNotFound:
                if may_sync and self.sync_sources(cache_policy.SyncReason.MISSING, synced):  # listed by now?
                    continue
                raise
            self.debug(f"resolved to registration {target.registration_id!r} from the vault's lines")
            return self._credential(target, entries, resolution, self._loader(target))
        raise AssertionError("the last pass answers or raises")  # pragma: no cover

    def sync_sources(self, reason: Reason, synced: Optional[set[str]] = None) -> bool:
        """Sync the registry sources due for `reason` (DUE or MISSING: cache_policy.source_due) and not in `synced`
        (which it adds them to); True when the table was read again. A source that cannot be reached, or a home where
        a sync cannot be recorded, leaves the table as it was, with one warning."""
        from . import source_record

        done = synced if synced is not None else set()
        due = [source_id for source_id, text in self.vault.sources().items() if source_id not in done
               and cache_policy.source_due(self.now(), *source_record.schedule(text), reason)]
        if not due:
            return False
        from . import sources
        from .errors import IdpError

        changed = False
        for source_id in due:
            done.add(source_id)
            why = "no registration serves the request" if reason == cache_policy.SyncReason.MISSING else "due"
            self.debug(f"syncing source {source_id!r} ({why})")
            try:
                changed = sources.sync(self.vault, source_id, self.now, reason=reason) is not None or changed
            except sources.HomeNotWritable as error:  # one warning, shared with the answer cache's
                self.token_cache().unwritable(f"{error.message}; serving the registry table as last synced")
            except IdpError as error:
                self.warn(f"{PROG}: warning: {error.message}; serving the registry table as last "
                          "synced")
        self.vault.forget()
        return changed

    def resolve(self, request: str) -> Target:
        """The registration serving a normalised request, from the vault's lines: those on its host, and the
        patterns (matching.select gives a prefix without `*` precedence over any pattern)."""
        host = matching.host_of(request)
        lines = self.vault.lines_on_host(host) + self.vault.pattern_lines()
        selection = matching.select(request, [(line.prefix, line.id) for line in lines],
                                    self.env.get(matching.SCOPE_VARIABLE) or None)
        line = next(line for line in lines if line.id == selection.registration_id)
        from .token_cache import fingerprint_of_record

        served = host if matching.is_pattern(line.prefix) else ""
        return Target(fingerprint_of_record(line.record, served), line.id, line.fetch_timeout, served)

    def refresh(self, server: str, served_fetched_at: float) -> Optional[CachedToken]:
        """The resident agent's refresh ahead of the refresh point (agent.py): the registration serving `server` is
        fetched again under its fetch lock, as step 6 would, unless an answer newer than the one the agent served
        (fetched at `served_fetched_at`) is cached by now, or its source is held back after a failure (None then).
        Not a `get`: no source is synced and nothing is answered to anyone."""
        request = matching.parse_server(server)
        opened = self.vault.open()
        if opened is None:
            return None
        entries = self.token_cache().load()
        resolution = (opened.generation, self.env.get(matching.SCOPE_VARIABLE) or "", request)
        target = entries.resolutions.get(resolution) or self.resolve(request)
        lock = acquire_fetch_lock(self.vault.home, target.slot, cache_policy.lock_wait(target.fetch_timeout))
        try:
            entries = self.token_cache().load()
            token = target.answer(entries)
            if token is not None and token.fetched_at > served_fetched_at:
                return token
            failure = target.failure(entries)
            if failure is not None and cache_policy.held_back(self.now(), failure.failed_at, failure.retry_at):
                return None
            return self._fetch(target, token, None, self._loader(target)(), failure)
        finally:
            os.close(lock)

    def credential_for(self, registration: Registration, request: str = "", past_hold: bool = False,
                       principal: str = "", pod: Optional[Pod] = None) -> CachedToken:
        """The answer for a registration a command already holds, for `request` (which tells a pattern
        registration's host): the same steps from the answer cache on. `past_hold`: a diagnostic's call, which asks
        a source that did not answer moments ago rather than repeat its failure. `principal` and `pod`: the kubelet's
        call for a registration that exchanges the pod's token (kubernetes.principal names the service account,
        whose answer is cached apart; `pod` is the token and the annotations the fetch uses)."""
        served = matching.host_of(request) if matching.is_pattern(registration.prefix) else ""
        return self._credential(Target.of(registration, served, principal), self.token_cache().load(), None,
                                lambda: registration, past_hold, pod)

    def _loader(self, target: Target) -> Callable[[], Registration]:
        def load() -> Registration:
            registration = self.vault.registration(target.registration_id)
            if registration is None:  # the cache named a registration the vault no longer has: it changed meanwhile
                from .errors import VaultError

                raise VaultError("the vault changed while this call read it; run the command again")
            return registration

        return load

    def _credential(self, target: Target, entries: Entries, resolution: Optional[Resolution],
                    load: Callable[[], Registration], past_hold: bool = False, pod: Optional[Pod] = None) -> CachedToken:
        token = target.answer(entries)
        if token is not None and self._state(token) == cache_policy.FRESH:
            self.debug("answered from the answer cache")
            if resolution is not None:
                self.token_cache().remember(target, None, self.now(), resolution)
            return token
        self.debug("no fresh answer cached; taking the registration's fetch lock")
        return self._under_fetch_lock(target, token, resolution, load, past_hold, pod)

    def _state(self, token: CachedToken) -> str:
        return cache_policy.state(self.now(), token.refresh_at, token.expires_at)

    # -- step 5 ------------------------------------------------------------------------------------------------

    def _under_fetch_lock(self, target: Target, token: Optional[CachedToken], resolution: Optional[Resolution],
                          load: Callable[[], Registration], past_hold: bool = False,
                          pod: Optional[Pod] = None) -> CachedToken:
        """One fetch per registration at a time across processes: the others wait here, then take its answer. They
        wait no longer than one fetch may take, so a hung source cannot queue callers one timeout each."""
        from .fsutil import LockTimeout

        cache = self.token_cache()
        since = self.now()
        lock: Optional[int] = None
        try:
            lock = acquire_fetch_lock(self.vault.home, target.slot, cache_policy.lock_wait(target.fetch_timeout))
        except LockTimeout:
            if token is not None and self._state(token) == cache_policy.STALE:
                self.warn(f"{PROG}: warning: the token source for {target.registration_id!r} is "
                          "slow; serving the cached token")
                return token
            raise ProviderError(f"registration {target.registration_id!r}: another caller has been fetching its token "
                                "for longer than one fetch may take; the source may be down") from None
        except OSError as error:  # a read-only or full home: fetch without the lock (and without caching)
            cache.unwritable(f"cannot take the fetch lock in {self.vault.home}: {error.strerror or error}")
        try:
            entries = cache.load()
            token = target.answer(entries)
            current = self._state(token) if token is not None else None
            if token is not None and (current == cache_policy.FRESH
                                      or current == cache_policy.STALE and token.fetched_at >= since):
                self.debug("answered with what another caller fetched meanwhile")
                if resolution is not None:
                    cache.remember(target, None, self.now(), resolution)
                return token
            failure = target.failure(entries)
            if (failure is not None and not past_hold
                    and cache_policy.held_back(self.now(), failure.failed_at, failure.retry_at)):
                return self._held_back(target, token, failure)
            return self._fetch(target, token, resolution, load(), failure, pod)
        finally:
            if lock is not None:
                os.close(lock)

    def _held_back(self, target: Target, cached: Optional[CachedToken], failure: FetchFailure) -> CachedToken:
        """The source did not answer moments ago: rather than make this caller wait for it again, serve a still-valid
        answer, or repeat the failure's line at once, saying when and when the next try is."""
        now = self.now()
        ago, wait = int(now - failure.failed_at), max(1, int(failure.retry_at - now + 0.999))
        self.debug(f"its source did not answer {ago} s ago; not asked again for {wait} s")
        repeated = (f"{failure.message} (repeated from {ago} s ago: the source is asked again in {wait} s, or at once "
                    f"after {PROG} cache clear {target.registration_id})")
        stale = self._stale(cached, repeated)
        if stale is not None:
            return stale
        raise ProviderError(repeated, transient=True)

    def _stale(self, cached: Optional[CachedToken], reason: str) -> Optional[CachedToken]:
        """A still-valid answer served in place of a fresh one that could not be had, with a warning saying why."""
        if cached is None or self._state(cached) != cache_policy.STALE:
            return None
        assert cached.expires_at is not None
        left = int(cached.expires_at - self.now())
        self.warn(f"{PROG}: warning: {reason}; serving the cached token, valid for {left} more seconds")
        return cached

    # -- step 6 ------------------------------------------------------------------------------------------------

    def _fetch(self, target: Target, cached: Optional[CachedToken], resolution: Optional[Resolution],
               registration: Registration, failure: Optional[FetchFailure] = None,
               pod: Optional[Pod] = None) -> CachedToken:
        """Fetch and cache the answer; a source that did not answer is remembered as failed (`failure`: the slot's
        earlier failure, which a success forgets), so that callers in every process are held back a while. An answer
        that is the pod's own token (no exchange) is not cached: each pod's request carries its own."""
        from . import fetching

        self.debug(f"fetching from the source of registration {registration.id!r} ({registration.type})"
                   + (f" for {target.host}" if target.host else ""))
        try:
            credential = fetching.fetch(registration, self.env, self.now, target.host or registration.host,
                                        *(pod or ("", {})))
        except ProviderError as error:
            if error.transient:
                failed_at = self.now()  # a failed try counts from when it gave up
                self.token_cache().remember_failure(target, FetchFailure(
                    target.fingerprint, failed_at, cache_policy.retry_after_failure(failed_at, self.jitter()),
                    error.message))
            stale = self._stale(cached, error.message)
            if stale is not None:
                return stale
            raise
        now = self.now()  # when the answer arrived: callers that waited for it since before then take it
        token = CachedToken(credential.username, credential.secret, credential.expires_at, now,
                            cache_policy.refresh_at(now, credential.expires_at, registration.refresh_margin,
                                                    registration.min_ttl))
        if cache_policy.worth_caching(now, credential.expires_at) and not (pod and credential.secret == pod[0]):
            self.token_cache().remember(target, token, now, resolution)  # which forgets the slot's failure
        elif failure is not None:
            self.token_cache().forget_failure(target, now)
        if cache_policy.state(now, token.refresh_at, token.expires_at) == cache_policy.STALE:
            assert credential.expires_at is not None  # an answer without expiry is always fresh
            self._note_short_life(target, registration, credential.expires_at - now, now)
        return token

    def _note_short_life(self, target: Target, registration: Registration, lifetime: float, now: float) -> None:
        """Once (token_cache.note_once), why a registration's source is asked on every request: its answer is never
        fresh, for it has no more than the --min-ttl left when it arrives."""
        from .providers.base import format_duration

        if self.token_cache().note_once(f"min-ttl:{target.slot}", now):
            self.warn(f"{PROG}: note: registration {registration.id!r} gets credentials that live "
                      f"{format_duration(float(-(-lifetime // 1)))}, no longer than its --min-ttl "
                      f"{format_duration(registration.min_ttl)} (what a client such as BuildKit may keep an answer), so "
                      "each request fetches a new one rather than answer from the cache; lower --min-ttl if your "
                      "clients keep answers for less")
