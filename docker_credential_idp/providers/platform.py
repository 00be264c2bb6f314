"""The central platform's creds API (seed 000): `GET {API}/orgs/{ORG}/registries/{RID}/creds` with a bearer token
answers `{"username": ..., "password": ...}`. A CI runner holds only the platform token; the platform holds the
registry's secrets and rotates them."""

from __future__ import annotations

import datetime
import time
import urllib.parse
import urllib.request
from typing import Any, Mapping, Optional

from ..errors import InvalidInput, ProviderError
from ..httpclient import check_endpoint, network_reason
from ..jsontext import loads
from ..model import Credential, Registration
from .base import FetchContext, Option, Provider, expire_option

ATTEMPTS = 3
BACKOFF = (0.5, 1.5)  # seconds before the second and third attempt
RETRY_STATUSES = (429, 500, 502, 503, 504)
EXPIRY_FIELDS = ("expires_at", "expiresAt", "expires", "expiry")


class PlatformProvider(Provider):
    type_name = "platform"
    summary = "the platform's creds API: GET {url}/orgs/{org}/registries/{id}/creds with a bearer token"
    options = (
        Option("url", "the platform API base, e.g. https://api.humanitec.io", required=True, metavar="API_BASE"),
        Option("org", "the platform organisation", required=True),
        Option("registry-id", "platform: the registry's id in the platform", required=True),
        Option("token", "the platform API token (a service user's bearer token)", secret=True, required=True),
        expire_option(Provider.default_expire),
    )

    def validate(self, settings: dict[str, Any], secrets: dict[str, str]) -> None:
        settings["url"] = check_endpoint(settings["url"], "--url")
        for name in ("org", "registry_id"):
            if not settings[name].strip() or "/" in settings[name]:
                raise InvalidInput(f"--{name.replace('_', '-')} must be a non-empty name without '/'")

    def fetch(self, registration: Registration, context: FetchContext) -> Credential:
        settings = registration.settings
        url = creds_url(settings["url"], settings["org"], settings["registry_id"])
        deadline = time.monotonic() + context.timeout
        for attempt in range(ATTEMPTS):
            request = urllib.request.Request(url, headers={"Accept": "application/json"})
            # Unredirected: a redirect to another host must not carry the token along.
            request.add_unredirected_header("Authorization", f"Bearer {registration.secrets['token']}")
            left = deadline - time.monotonic()
            try:
                status, _, body = context.transport(request, settings, max(left, 0.1))
            except OSError as error:
                failure = ProviderError(f"cannot reach the platform API at {urllib.parse.urlsplit(url).netloc}: "
                                        f"{network_reason(error)}", transient=True)
            else:
                if status == 200:
                    return _credential(body, context.now(), self.lifetime(registration))
                failure = _status_error(status, settings)
                if status not in RETRY_STATUSES:
                    raise failure
            pause = BACKOFF[min(attempt, len(BACKOFF) - 1)]
            if attempt + 1 == ATTEMPTS or time.monotonic() + pause >= deadline:
                break
            context.sleep(pause)
        raise ProviderError(f"{failure.message} (after {attempt + 1} attempt{'s' if attempt else ''})",
                            transient=failure.transient)

    def describe(self, registration: Registration) -> dict[str, Any]:
        described = super().describe(registration)
        settings = registration.settings
        described["creds_url"] = creds_url(settings["url"], settings["org"], settings["registry_id"])
        return described


def creds_url(base: str, org: str, registry_id: str) -> str:
    org, registry_id = (urllib.parse.quote(part, safe="") for part in (org, registry_id))
    return f"{base.rstrip('/')}/orgs/{org}/registries/{registry_id}/creds"


def _status_error(status: int, settings: Mapping[str, Any]) -> ProviderError:
    org, registry_id = settings["org"], settings["registry_id"]
    if status == 401:
        return ProviderError("the platform API refused the token (HTTP 401: missing, expired or revoked); issue a new "
                             "one and re-add the registration with --token-stdin")
    if status == 403:
        return ProviderError(f"the token may not read the credentials of registry {registry_id!r} in org {org!r} "
                             "(HTTP 403); give its service user a role that may (ArtefactContributor)")
    if status == 404:
        return ProviderError(f"the platform API has no registry {registry_id!r} in org {org!r} (HTTP 404); check --org, "
                             "--registry-id and --url")
    if status in RETRY_STATUSES:
        return ProviderError(f"the platform API is failing (HTTP {status})", transient=True)
    return ProviderError(f"the platform API answered HTTP {status}")


def _credential(body: bytes, now: float, lifetime: float) -> Credential:
    try:
        answer = loads(body)
    except ValueError:
        raise ProviderError("the platform API answered with something that is not JSON") from None
    if not isinstance(answer, dict):
        raise ProviderError("the platform API answered with JSON that is not an object")
    username, password = answer.get("username"), answer.get("password")
    if not (isinstance(username, str) and username and isinstance(password, str) and password):
        raise ProviderError("the platform API answered without string fields username and password")
    expires = _expiry(answer, now)
    return Credential(username, password, expires or now + lifetime)


def _expiry(answer: dict[str, Any], now: float) -> Optional[float]:
    """An expiry the API gives: epoch seconds, ISO 8601, or expires_in seconds. Unreadable ones are ignored."""
    if isinstance(answer.get("expires_in"), (int, float)):
        return now + float(answer["expires_in"])
    for name in EXPIRY_FIELDS:
        value = answer.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value) / (1000 if value > 1e11 else 1)  # milliseconds, as some APIs send
        if isinstance(value, str) and value:
            try:
                moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=datetime.timezone.utc)
            return moment.timestamp()
    return None


PROVIDER = PlatformProvider()
