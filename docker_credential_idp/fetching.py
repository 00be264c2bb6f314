"""Step 6 of the `get` pipeline: one call to a registration's credential source, bounded in time, its failures
named after the registration (and marked transient when the source did not answer) and its expiry one we can
believe. The first module on the path that loads the
providers (and through them, once they fetch, their SDKs)."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Mapping

from .cache_policy import believable_expiry
from .errors import IdpError, ProviderError
from .model import Credential, Registration
from .providers import get_provider
from .providers.base import FetchContext
from .timebox import TimedOut, call_within


def fetch(registration: Registration, env: Mapping[str, str], now: Callable[[], float], host: str) -> Credential:
    """The registration's login if `docker login` stored one over it, else its provider's answer for `host` (the
    registration's own, or the one a pattern registration matched)."""
    provider = get_provider(registration.type)
    if registration.login is not None:
        return _with_expiry(Credential(registration.login.username, registration.login.secret), registration,
                            provider.lifetime(registration), now)
    timeout = registration.fetch_timeout
    context = FetchContext(env=env, timeout=timeout, now=now, host=host)
    where = f"registration {registration.id!r} ({registration.type})" + (f" for {host}" if host != registration.host else "")
    try:
        result = call_within(timeout + 1, lambda: provider.fetch(registration, context))
    except TimedOut:
        raise ProviderError(f"{where}: no answer within {timeout:g} s; raise it with --timeout if the source is slow",
                            transient=True) from None
    except ProviderError as error:
        raise ProviderError(f"{where}: {error.message}", transient=error.transient) from None
    except IdpError:
        raise
    except Exception as error:  # noqa: BLE001 - a provider's bug or an SDK's surprise, in one line
        raise ProviderError(f"{where}: unexpected {type(error).__name__} from the provider") from None
    return _with_expiry(result, registration, provider.lifetime(registration), now)


def _with_expiry(credential: Credential, registration: Registration, lifetime: float,
                 now: Callable[[], float]) -> Credential:
    """A believable expiry (cache_policy.believable_expiry): the source's, unless the password is a JWT (an identity
    token the registry takes as it is, or a login that stored one) whose `exp` comes first, since the registry refuses
    it after that whatever the source said. A source that gives none (or whose provider falls back to the type's
    lifetime, as script and platform do) thus lives as long as the token really does."""
    expires_at = credential.expires_at
    if credential.secret.count(".") == 2:
        from .identity import expiry

        token_expiry = expiry(credential.secret)
        if token_expiry is not None and (expires_at is None or token_expiry < expires_at):
            expires_at = token_expiry
    return replace(credential, expires_at=believable_expiry(now(), expires_at, lifetime))
