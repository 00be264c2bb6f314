"""Step 6 of the `get` pipeline: one call to a registration's credential source, bounded in time, its failures
named after the registration (and marked transient when the source did not answer) and its expiry one we can
believe. The first module on the path that loads the
providers (and through them, once they fetch, their SDKs)."""

from __future__ import annotations

from .cache_policy import believable_expiry
from .errors import IdpError, ProviderError
from .model import Credential, Registration
from .providers import get_provider
from .providers.base import FetchContext
from .timebox import TimedOut, call_within

TYPE_CHECKING = False  # neither typing nor dataclasses: a cold fetch of a script pays for what it uses only
if TYPE_CHECKING:
    from typing import Callable, Mapping


def fetch(registration: Registration, env: Mapping[str, str], now: Callable[[], float], host: str) -> Credential:
    """The registration's login if `docker login` stored one over it, else its provider's answer for `host` (the
    registration's own, or the one a pattern registration matched)."""
    if registration.login is not None:
        return Credential(registration.login.username, registration.login.secret)
    provider = get_provider(registration.type)
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
    return result.replace(expires_at=believable_expiry(now(), result.expires_at, provider.lifetime(registration)))
