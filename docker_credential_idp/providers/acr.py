"""Azure Container Registry: an Entra ID token (service principal or workload identity) exchanged for an ACR
refresh token at https://<registry>/oauth2/exchange (Azure/acr docs/AAD-OAuth.md).

Two form POSTs, written with the standard library: they are the whole protocol, and an SDK would cost more to load
than the exchange takes.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Mapping

from ..errors import InvalidInput, ProviderError
from ..httpclient import check_endpoint, network_reason
from ..model import Credential, Registration
from .base import FetchContext, Option, Provider

USERNAME = "00000000-0000-0000-0000-000000000000"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
SCOPE = "https://containerregistry.azure.net/.default"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class AcrProvider(Provider):
    type_name = "acr"
    summary = "Azure ACR refresh tokens from an Entra ID service principal or workload identity"
    default_expire = 3 * 3600.0  # when the refresh token carries no readable exp
    options = (
        Option("tenant", "Entra ID tenant id", required=True),
        Option("client-id", "application (client) id", required=True),
        Option("client-secret", "the service principal's client secret", secret=True),
        Option("federated-token-file", "workload identity: file holding the federated token (AKS, GitHub OIDC)",
               metavar="PATH"),
        Option("authority-host", f"Entra ID authority (default {DEFAULT_AUTHORITY}; sovereign clouds)", metavar="URL"),
        Option("exchange-url", "ACR token exchange URL (default https://<registry>/oauth2/exchange)", metavar="URL"),
    )

    def validate(self, settings: dict[str, Any], secrets: dict[str, str]) -> None:
        if bool(secrets.get("client_secret")) == bool(settings.get("federated_token_file")):
            raise InvalidInput("--type acr needs exactly one of --client-secret-stdin/-env and --federated-token-file")
        for name in ("authority_host", "exchange_url"):  # the client secret and the Entra token go there
            if settings.get(name):
                settings[name] = check_endpoint(settings[name], f"--{name.replace('_', '-')}")

    def username_hint(self, registration: Registration) -> str:
        return USERNAME

    def fetch(self, registration: Registration, context: FetchContext) -> Credential:
        settings = registration.settings
        authority = (settings.get("authority_host") or DEFAULT_AUTHORITY).rstrip("/")
        form = {"client_id": settings["client_id"], "scope": SCOPE, "grant_type": "client_credentials"}
        if settings.get("federated_token_file"):
            assertion = _read_token_file(settings["federated_token_file"])
            form |= {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
        else:
            form["client_secret"] = registration.secrets["client_secret"]
        token_url = f"{authority}/{urllib.parse.quote(settings['tenant'])}/oauth2/v2.0/token"
        entra = _post_form(context, token_url, form, "Entra ID", {})
        if not isinstance(entra.get("access_token"), str):
            raise ProviderError("Entra ID answered without an access_token")
        host = context.host or registration.host
        exchange_url = settings.get("exchange_url") or f"https://{host}/oauth2/exchange"
        exchanged = _post_form(context, exchange_url, {"grant_type": "access_token", "service": host,
                                                       "tenant": settings["tenant"], "access_token": entra["access_token"]},
                               "the ACR token exchange", settings)
        refresh_token = exchanged.get("refresh_token")
        if not isinstance(refresh_token, str) or not refresh_token:
            raise ProviderError("the ACR token exchange answered without a refresh_token")
        return Credential(USERNAME, refresh_token, _jwt_expiry(refresh_token) or context.now() + self.lifetime(registration))


def _read_token_file(path: str) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ProviderError(f"cannot read the federated token file {path}: {getattr(error, 'strerror', None) or error}") from None
    if not token:
        raise ProviderError(f"the federated token file {path} is empty")
    return token


def _post_form(context: FetchContext, url: str, form: Mapping[str, str], who: str,
               settings: Mapping[str, Any]) -> dict[str, Any]:
    body = urllib.parse.urlencode(form).encode("ascii")
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded",
                                                             "Accept": "application/json"})
    try:
        status, _, payload = context.transport(request, settings, context.timeout)
    except OSError as error:
        raise ProviderError(f"cannot reach {who} at {urllib.parse.urlsplit(url).netloc}: {network_reason(error)}") from None
    if status != 200:
        raise ProviderError(f"{who} refused the request: HTTP {status}{_oauth_error(payload)}")
    try:
        answer = json.loads(payload)
    except ValueError:
        raise ProviderError(f"{who} answered with something that is not JSON") from None
    if not isinstance(answer, dict):
        raise ProviderError(f"{who} answered with JSON that is not an object")
    return answer


def _oauth_error(payload: bytes) -> str:
    """The OAuth error code (and Entra's AADSTS number) from an error answer; never the whole body."""
    try:
        detail = json.loads(payload)
    except ValueError:
        return ""
    if not isinstance(detail, dict) or not isinstance(detail.get("error"), str):
        return ""
    codes = detail.get("error_codes")
    suffix = f" (AADSTS{codes[0]})" if isinstance(codes, list) and codes else ""
    return f" {detail['error'][:80]}{suffix}"


def _jwt_expiry(token: str) -> float | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return float(claims["exp"])
    except (ValueError, KeyError, TypeError):
        return None


PROVIDER = AcrProvider()
