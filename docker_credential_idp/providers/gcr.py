"""Google Container Registry and Artifact Registry: OAuth access tokens through google-auth.

A service-account key kept in the vault; Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's
ADC file, workload identity federation config, the metadata server); or workload identity federation with nothing
stored: an identity token (identity.py: GitHub Actions, a variable, a file, the kubelet's) obtained afresh on every
fetch and exchanged at Google's STS, then, with a service account, for that account's token at IAM Credentials.
"""

from __future__ import annotations

import calendar
import json
import os
import re
from typing import Any, ClassVar, Mapping, Optional

from .. import identity
from ..errors import InvalidInput, ProviderError
from ..httpclient import Request, check_endpoint, network_reason, origin
from ..model import Credential, Registration
from .base import FetchContext, Option, Provider, import_sdk

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
USERNAME = "oauth2accesstoken"
STS_URL = "https://sts.googleapis.com/v1/token"
IAM_CREDENTIALS_URL = "https://iamcredentials.googleapis.com"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
SERVICE_ACCOUNT_ANNOTATION = "iam.gke.io/gcp-service-account"
# //iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER; pool and
# provider ids are 4 to 32 lowercase letters, digits and hyphens. `projects/...` alone (google-github-actions/auth's
# spelling) is taken too.
_PROVIDER_NAME = re.compile(r"(?://iam\.googleapis\.com/)?(projects/[0-9]{1,20}/locations/global/workloadIdentityPools/"
                            r"[a-z0-9-]{4,32}/providers/[a-z0-9-]{4,32})")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,128}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63}){1,8}")


class GcrProvider(Provider):
    type_name = "gcr"
    summary = "Google GCR / Artifact Registry access tokens (a service-account key in the vault, or ADC)"
    sdk = ("google.auth.transport.requests", "google-auth[requests]")
    options = (
        Option("key", "a Google service-account key or external-account (JSON)", secret=True, from_file=True),
        Option("workload-identity-provider", "workload identity federation: the pool provider, "
               "//iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER "
               "(with --oidc-token)", metavar="NAME"),
        Option("service-account", "federation: impersonate this service account (EMAIL); else the federated identity's "
               f"own token. In kubelet mode the pod's {SERVICE_ACCOUNT_ANNOTATION} annotation comes first",
               metavar="EMAIL"),
        Option("sts-url", f"federation: Google STS token endpoint (default {STS_URL}; private endpoints, tests)",
               metavar="URL"),
        Option("impersonation-url", f"federation: IAM Credentials endpoint (default {IAM_CREDENTIALS_URL}; private "
               "endpoints, tests)", metavar="URL"),
        *identity.OPTIONS,
    )
    annotation_keys: ClassVar[Mapping[str, str]] = {"service_account": SERVICE_ACCOUNT_ANNOTATION}

    def validate(self, settings: dict[str, Any], secrets: dict[str, str]) -> None:
        if settings.get("workload_identity_provider") or settings.get("oidc_token"):
            _validate_federation(settings, secrets)
            return
        given = [f"--{o.name}" for o in self.options[2:] if settings.get(o.dest)]
        if given:
            raise InvalidInput(f"{' and '.join(given)} {'goes' if len(given) == 1 else 'go'} with "
                               "--workload-identity-provider and --oidc-token (workload identity federation)")
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

    def describe(self, registration: Registration) -> dict[str, Any]:
        described = super().describe(registration)
        settings = registration.settings
        if settings.get("oidc_token"):
            described["identity"] = (f"workload identity federation through {settings['workload_identity_provider']} "
                                     f"with {identity.describe(settings['oidc_token'])}"
                                     + (f", as {settings['service_account']}" if settings.get("service_account") else ""))
        return described

    def check_identity(self, registration: Registration, env: Mapping[str, str]) -> Optional[str]:
        missing = super().check_identity(registration, env)
        if missing or "key" in registration.secrets:
            return missing
        if registration.settings.get("oidc_token"):
            return identity.problem(registration.settings["oidc_token"], env)
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
        if registration.settings.get("oidc_token"):
            return _federated(registration, context)
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


