"""The registry table, for the commands: reading it, building, adding and removing registrations, the registration
serving a request (matching.select over the vault), its credential through the get pipeline, forgetting cached
answers, the kubelet's match and `registry test`. Not loaded on a cache hit.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Mapping, Optional, TypeVar

from . import cache_policy, kubernetes
from .cache_policy import DEFAULT_REFRESH_MARGIN
from .errors import PROG, AmbiguousRegistry, CredentialsNotFound, InvalidInput, NotRegistered
from .matching import SCOPE_VARIABLE, Selection, concrete, docker_accepts_path, host_of, parse_prefix, select
from .model import Credential, Registration, Secrets, validate_id
from .pipeline import GetPipeline
from .precedence import clash
from .providers import canonical_type, get_provider
from .providers.base import Provider
from .sources import Settled, is_hand_made, settle
from .token_cache import TokenCache
from .vault import Vault

Table = dict[str, Registration]
T = TypeVar("T")


class RegistryTable:
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

    @property
    def scope(self) -> Optional[str]:
        return self.env.get(SCOPE_VARIABLE)

    # -- reading -----------------------------------------------------------------------------------------------

    def registrations(self) -> Table:
        return self.vault.registrations()

    def registration(self, registration_id: str) -> Registration:
        registration = self.vault.registrations().get(registration_id)
        if registration is None:
            raise NotRegistered(f"no registration with id {registration_id!r}; see: {PROG} registry list")
        return registration

    def rolled_back(self) -> Optional[str]:
        """The warning for a vault `get` refuses as older than the last one seen, which a person is shown all the
        same (vault.inspect); None when get takes it."""
        return self.vault.inspect()

    def status(self) -> dict[str, object]:
        """`vault status`: where the vault is, its key source and serial, how many registrations and cached answers."""
        return {**self.vault.status(), "cached_tokens": len(self.token_cache().entries())}

    def accept(self) -> tuple[int, Optional[int]]:
        return self.vault.accept()

    # -- which registration serves a request -------------------------------------------------------------------

    def choose(self, request: str) -> tuple[Registration, Selection]:
        """The registration serving a normalised request, matching.select's answer (and contract) over the
        registrations on its host and the patterns. Registry sources that are due are synced first, as `get` does."""
        synced: set[str] = set()  # each source at most once
        self.pipeline.sync_sources(cache_policy.SyncReason.DUE, synced)
        try:
            return self._choose(request)
        except CredentialsNotFound:
            if self.pipeline.sync_sources(cache_policy.SyncReason.MISSING, synced):
                return self._choose(request)
            raise

    def _choose(self, request: str) -> tuple[Registration, Selection]:
        on_host = self.vault.registrations_on_host(host_of(request)) + self.vault.pattern_registrations()
        selection = select(request, [(r.prefix, r.id) for r in on_host], self.scope)
        return next(r for r in on_host if r.id == selection.registration_id), selection

    def serving(self, request: str) -> tuple[Registration, Selection]:
        """`choose` for the commands: nothing serving the request is NotRegistered, in the commands' words."""
        try:
            return self.choose(request)
        except CredentialsNotFound:
            if not docker_accepts_path(request):  # perhaps a secret given as REF: not quoted back (matching.py)
                raise NotRegistered(f"no registration serves that image: its repository path on {host_of(request)} is "
                                    "not one docker accepts (lower-case letters and digits, joined by '.', '_' or "
                                    f"'-'), so check the REF; see: {PROG} registry list") from None
            raise NotRegistered(f"no registration serves {request}; see: {PROG} registry list, or add one with: "
                                f"{PROG} registry add") from None

    def ambiguity_after_change(self, host: str) -> Optional[str]:
        """The note for an administrator whose change leaves host-only requests for `host` unable to choose (whatever
        the scope a job sets)."""
        try:
            select(host, [(r.prefix, r.id) for r in self.vault.registrations_on_host(host)])
        except AmbiguousRegistry as error:
            return error.message
        except CredentialsNotFound:
            pass
        return None

    # -- credentials -------------------------------------------------------------------------------------------

    def token_cache(self) -> TokenCache:
        return self.pipeline.token_cache()

    def username_hint(self, registration: Registration) -> str:
        """The username `list` reports without fetching anything."""
        if registration.login is not None:
            return registration.login.username
        return self.providers(registration.type).username_hint(registration)

    def credential(self, registration: Registration, request: str = "", past_hold: bool = False) -> Credential:
        """The registration's credential for a normalised request (whose host a pattern registration serves),
        through the get pipeline: cached while fresh, fetched once for all (`past_hold`: GetPipeline.credential_for)."""
        token = self.pipeline.credential_for(registration, request, past_hold)
        return Credential(token.username, token.secret, token.expires_at)

    def kubelet_match(self, request: str, token: str = "",
                      annotations: Optional[Mapping[str, str]] = None) -> Optional[kubernetes.KubeletMatch]:
        """What the kubelet gets for an image: the serving registration's credential and its refresh point, which
        bounds how long the kubelet may keep it (None when no registration serves the image). A registration that
        exchanges the pod's service-account token (`token`, with its service account's `annotations`) is fetched and
        cached for that service account alone; without a token it is refused (NoServiceAccountToken)."""
        try:
            registration, _ = self.choose(request)
        except CredentialsNotFound:
            return None
        principal, pod = "", None
        if takes_pod_token(registration):
            if not token:
                raise kubernetes.NoServiceAccountToken(
                    f"kubelet: registration {registration.id!r} exchanges the pod's service-account token "
                    "(--oidc-token kubelet) and the request carries none; give its provider entry tokenAttributes: "
                    f"install the config `{PROG} kubelet-config` prints")
            from .fetching import used_annotations

            used = used_annotations(self.providers(registration.type), annotations or {})
            principal, pod = kubernetes.principal(token, used), (token, used)
        answer = self.pipeline.credential_for(registration, request, principal=principal, pod=pod)
        on_host = len(self.vault.lines_on_host(host_of(request)))
        return kubernetes.match(registration.prefix, request,
                                Credential(answer.username, answer.secret, answer.expires_at), answer.refresh_at,
                                on_host)

    def kubelet_entries(self) -> tuple[list[kubernetes.ProviderEntry], Optional[str]]:
        """The kubelet config's provider entries for the table (kubernetes.plan_entries), and the note when there is
        more than one."""
        pairs: list[tuple[str, Optional[kubernetes.TokenUse]]] = []
        for registration in sorted(self.registrations().values(), key=lambda r: r.id):
            use = None
            if takes_pod_token(registration):
                provider = self.providers(registration.type)
                audience = provider.token_audience(registration)
                if not audience:
                    raise InvalidInput(f"registration {registration.id!r} takes the kubelet's token but names no "
                                       "audience, which the kubelet must ask it for; re-add it with --oidc-audience "
                                       "AUD (what the registry or exchange accepts) and --replace")
                use = kubernetes.TokenUse(audience, provider.hands_over_token(registration),
                                          tuple(sorted(provider.annotation_keys.values())))
            pairs.append((registration.prefix, use))
        return kubernetes.plan_entries(pairs)

    def test_registration(self, registration: Registration, request: str) -> Any:
        """`registry test` (and doctor --online): the registry's /v2/ handshake with the registration's credential
        (registry_check). A diagnostic: its source is asked even while `get` holds it back after a failure."""
        from . import registry_check
        from .errors import ProviderError
        from .timebox import TimedOut, call_within

        credential = self.credential(registration, request, past_hold=True)
        served = concrete(registration.prefix, host_of(request))
        host, timeout = host_of(served), registration.fetch_timeout
        try:
            return call_within(timeout + 1, lambda: registry_check.check(registration, served, credential))
        except TimedOut:
            raise ProviderError(f"registry test: {host} did not finish the handshake within --timeout {timeout:g} s; "
                                "raise it with registry add --replace --timeout if the registry is slow") from None

    # -- changing the table ------------------------------------------------------------------------------------

    def build_registration(self, registration_id: str, prefix: str, type_name: str, values: Mapping[str, Any],
                           common: Mapping[str, Any]) -> Registration:
        """A registration from `registry add`'s values: the type's options (secrets already read) and the options
        every type takes (timeout, refresh_margin, min_ttl, ca_file, insecure; None when not given)."""
        validate_id(registration_id)
        type_name = canonical_type(type_name)
        provider = self.providers(type_name)
        settings, secrets = provider.configure(values)
        provider.check_installed()
        settings.update(common_settings(common))
        _check_expire_outlives_margin(settings)
        registration = Registration(registration_id, parse_prefix(prefix), type_name, settings, Secrets(secrets))
        provider.check_prefix(registration)
        return registration

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

        def both(table: Table, records: dict[str, str]) -> T:
            result = change(table)
            if settles(result):
                settled.extend(settle(table, records))
            return result

        result = self.vault.update_with_sources(both)
        shadowed = [c.registration_id for s in settled for c in s.shadowed]
        if shadowed:
            self.token_cache().drop(shadowed, self.now())
        return result, settled

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

    def forget_answers(self, registration_ids: list[str]) -> None:
        """Drop the cached answers of registrations taken out of the table (a source's, when it is removed)."""
        self.token_cache().drop(registration_ids, self.now())

    def forget_tokens(self, registration_id: Optional[str]) -> tuple[int, int]:
        """`cache clear`: drop the cached answers and held-back failures of one registration (or of all): how many
        of each were dropped. A cache that cannot be written is VaultError in one line: nothing was dropped."""
        from .errors import VaultError
        from .fsutil import LockTimeout, cannot_write, lock_busy
        from .token_cache import LOCK_WAIT

        if registration_id is not None:
            self.registration(registration_id)
        cache = self.token_cache()
        try:
            return cache.drop([registration_id] if registration_id else None, self.now(), raising=True)
        except LockTimeout:
            raise VaultError(lock_busy(cache.lock_path, LOCK_WAIT)) from None
        except OSError as error:
            raise VaultError(cannot_write(error, self.vault.home)) from None


