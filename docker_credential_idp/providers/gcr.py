"""Google Container Registry and Artifact Registry: OAuth access tokens through google-auth.

A service-account key kept in the vault, or Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's
ADC file, workload identity federation config, the metadata server).
"""

from __future__ import annotations

import calendar
import json
import os
from typing import Any, Mapping, Optional

from ..errors import InvalidInput, ProviderError
from ..model import Credential, Registration
from .base import FetchContext, Option, Provider, import_sdk

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
USERNAME = "oauth2accesstoken"


class GcrProvider(Provider):
    type_name = "gcr"
    summary = "Google GCR / Artifact Registry access tokens (a service-account key in the vault, or ADC)"
    sdk = ("google.auth.transport.requests", "google-auth[requests]")
    options = (
        Option("key", "a Google service-account key or external-account (JSON)", secret=True, from_file=True),
    )

    def validate(self, settings: dict[str, Any], secrets: dict[str, str]) -> None:
        if "key" not in secrets:
            return
        try:
            info = json.loads(secrets["key"])
        except ValueError:
            info = None
        if not isinstance(info, dict) or info.get("type") not in ("service_account", "external_account"):
            raise InvalidInput("the key is not a Google service-account or external-account JSON file")
        if info["type"] == "service_account" and not all(info.get(k) for k in ("client_email", "private_key", "token_uri")):
            raise InvalidInput("the service-account key lacks client_email, private_key or token_uri")

    def username_hint(self, registration: Registration) -> str:
        return USERNAME

    def check_identity(self, registration: Registration, env: Mapping[str, str]) -> Optional[str]:
        missing = super().check_identity(registration, env)
        if missing or "key" in registration.secrets:
            return missing
        named = env.get("GOOGLE_APPLICATION_CREDENTIALS")
        if named:
            return None if os.path.isfile(named) else f"GOOGLE_APPLICATION_CREDENTIALS names {named}, which is not a file"
        config = env.get("CLOUDSDK_CONFIG") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config",
                                                            "gcloud")
        if os.path.isfile(os.path.join(config, "application_default_credentials.json")):
            return None
        return ("no Application Default Credentials: no key in the registration, GOOGLE_APPLICATION_CREDENTIALS "
                "unset and no gcloud ADC file (on GCE or GKE the metadata server would serve; it was not asked)")

    def fetch(self, registration: Registration, context: FetchContext) -> Credential:
        import_sdk(self.type_name, *self.sdk)
        import google.auth
        import google.auth.exceptions
        import google.auth.transport.requests

        base = google.auth.transport.requests.Request()

        def request(*args: Any, **kwargs: Any) -> Any:  # google-auth's default timeout is 120 s
            kwargs["timeout"] = context.timeout
            return base(*args, **kwargs)

        try:
            credentials = _credentials(registration, google.auth)
            credentials.refresh(request)
        except google.auth.exceptions.DefaultCredentialsError as error:
            raise ProviderError(f"no Google credentials: {_short(error)}; give the registration --key-file or set "
                                "GOOGLE_APPLICATION_CREDENTIALS") from None
        except google.auth.exceptions.GoogleAuthError as error:
            # not reached (TransportError), or an answer google-auth itself would retry (5xx, 429, 408)
            transient = isinstance(error, google.auth.exceptions.TransportError) or getattr(error, "retryable", False)
            raise ProviderError(f"Google token request failed: {_short(error)}", transient=transient is True) from None
        except (ValueError, TypeError, KeyError):
            # google-auth lets a token endpoint's malformed answer escape as a plain parsing error
            raise ProviderError("the Google token endpoint answered with something that is not a token response") from None
        expiry = getattr(credentials, "expiry", None)
        # google-auth keeps expiry as a naive UTC datetime
        expires_at = float(calendar.timegm(expiry.utctimetuple())) if expiry else None
        return Credential(USERNAME, credentials.token, expires_at)


def _credentials(registration: Registration, google_auth: Any) -> Any:
    if "key" not in registration.secrets:
        credentials, _ = google_auth.default(scopes=SCOPES)
        return credentials
    info = json.loads(registration.secrets["key"])
    if info["type"] == "service_account":
        from google.oauth2 import service_account

        return service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
    from google.auth import external_account  # noqa: F401 - load_credentials_from_dict dispatches on "type"

    credentials, _ = google_auth.load_credentials_from_dict(info, scopes=SCOPES)
    return credentials


def _short(error: BaseException) -> str:
    # google-auth errors can carry the token endpoint's whole answer: keep the first line, bounded.
    return " ".join(str(error).split())[:200]


PROVIDER = GcrProvider()