# -- workload identity federation -----------------------------------------------------------------------------------


def _validate_federation(settings: dict[str, Any], secrets: Mapping[str, str]) -> None:
    if "key" in secrets:
        raise InvalidInput("--type gcr takes one identity: a --key or workload identity federation, not both")
    if not settings.get("workload_identity_provider") or not settings.get("oidc_token"):
        raise InvalidInput("workload identity federation needs both --workload-identity-provider and --oidc-token")
    # The name is never quoted back: a token pasted in the wrong place must not be printed.
    name = _PROVIDER_NAME.fullmatch(str(settings["workload_identity_provider"]).strip())
    if not name:
        raise InvalidInput("--workload-identity-provider takes //iam.googleapis.com/projects/NUMBER/locations/global/"
                           "workloadIdentityPools/POOL/providers/PROVIDER (as `gcloud iam workload-identity-pools "
                           "providers describe` prints it)")
    settings["workload_identity_provider"] = f"//iam.googleapis.com/{name.group(1)}"
    if settings.get("service_account") and not _EMAIL.fullmatch(str(settings["service_account"])):
        raise InvalidInput("--service-account takes the service account's email, like "
                           "builder@my-project.iam.gserviceaccount.com")
    for flag, key in (("--sts-url", "sts_url"), ("--impersonation-url", "impersonation_url")):
        if settings.get(key):  # the identity token, and then Google's token, go there
            settings[key] = check_endpoint(settings[key], flag).rstrip("/")
    if settings.get("impersonation_url") and not settings.get("service_account") \
            and settings["oidc_token"] != identity.KUBELET:
        raise InvalidInput("--impersonation-url goes with --service-account")


def default_audience(provider_name: str) -> str:
    """The audience the identity token is asked for when --oidc-audience does not say: the provider's resource name
    with the https prefix. A provider configured without allowed audiences accepts exactly its full canonical name,
    "with or without the HTTPS prefix" (IAM API, WorkloadIdentityPoolProvider.Oidc.allowedAudiences), and the https
    form is the one google-github-actions/auth asks GitHub for, so a provider set up for that action works as is."""
    return "https:" + provider_name


def _federated(registration: Registration, context: FetchContext) -> Credential:
    """STS exchange of a fresh identity token (and, with a service account, generateAccessToken) through google-auth's
    identity_pool.Credentials, whose HTTP goes through `context.transport`. Nothing is stored: the identity token is
    obtained inside the exchange, each fetch, and dropped with the credentials object."""
    import_sdk("gcr", "google.auth.identity_pool", "google-auth")
    from google.auth import exceptions
    from google.auth import identity_pool as pool

    settings = registration.settings
    source = settings["oidc_token"]
    provider_name = settings["workload_identity_provider"]
    audience = settings.get("oidc_audience") or default_audience(provider_name)
    service_account = _service_account(settings)
    sts_url = settings.get("sts_url") or STS_URL
    iam_url = None
    if service_account:
        iam_url = (f"{settings.get('impersonation_url') or IAM_CREDENTIALS_URL}/v1/projects/-/serviceAccounts/"
                   f"{service_account}:generateAccessToken")

    class Supplier(pool.SubjectTokenSupplier):  # type: ignore[misc]  # google-auth ships no types
        def get_subject_token(self, _context: Any, _request: Any) -> str:
            return identity.obtain(source, audience, context)

    transport = _Transport(context, settings, exceptions.TransportError)
    sts = f"Google STS ({origin(sts_url)})"
    try:
        credentials = pool.Credentials(audience=provider_name, subject_token_type=JWT_TOKEN_TYPE, token_url=sts_url,
                                       subject_token_supplier=Supplier(), service_account_impersonation_url=iam_url,
                                       scopes=SCOPES)
        credentials.refresh(transport)
    except exceptions.OAuthError as error:  # STS's answer: an OAuth error (RFC 6749 5.2)
        raise ProviderError(f"{sts} refused the identity token from {identity.describe(source)} for {provider_name}"
                            f"{transport.status_text()}: {_said(error)}", transient=transport.transient()) from None
    except exceptions.TransportError as error:
        raise ProviderError(f"cannot reach {_said(error)}", transient=True) from None
    except exceptions.GoogleAuthError as error:  # generateAccessToken's refusal (RefreshError)
        raise ProviderError(f"IAM Credentials ({origin(iam_url or sts_url)}) refused to impersonate {service_account} "
                            f"with {sts}'s token for {identity.describe(source)}{transport.status_text()}: "
                            f"{_iam_said(error)}", transient=transport.transient()) from None
    except (ValueError, TypeError, KeyError):  # a malformed answer escapes google-auth as a parsing error
        raise ProviderError(f"{sts} or IAM Credentials answered with something that is not a token response") from None
    if not isinstance(credentials.token, str) or not credentials.token:
        raise ProviderError(f"{sts} answered without an access_token")
    expiry = getattr(credentials, "expiry", None)
    expires_at = float(calendar.timegm(expiry.utctimetuple())) if expiry else None
    return Credential(USERNAME, credentials.token, expires_at)


