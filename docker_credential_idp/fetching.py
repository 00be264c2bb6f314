"""Step 6 of the `get` pipeline: one call to a registration's credential source, bounded in time, its failures
named after the registration (and marked transient when the source did not answer) and its expiry one we can
believe. The first module on the path that loads the
providers (and through them, once they fetch, their SDKs)."""

from __future__ import annotations

from .cache_policy import believable_expiry
from .errors import IdpError, ProviderError
from .model import Credential, Registration
from .providers import get_provider
from .providers.base import FetchContext, Provider
from .timebox import TimedOut, call_within

TYPE_CHECKING = False  # neither typing nor dataclasses: a cold fetch of a script pays for what it uses only
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping, Optional


def fetch(registration: Registration, env: Mapping[str, str], now: Callable[[], float], host: str,
          identity_token: str = "", annotations: Optional[Mapping[str, str]] = None) -> Credential:
    """The registration's login if `docker login` stored one over it, else its provider's answer for `host` (the
    registration's own, or the one a pattern registration matched). In kubelet mode, `identity_token` is the pod's
    service-account token and `annotations` its service account's, which stand in for the settings the provider
    names (`annotated`)."""
    provider = get_provider(registration.type)
    if registration.login is not None:
        return _with_expiry(Credential(registration.login.username, registration.login.secret), registration,
                            provider.lifetime(registration), now)
    timeout = registration.fetch_timeout
    context = FetchContext(env=env, timeout=timeout, now=now, host=host, identity_token=identity_token,
                           annotations=dict(annotations or {}))
    where = f"registration {registration.id!r} ({registration.type})" + (f" for {host}" if host != registration.host else "")
    try:
        registration = annotated(registration, provider, annotations or {})
    except ProviderError as error:
        raise ProviderError(f"{where}: {error.message}") from None
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


def used_annotations(provider: Provider, annotations: Mapping[str, str]) -> dict[str, str]:
    """The annotations a provider reads (its annotation_keys) that a service account carries."""
    return {key: annotations[key] for key in provider.annotation_keys.values() if key in annotations}


def annotated(registration: Registration, provider: Provider, annotations: Mapping[str, str]) -> Registration:
    """The registration with each setting its provider names in annotation_keys taken from the pod's service account
    annotation when it carries one (else the registration's own), checked as `registry add` checks the option; only
    for a registration that exchanges the pod's own token (--oidc-token kubelet), whose trust the annotation cannot
    widen: with the node's identity, whoever may annotate a service account could pick the node's roles."""
    if not annotations:  # every call but the kubelet's: nothing more to import
        return registration
    from .identity import KUBELET

    used = used_annotations(provider, annotations)
    if not used or registration.settings.get("oidc_token") != KUBELET:
        return registration
    settings: dict[str, Any] = dict(registration.settings)
    options = {option.dest: option for option in provider.options}
    key = ""
    try:
        for setting, key in provider.annotation_keys.items():
            if key in used:
                option = options.get(setting)
                value = used[key].strip()
                settings[setting] = option.convert(value) if option is not None and option.convert else value
        key = ", ".join(sorted(used))
        provider.validate(settings, dict(registration.secrets))
    except IdpError as error:
        raise ProviderError(f"service account annotation {key}: {error.message}") from None
    return registration.replace(settings=settings)


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
    return credential.replace(expires_at=believable_expiry(now(), expires_at, lifetime))
