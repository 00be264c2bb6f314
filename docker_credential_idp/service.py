"""The credential service: request -> registration (matching) -> credential (provider), and the credsStore verbs.

This is the one place that combines the vault, the matching rules and the providers.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Mapping, Optional

from .cache_policy import (
    DEFAULT_REFRESH_MARGIN,
    FRESH,
    LOCK_WAIT_SLACK,
    STALE,
    believable_expiry,
    refresh_at,
    state,
    worth_caching,
)
from .errors import AmbiguousRegistry, CredentialsNotFound, IdpError, ProviderError
from .fsutil import LockTimeout
from .matching import SCOPE_VARIABLE, Selection, host_of, parse_server, select, server_key
from .model import Credential, Login, Registration, Secrets
from .providers import get_provider
from .providers.base import FetchContext, Provider
from .timebox import TimedOut, call_within
from .token_cache import CachedToken, NoTokenCache, TokenCache, acquire_fetch_lock
from .vault import Vault

if TYPE_CHECKING:
    from .fastpath import Handover

Table = dict[str, Registration]
Resolution = tuple[str, str, str]  # vault generation, DOCKER_CREDENTIAL_IDP_SCOPE, normalised request

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
        handover: Optional[Handover] = None,
    ) -> None:
        self.vault = vault
        # What fastpath.py did about a registration's fetch lock before it handed the request over.
        self.handover = handover
        self.env = env
        self.warn = warn
        self.providers = providers
        self.now = now
        self._cache: Optional[TokenCache] = None

    # -- matching ----------------------------------------------------------------------------------------------

    def choose(self, request: str) -> tuple[Registration, Selection]:
        """The registration serving a normalised request (see matching.select)."""
        on_host = self.vault.registrations_on_host(host_of(request))
        selection = select(request, [(r.prefix, r.id) for r in on_host], self.env.get(SCOPE_VARIABLE))
        return next(r for r in on_host if r.id == selection.registration_id), selection

    def _serving(self, request: str, table: Table) -> Optional[Registration]:
        try:
            selection = select(request, [(r.prefix, r.id) for r in table.values()], self.env.get(SCOPE_VARIABLE))
        except (CredentialsNotFound, AmbiguousRegistry):
            return None
        return table[selection.registration_id]

    # -- credentials -------------------------------------------------------------------------------------------

    def token_cache(self) -> TokenCache:
        """The answer cache, sealed with the vault's data key; before the vault exists, one that keeps nothing."""
        if self._cache is None:
            data_key = self.vault.data_key()
            self._cache = (TokenCache(self.vault.home, data_key, on_write_failure=self._cannot_cache) if data_key
                           else NoTokenCache())
        return self._cache

    def _cannot_cache(self, reason: str) -> None:
        self.warn(f"docker-credential-idp: warning: {reason}; answering without caching, so the next call fetches "
                  "again (make the home writable, or free space, to cache)")

    def username_hint(self, registration: Registration) -> str:
        """The username `list` reports without fetching anything."""
        if registration.login is not None:
            return registration.login.username
        return self.providers(registration.type).username_hint(registration)

    def credential(self, registration: Registration, resolution: Optional[Resolution] = None) -> Credential:
        """The registration's credential: its cached answer while fresh, else fetched once for all callers.

        `resolution` (vault generation, scope, request) is remembered with the answer, so the next identical request
        is answered by fastpath.py without reading the registrations."""
        provider = self.providers(registration.type)
        cache = self.token_cache()
        wait = self._lock_wait(provider, registration)
        token = cache.get(registration)
        if token and self._state(token) == FRESH:
            if resolution and cache.resolved(*resolution) is None:
                cache.put(registration, None, self.now(), resolution, wait)
            return Credential(token.username, token.secret, token.expires_at)
        # One fetch per registration at a time across processes: the others wait here, then reuse its answer.
        # They wait no longer than one fetch may take, so a hung source cannot queue callers one timeout each.
        since = self.now()
        handover = self.handover if self.handover and self.handover.registration_id == registration.id else None
        if handover and handover.holding:  # the cache-hit path took the lock before handing over to us
            return self._refresh(provider, registration, cache, resolution, since - handover.waited)
        if handover:  # it already waited part of the time
            wait = max(0.0, wait - handover.waited)
        try:
            lock = acquire_fetch_lock(self.vault.home, registration.id, wait)
        except LockTimeout:
            if token and self._state(token) == STALE:
                self.warn(f"docker-credential-idp: warning: the token source for {registration.id!r} is slow; "
                          "serving the cached token")
                return Credential(token.username, token.secret, token.expires_at)
            raise ProviderError(f"registration {registration.id!r} ({registration.type}): another caller has been "
                                "fetching its token for longer than one fetch may take; the source may be down") from None
        except OSError as error:  # a read-only or full home: fetch without the lock (and without caching)
            cache.unwritable(f"cannot take the fetch lock in {self.vault.home}: {error.strerror or error}")
            return self._refresh(provider, registration, cache, resolution, since)
        try:
            return self._refresh(provider, registration, cache, resolution, since)
        finally:
            os.close(lock)

    @staticmethod
    def _lock_wait(provider: Provider, registration: Registration) -> float:
        return float(registration.settings.get("timeout", provider.default_timeout)) + LOCK_WAIT_SLACK

    def _state(self, token: CachedToken) -> str:
        return state(self.now(), token.refresh_at, token.expires_at)

    def _refresh(self, provider: Provider, registration: Registration, cache: TokenCache,
                 resolution: Optional[Resolution], since: float) -> Credential:
        """Under the registration's fetch lock: reuse what another caller fetched while this one waited (or any
        fresh answer), else fetch and cache."""
        token = cache.get(registration)
        now = self.now()
        current = self._state(token) if token else None
        if token and (current == FRESH or current == STALE and token.fetched_at >= since):
            if resolution and cache.resolved(*resolution) is None:
                cache.put(registration, None, now, resolution, self._lock_wait(provider, registration))
            return Credential(token.username, token.secret, token.expires_at)
        try:
            credential = self._fetch(provider, registration)
        except ProviderError as error:
            if token and current == STALE:
                assert token.expires_at is not None
                left = int(token.expires_at - now)
                self.warn(f"docker-credential-idp: warning: {error.message}; serving the cached token, "
                          f"valid for {left} more seconds")
                return Credential(token.username, token.secret, token.expires_at)
            raise
        now = self.now()  # when the answer arrived: callers that waited for it since before then take it
        if worth_caching(now, credential.expires_at):
            margin = float(registration.settings.get("refresh_margin", DEFAULT_REFRESH_MARGIN))
            cache.put(registration, CachedToken(credential.username, credential.secret, credential.expires_at, now,
                                                refresh_at(now, credential.expires_at, margin)), now, resolution,
                      self._lock_wait(provider, registration))
        return credential

    def _fetch(self, provider: Provider, registration: Registration) -> Credential:
        """The registration's login if `docker login` stored one over it, else provider.fetch bounded in time, its
        failures named after the registration and its expiry one we can believe."""
        if registration.login is not None:
            return Credential(registration.login.username, registration.login.secret)
        timeout = float(registration.settings.get("timeout", provider.default_timeout))
        context = FetchContext(env=self.env, timeout=timeout, now=self.now)
        where = f"registration {registration.id!r} ({registration.type})"
        try:
            result = call_within(timeout + 1, lambda: provider.fetch(registration, context))
        except TimedOut:
            raise ProviderError(f"{where}: no answer within {timeout:g} s; raise it with --timeout if the source is slow"
                                ) from None
        except ProviderError as error:
            raise ProviderError(f"{where}: {error.message}") from None
        except IdpError:
            raise
        except Exception as error:  # noqa: BLE001 - a provider's bug or an SDK's surprise, in one line
            raise ProviderError(f"{where}: unexpected {type(error).__name__} from the provider") from None
        expires_at = believable_expiry(self.now(), result.expires_at, provider.lifetime(registration))
        return replace(result, expires_at=expires_at)

    def get(self, server: str) -> Credential:
        request = parse_server(server)
        registration, _ = self.choose(request)
        generation = self.vault.generation()
        resolution = (generation, self.env.get(SCOPE_VARIABLE) or "", request) if generation else None
        return self.credential(registration, resolution)

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

        note = self.vault.update(change)
        if note:
            self.warn(note)

    def erase(self, server: str) -> None:
        """docker logout: removes exactly what store stored — its registration, or its login over a registration
        `registry add` made. Anything else is not found (docker ignores that); a note says why, once for the
        several erase calls one logout makes."""
        request = parse_server(server)
        removed: list[str] = []

        def change(table: Table) -> Optional[Registration]:
            exact = next((r for r in table.values() if r.prefix == request), None)
            if exact is None:
                return None
            if exact.origin == "store":
                del table[exact.id]
            elif exact.login is not None:
                table[exact.id] = replace(exact, login=None)
            else:
                return exact
            removed.append(exact.id)
            return None

        if not self.vault.exists():
            raise CredentialsNotFound()
        kept = self.vault.update(change)
        cache = self.token_cache()
        if removed:
            cache.drop(removed, self.now())  # a logged-out password does not linger, even encrypted
        if removed:
            return
        if kept is not None and cache.note_once(f"erase {request}", self.now()):
            self.warn(f"docker-credential-idp: registration {kept.id!r} was added with `registry add`, so docker "
                      f"logout leaves it serving {request}; remove it with: docker-credential-idp registry remove {kept.id}")
        raise CredentialsNotFound()

    def list_servers(self) -> dict[str, str]:
        """What `list` answers: the keys clients look credentials up by (hosts; Docker Hub as docker's index URL),
        each with the username a host-only `get` of that key answers. The daemon strips every key to its host and
        takes the first match, so a key with a path would hand one team's credential to another's image; a host
        whose registrations a host-only request cannot choose between is left out, with a line on stderr. Nothing
        is fetched."""
        table = self.vault.registrations()
        scope = self.env.get(SCOPE_VARIABLE)
        hosts = sorted({host_of(r.prefix) for r in table.values()})
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