def _service_account(settings: Mapping[str, Any]) -> Optional[str]:
    """--service-account; in kubelet mode the pod's iam.gke.io/gcp-service-account annotation has already taken its
    place (fetching.annotated: the one rule for every type's annotations)."""
    return str(settings["service_account"]) if settings.get("service_account") else None


def _said(error: BaseException) -> str:
    """What google-auth's error says (its first argument: STS's `Error code X: description`), one bounded line with
    anything shaped like a JWT taken out: an endpoint may echo what it was sent."""
    text = error.args[0] if error.args and isinstance(error.args[0], str) else str(error)
    return identity.scrubbed(text)


def _iam_said(error: BaseException) -> str:
    """IAM Credentials' error answer is {"error": {"code", "message", "status"}}: its status and message."""
    body = error.args[1] if len(error.args) > 1 and isinstance(error.args[1], str) else ""
    try:
        detail = json.loads(body).get("error")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, dict) and isinstance(detail.get("message"), str):
        text = f"{detail.get('status') or detail.get('code') or ''} {detail['message']}".strip()
        return identity.scrubbed(text)
    return _said(error)


class _Response:
    """What google-auth reads of an answer (google.auth.transport.Response's three properties)."""

    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self.status, self.headers, self.data = status, headers, data


class _Transport:
    """google-auth's transport.Request over FetchContext.transport: the registration's TLS choices, same-origin
    redirects only, the fetch timeout, and in tests an answer from a stand-in. Remembers the last status so that a
    failure can be named (and marked transient on 5xx and 429)."""

    def __init__(self, context: FetchContext, settings: Mapping[str, Any], transport_error: type[Exception]) -> None:
        self.context, self.settings, self.transport_error = context, settings, transport_error
        self.last_status = 0

    def __call__(self, url: str, method: str = "GET", body: Optional[bytes] = None,
                 headers: Optional[Mapping[str, str]] = None, timeout: Optional[float] = None, **_: Any) -> _Response:
        self.last_status = 0
        request = Request(url, data=body, headers=dict(headers or {}), method=method)
        try:
            status, answer_headers, data = self.context.transport(request, self.settings, self.context.timeout)
        except OSError as error:
            raise self.transport_error(f"{origin(url)}: {network_reason(error)}") from None
        self.last_status = status
        return _Response(status, dict(answer_headers or {}), data)

    def status_text(self) -> str:
        return f" (HTTP {self.last_status})" if self.last_status else ""

    def transient(self) -> bool:
        return self.last_status >= 500 or self.last_status == 429


PROVIDER = GcrProvider()