def takes_pod_token(registration: Registration) -> bool:
    """Whether the registration exchanges the pod's service-account token the kubelet sends (--oidc-token kubelet),
    rather than serve a docker login stored over it."""
    from .identity import KUBELET

    return registration.login is None and registration.settings.get("oidc_token") == KUBELET


def common_settings(common: Mapping[str, Any]) -> dict[str, Any]:
    """The options every type takes, checked: timeout, refresh_margin, min_ttl, ca_file, insecure (None: not given)."""
    settings: dict[str, Any] = {}
    if common.get("timeout") is not None:
        settings["timeout"] = _seconds(common["timeout"], "--timeout", 3600)
    if common.get("refresh_margin") is not None:
        settings["refresh_margin"] = _seconds(common["refresh_margin"], "--refresh-margin", 86400)
    if common.get("min_ttl") is not None:
        settings["min_ttl"] = _min_ttl(common["min_ttl"])
    if common.get("ca_file") is not None:
        settings["ca_file"] = _readable_file(common["ca_file"], "--ca-file")
    if common.get("insecure"):
        settings["insecure"] = True
    return settings


def _min_ttl(value: Any) -> float:
    """--min-ttl, parsed as --expire is; at most a day (a longer one would leave no source's credential cacheable)."""
    from .providers.base import format_duration, parse_duration

    try:
        seconds = parse_duration(value)
    except InvalidInput as error:
        raise InvalidInput(f"--min-ttl: {error.message}") from None
    if seconds > MAX_MIN_TTL:
        raise InvalidInput(f"--min-ttl must be at most {format_duration(MAX_MIN_TTL)}; it is the life a credential must "
                           "have left when it is served (default 10m, what BuildKit may keep it)")
    return seconds


MAX_MIN_TTL = 86400.0


def _check_expire_outlives_margin(settings: Mapping[str, Any]) -> None:
    """--expire no longer than the time a token is refreshed before expiry would refetch it on every request."""
    if settings.get("expire") is None:
        return
    from .providers.base import format_duration

    min_ttl = float(settings.get("min_ttl", cache_policy.DEFAULT_MIN_TTL))
    lead = cache_policy.refresh_lead(float(settings.get("refresh_margin", DEFAULT_REFRESH_MARGIN)), min_ttl)
    if float(settings["expire"]) <= lead:
        raise InvalidInput(f"--expire {format_duration(settings['expire'])} is not longer than the "
                           f"{format_duration(lead)} before expiry at which a credential is refreshed (--refresh-margin, "
                           f"never under --min-ttl {format_duration(min_ttl)}), so every request would fetch anew; give "
                           f"--expire more than {format_duration(lead)}, or a lower --min-ttl")


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
