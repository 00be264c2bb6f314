"""The central platform's creds API (seed 000, the call in platform_api.py): `GET {API}/orgs/{ORG}/registries/{RID}/
creds` with a bearer token answers `{"username": ..., "password": ...}`. A CI runner holds only the platform token;
the platform holds the registry's secrets and rotates them."""

from __future__ import annotations

from ..errors import InvalidInput
from ..httpclient import check_endpoint
from ..model import Credential, Registration
from ..platform_api import Platform, creds_url, read_creds
from .base import FetchContext, Option, Provider, expire_option

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

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
        platform = Platform(settings["url"], settings["org"], registration.secrets["token"], settings, context.timeout,
                            context.transport, context.sleep)
        # A synced registration's token is its source's: `registry add` refuses its id, `source add` replaces it.
        answer = read_creds(platform, settings["registry_id"], registration.source_id)
        now = context.now()
        expires = _expiry(answer, now) or now + self.lifetime(registration)
        return Credential(answer["username"], answer["password"], expires)

    def describe(self, registration: Registration) -> dict[str, Any]:
        described = super().describe(registration)
        settings = registration.settings
        described["creds_url"] = creds_url(settings["url"], settings["org"], settings["registry_id"])
        return described


def _expiry(answer: dict[str, Any], now: float) -> Optional[float]:
    """An expiry the API gives: epoch seconds, ISO 8601, or expires_in seconds. Unreadable ones are ignored."""
    if isinstance(answer.get("expires_in"), (int, float)):
        return now + float(answer["expires_in"])
    for name in EXPIRY_FIELDS:
        value = answer.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value) / (1000 if value > 1e11 else 1)  # milliseconds, as some APIs send
        if isinstance(value, str) and value:
            import datetime

            try:
                moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=datetime.timezone.utc)
            return moment.timestamp()
    return None


PROVIDER = PlatformProvider()
