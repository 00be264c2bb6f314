"""Azure Container Registry: an Entra ID access token from azure-identity — a service principal's secret, a
workload identity's federated token (an identity token from identity.py, obtained afresh on every fetch: GitHub
Actions, a variable, a file such as AKS's projected token, the kubelet's), a managed identity, or azure-identity's
default chain — exchanged for an ACR refresh token at https://<registry>/oauth2/exchange (Azure/acr docs/AAD-OAuth.md).

azure-identity is imported inside fetch only; the exchange is one form POST, written with the standard library.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.parse
from typing import Any, ClassVar, Mapping, Optional

from .. import identity
from ..errors import InvalidInput, ProviderError
from ..httpclient import Request, check_endpoint, network_reason, oauth_error
from ..model import Credential, Registration
from .base import FetchContext, Option, Provider, import_sdk

USERNAME = "00000000-0000-0000-0000-000000000000"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
SCOPE = "https://containerregistry.azure.net/.default"
SDK = ("azure.identity", "azure-identity")
# The audience Entra ID requires of a federated credential's token (its federated identity credentials' default).
FEDERATION_AUDIENCE = "api://AzureADTokenExchange"
CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def _client_id_text(text: str) -> str:
    """--client-id, and in kubelet mode the service account's annotation that stands in for it (fetching.annotated
    converts it through here): an application id, never quoted back."""
    value = str(text).strip()
    if not _CLIENT_ID.fullmatch(value):
        raise InvalidInput("--client-id is the application (client) id, like 00000000-0000-0000-0000-000000000000: "
                           "letters, digits, '.', '_' or '-', at most 128 characters")
    return value


class AcrProvider(Provider):
    type_name = "acr"
    summary = ("Azure ACR refresh tokens from an Entra ID identity: service principal, workload identity, managed "
               "identity or azure-identity's default chain")
    sdk = SDK
    default_expire = 3 * 3600.0  # when the refresh token carries no readable exp
    options = (
        Option("tenant", "Entra ID tenant id (service principal, workload identity)"),
        Option("client-id", "application (client) id (service principal, workload identity)", convert=_client_id_text),
        Option("client-secret", "the service principal's client secret", secret=True),
        Option("federated-token-file", "workload identity: file holding the federated token (AKS); the same as "
               "--oidc-token file:PATH", metavar="PATH"),
        Option("managed-identity", "use the machine's managed identity (AKS node, VM, App Service)", flag=True),
        Option("managed-identity-client-id", "a user-assigned managed identity's client id", metavar="ID"),
        Option("authority-host", f"Entra ID authority (default {DEFAULT_AUTHORITY}; sovereign clouds)", metavar="URL"),
        Option("exchange-url", "ACR token exchange URL (default https://<registry>/oauth2/exchange)", metavar="URL"),
        *identity.OPTIONS,
    )
    annotation_keys: ClassVar[Mapping[str, str]] = {"client_id": CLIENT_ID_ANNOTATION}

    def validate(self, settings: dict[str, Any], secrets: dict[str, str]) -> None:
        if settings.get("oidc_audience") and not settings.get("oidc_token"):
            raise InvalidInput("--oidc-audience goes with --oidc-token")
        chosen = [name for name, given in (("--client-secret-stdin/-env", secrets.get("client_secret")),
                                           ("--federated-token-file", settings.get("federated_token_file")),
                                           ("--oidc-token", settings.get("oidc_token")),
                                           ("--managed-identity", settings.get("managed_identity"))) if given]
        if len(chosen) > 1:
            raise InvalidInput(f"--type acr takes one identity, not {' and '.join(chosen)}")
        # With the kubelet's token, the client id may come from the pod's service account (its annotation).
        needs_client_id = not (settings.get("oidc_token") == identity.KUBELET)
        if chosen and chosen[0] != "--managed-identity" and not (
                settings.get("tenant") and (settings.get("client_id") or not needs_client_id)):
            raise InvalidInput(f"{chosen[0]} needs --tenant and --client-id"
                               + ("" if needs_client_id else f" (or the pod's {CLIENT_ID_ANNOTATION} annotation)"))
        named = " and ".join(flag for flag, key in (("--tenant", "tenant"), ("--client-id", "client_id"))
                             if settings.get(key))
        if named and not chosen:  # azure-identity's default chain would run, and ignore them
            raise InvalidInput(f"{named} without a way for the identity to prove itself: add --client-secret-stdin/-env "
                               "(service principal), --oidc-token or --federated-token-file (workload identity) or "
                               "--managed-identity")
        if settings.get("federated_token_file"):  # the helper runs from docker's or the kubelet's directory
            settings["federated_token_file"] = os.path.abspath(settings["federated_token_file"])
        if settings.get("client_id") and settings.get("managed_identity"):
            raise InvalidInput("--client-id goes with a secret or a federated token file; a user-assigned managed "
                               "identity takes --managed-identity-client-id")
        if settings.get("managed_identity_client_id") and not settings.get("managed_identity"):
            raise InvalidInput("--managed-identity-client-id goes with --managed-identity")
        if settings.get("authority_host"):  # the client secret goes there: https only, even on loopback
            settings["authority_host"] = check_endpoint(settings["authority_host"], "--authority-host")
            if not settings["authority_host"].startswith("https://"):
                raise InvalidInput("--authority-host must be an https URL (Entra ID speaks nothing else)")
        if settings.get("exchange_url"):  # the Entra token goes there
            settings["exchange_url"] = check_endpoint(settings["exchange_url"], "--exchange-url")

    def username_hint(self, registration: Registration) -> str:
        return USERNAME

    def identity(self, registration: Registration) -> str:
        """Which Entra ID identity a registration uses, in words for messages (never a secret)."""
        settings = registration.settings
        if "client_secret" in registration.secrets:
            return f"service principal {settings['client_id']} in tenant {settings['tenant']}"
        source = _federated_source(settings)
        if source:
            client = settings.get("client_id") or f"from the pod's {CLIENT_ID_ANNOTATION} annotation"
            return f"workload identity {client} in tenant {settings['tenant']} ({identity.describe(source)})"
        if settings.get("managed_identity"):
            client = settings.get("managed_identity_client_id")
            return f"managed identity {client}" if client else "the system-assigned managed identity"
        return "azure-identity's default chain (environment, workload identity, managed identity, Azure CLI)"

    def check_identity(self, registration: Registration, env: Mapping[str, str]) -> Optional[str]:
        missing = super().check_identity(registration, env)
        settings = registration.settings
        if missing or "client_secret" in registration.secrets:
            return missing
        source = _federated_source(settings)
        if source:
            return identity.problem(source, env)
        if settings.get("managed_identity"):
            return None  # IMDS answers only on Azure; it was not asked
        if (env.get("AZURE_CLIENT_ID") and (env.get("AZURE_CLIENT_SECRET") or env.get("AZURE_FEDERATED_TOKEN_FILE"))
                or env.get("IDENTITY_ENDPOINT") or shutil.which("az", path=env.get("PATH", os.defpath))):
            return None
        return ("azure-identity's default chain finds no identity here: no AZURE_CLIENT_ID with a secret or "
                "federated token, no managed identity endpoint, no Azure CLI (IMDS was not asked)")

    def describe(self, registration: Registration) -> dict[str, Any]:
        return {**super().describe(registration), "identity": self.identity(registration)}

    def fetch(self, registration: Registration, context: FetchContext) -> Credential:
        settings = registration.settings
        access_token = self._entra_token(registration, context)
        host = context.host or registration.host
        exchange_url = settings.get("exchange_url") or f"https://{host}/oauth2/exchange"
        form = {"grant_type": "access_token", "service": host, "access_token": access_token}
        if settings.get("tenant"):
            form["tenant"] = settings["tenant"]
        exchanged = _post_form(context, exchange_url, form, "the ACR token exchange", settings)
        refresh_token = exchanged.get("refresh_token")
        if not isinstance(refresh_token, str) or not refresh_token:
            raise ProviderError("the ACR token exchange answered without a refresh_token")
        return Credential(USERNAME, refresh_token, identity.expiry(refresh_token) or context.now() + self.lifetime(registration))

    def _entra_token(self, registration: Registration, context: FetchContext) -> str:
        sdk = import_sdk(self.type_name, *SDK)
        import logging

        from azure.core.exceptions import AzureError, HttpResponseError, ServiceRequestError, ServiceResponseError

        # azure-identity logs each failure as a warning; the one line we print says it (and names the identity).
        logging.getLogger("azure").addHandler(logging.NullHandler())
        logging.getLogger("azure").propagate = False
        settings = registration.settings
        source = _federated_source(settings)
        options: dict[str, Any] = {"connection_timeout": context.timeout, "read_timeout": context.timeout,
                                   "retry_total": 1}
        if settings.get("ca_file") or settings.get("insecure"):
            options["connection_verify"] = False if settings.get("insecure") else settings["ca_file"]
        if settings.get("authority_host"):
            options |= {"authority": settings["authority_host"], "disable_instance_discovery": True}
        try:
            if "client_secret" in registration.secrets:
                credential = sdk.ClientSecretCredential(settings["tenant"], settings["client_id"],
                                                             registration.secrets["client_secret"], **options)
            elif source:
                audience = settings.get("oidc_audience") or FEDERATION_AUDIENCE
                # Called by azure-identity each time it asks Entra ID for a token: one fresh identity token per fetch,
                # never kept (the credential object and its in-memory cache die with this fetch).
                credential = sdk.ClientAssertionCredential(
                    settings["tenant"], _client_id(settings), lambda: identity.obtain(source, audience, context),
                    **options)
            elif settings.get("managed_identity"):
                credential = sdk.ManagedIdentityCredential(
                    client_id=settings.get("managed_identity_client_id"), **options)
            else:
                credential = sdk.DefaultAzureCredential(exclude_interactive_browser_credential=True, **options)
            return str(credential.get_token(SCOPE).token)
        except sdk.CredentialUnavailableError as error:
            raise ProviderError(f"no Entra ID token from {self.identity(registration)}: {_first_line(error)}") from None
        except AzureError as error:
            status = getattr(error, "status_code", None) if isinstance(error, HttpResponseError) else None
            transient = isinstance(error, (ServiceRequestError, ServiceResponseError)) or (
                isinstance(status, int) and (status >= 500 or status == 429))
            raise ProviderError(f"{self.identity(registration)} was refused a token by Entra ID "
                                f"({_authority(settings)}): {_first_line(error)}",
                                transient=transient) from None
        except ValueError as error:
            raise ProviderError(f"{self.identity(registration)}: {_first_line(error)}") from None


def _first_line(error: BaseException) -> str:
    # azure-identity's messages can run to a troubleshooting essay; its first line names the cause. Anything shaped
    # like a JWT is taken out: an endpoint may echo the assertion it was sent.
    text = str(error).strip().splitlines()
    return identity.scrubbed(text[0]) if text else type(error).__name__


def _authority(settings: Mapping[str, Any]) -> str:
    return urllib.parse.urlsplit(settings.get("authority_host") or DEFAULT_AUTHORITY).netloc


def _federated_source(settings: Mapping[str, Any]) -> Optional[str]:
    """The identity token a workload identity registration exchanges: --oidc-token, or --federated-token-file, which
    is `file:PATH` by another name (one path for both: read afresh each fetch, through identity.py's file rules)."""
    if settings.get("oidc_token"):
        return str(settings["oidc_token"])
    if settings.get("federated_token_file"):
        return "file:" + os.path.abspath(str(settings["federated_token_file"]))
    return None


def _client_id(settings: Mapping[str, Any]) -> str:
    """--client-id; in kubelet mode the pod's azure.workload.identity/client-id annotation has already taken its place
    (fetching.annotated: the one rule for every type's annotations)."""
    if not settings.get("client_id"):
        raise ProviderError(f"no client id: the pod's service account has no {CLIENT_ID_ANNOTATION} annotation and the "
                            "registration no --client-id")
    return str(settings["client_id"])


def _post_form(context: FetchContext, url: str, form: Mapping[str, str], who: str,
               settings: Mapping[str, Any]) -> dict[str, Any]:
    body = urllib.parse.urlencode(form).encode("ascii")
    request = Request(url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded",
                                               "Accept": "application/json"})
    try:
        status, _, payload = context.transport(request, settings, context.timeout)
    except OSError as error:
        raise ProviderError(f"cannot reach {who} at {urllib.parse.urlsplit(url).netloc}: {network_reason(error)}",
                            transient=True) from None
    if status != 200:
        code = oauth_error(payload)
        raise ProviderError(f"{who} refused the request: HTTP {status}{' ' + code if code else ''}",
                            transient=status >= 500 or status == 429)
    try:
        answer = json.loads(payload)
    except ValueError:
        raise ProviderError(f"{who} answered with something that is not JSON") from None
    if not isinstance(answer, dict):
        raise ProviderError(f"{who} answered with JSON that is not an object")
    return answer


PROVIDER = AcrProvider()
