"""Registries with an identity-token exchange of their own: the job's or the pod's signed JWT (identity.py, obtained
afresh on every fetch, never stored) traded for a registry token. Nothing secret is kept in the vault.

Exchanges (wire formats as each service documents them; README "Identity tokens"):

- `dockerhub`: RFC 8693 form POST to https://identity.docker.com/oauth/token (`connection_id`, `expires_in`) ->
  `access_token`; the user is the Docker Hub account or organisation (`--username`).
- `jfrog`: JSON POST to {url}/access/api/v1/oidc/token (`provider_name`) -> `access_token`, maybe `username` and
  `expires_in`.
- `quay`: GET https://HOST/oauth2/federation/robot/token with Basic ORG+ROBOT:JWT -> `{"token"}`, user the robot.
- `chainguard`: GET https://issuer.enforce.dev/sts/exchange?aud=cgr.dev&identity=ID with the JWT as a bearer ->
  `{"token"}`, user `user`.
- `none`: the JWT is the password (Harbor's workload identity federation, zot).

An answer lives as its service says: `expires_in`, else the `exp` of an answer that is a JWT, else the exchange's
documented default. Failures are one line naming the exchange and the HTTP status, never a token.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from .. import identity
from ..errors import InvalidInput, ProviderError
from ..httpclient import Request, check_endpoint, network_reason, oauth_error, origin
from ..jsontext import loads
from ..model import Credential, Registration
from .base import FetchContext, Option, Provider, expire_option

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
DOCKERHUB_URL = "https://identity.docker.com/oauth/token"
DOCKERHUB_AUDIENCE = "https://identity.docker.com"
DOCKERHUB_LIFETIMES = (300.0, 3600.0)  # what identity.docker.com grants (expires_in 300..3600)
JFROG_PATH = "/access/api/v1/oidc/token"
QUAY_PATH = "/oauth2/federation/robot/token"
CHAINGUARD_URL = "https://issuer.enforce.dev/sts/exchange"
CHAINGUARD_AUDIENCE = "cgr.dev"
NONE_USERNAME = "jwt"
MAX_TOKEN_CHARS = 64 * 1024


@dataclass(frozen=True)
class Exchange:
    name: str
    required: tuple[str, ...]  # option dests it needs
    allowed: tuple[str, ...]  # further option dests it takes
    audience: str  # asked of a source that mints (github-actions) when --oidc-audience is not given; "" = its default
    lifetime: float  # seconds an answer holds when it says nothing of its expiry


COMMON = ("exchange", "oidc_token", "oidc_audience", "expire")
EXCHANGES = {
    "dockerhub": Exchange("dockerhub", ("connection_id", "username"), ("exchange_url",), DOCKERHUB_AUDIENCE, 3600.0),
    # JFrog's OIDC integration checks an audience only when one is configured; setup-jfrog-cli asks for none.
    "jfrog": Exchange("jfrog", ("url", "provider_name"), ("exchange_url", "username"), "", 3600.0),
    # Quay's robot federation checks the issuer and subject; its token lives 1 h.
    "quay": Exchange("quay", ("robot",), ("exchange_url",), "", 3600.0),
    "chainguard": Exchange("chainguard", ("identity",), ("exchange_url",), CHAINGUARD_AUDIENCE, 600.0),
    "none": Exchange("none", (), ("username",), "", 300.0),
}
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ROBOT = re.compile(r"[a-z0-9][a-z0-9._-]*\+[a-z0-9][a-z0-9_]*")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/@+-]*")


def _exchange_kind(text: str) -> str:
    value = str(text).strip()
    if value not in EXCHANGES:
        raise InvalidInput(f"--exchange takes one of: {', '.join(EXCHANGES)}")
    return value


def _connection_id(text: str) -> str:
    value = str(text).strip()
    if not _UUID.fullmatch(value):
        raise InvalidInput("--connection-id is the Docker Hub OIDC connection's UUID "
                           "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, from Docker Hub's organisation settings)")
    return value.lower()


def _robot(text: str) -> str:
    value = str(text).strip()
    if not _ROBOT.fullmatch(value):
        raise InvalidInput("--robot is a Quay robot account, ORGANISATION+NAME in lowercase, like acme+ci")
    return value


def _name(flag: str, what: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        value = str(text).strip()
        if not _NAME.fullmatch(value) or len(value) > 256:
            raise InvalidInput(f"{flag} is {what}: letters, digits and . _ / @ + -, at most 256 characters")
        return value

    return convert


def _username(text: str) -> str:
    value = str(text).strip()
    # Basic auth sends base64(username:password): a ':' moves the split, a line break ends a header.
    if not value or ":" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidInput("--username cannot be empty or hold ':' or a control character; give the registry's "
                           "user name alone")
    return value


class OidcProvider(Provider):
    type_name = "oidc"
    summary = ("an identity token (GitHub Actions, GitLab, Kubernetes, the kubelet) exchanged for a registry token: "
               "Docker Hub, JFrog, Quay, Chainguard, or used as the password (Harbor, zot); nothing stored")
    default_expire = 3600.0
    options = (
        Option("exchange", f"oidc: what the identity token is traded with: {', '.join(EXCHANGES)}", required=True,
               metavar="KIND", convert=_exchange_kind),
        identity.OPTIONS[0].replace(required=True),
        identity.OPTIONS[1],
        Option("connection-id", "oidc dockerhub: the Docker Hub OIDC connection's UUID", metavar="UUID",
               convert=_connection_id),
        Option("username", "oidc: the registry user (dockerhub: the account or organisation; none: default jwt; "
               "jfrog: when the exchange names none)", convert=_username),
        Option("url", "oidc jfrog: the JFrog Platform's base URL, e.g. https://acme.jfrog.io", metavar="URL"),
        Option("provider-name", "oidc jfrog: the name of the OIDC integration in JFrog", metavar="NAME",
               convert=_name("--provider-name", "the JFrog OIDC integration's name")),
        Option("robot", "oidc quay: the federated robot account, ORG+NAME", metavar="ORG+NAME", convert=_robot),
        Option("identity", "oidc chainguard: the id of the Chainguard identity to assume", metavar="ID",
               convert=_name("--identity", "a Chainguard identity id")),
        Option("exchange-url", "oidc: the exchange's endpoint instead of the service's own (a proxy, a test); "
               "http only for loopback", metavar="URL"),
        expire_option(default_expire),
    )

    def validate(self, settings: dict[str, Any], secrets: dict[str, str]) -> None:
        exchange = EXCHANGES[settings["exchange"]]
        flag = f"--exchange {exchange.name}"
        for dest in settings:
            if dest not in (*COMMON, *exchange.required, *exchange.allowed):
                raise InvalidInput(f"--{dest.replace('_', '-')} does not apply to {flag}")
        missing = [f"--{dest.replace('_', '-')}" for dest in exchange.required if not settings.get(dest)]
        if missing:
            raise InvalidInput(f"{flag} needs {' and '.join(missing)}")
        if settings.get("url"):
            settings["url"] = check_endpoint(settings["url"], "--url").rstrip("/")
        if settings.get("exchange_url"):  # the identity token goes there
            settings["exchange_url"] = check_endpoint(settings["exchange_url"], "--exchange-url")
        if (exchange.name == "none" and settings["oidc_token"] == identity.GITHUB_ACTIONS
                and not settings.get("oidc_audience")):
            raise InvalidInput("--exchange none with --oidc-token github-actions needs --oidc-audience: the audience "
                               "the registry (Harbor, zot) is configured to accept")
        if exchange.name == "dockerhub" and settings.get("expire"):
            low, high = DOCKERHUB_LIFETIMES
            if not low <= settings["expire"] <= high:
                raise InvalidInput("--exchange dockerhub grants tokens for 5 to 60 minutes: give --expire from 5m "
                                   "to 1h")

    def token_audience(self, registration: Registration) -> str:
        settings = registration.settings
        return str(settings.get("oidc_audience") or EXCHANGES[settings["exchange"]].audience)

    def hands_over_token(self, registration: Registration) -> bool:
        return bool(registration.settings.get("exchange") == "none")

    def lifetime(self, registration: Registration) -> float:
        settings = registration.settings
        return float(settings.get("expire") or EXCHANGES[settings["exchange"]].lifetime)

    def username_hint(self, registration: Registration) -> str:
        settings = registration.settings
        kind = settings.get("exchange")
        if kind == "quay":
            return str(settings.get("robot", ""))
        if kind == "chainguard":
            return "user"
        if kind == "none":
            return str(settings.get("username") or NONE_USERNAME)
        return str(settings.get("username", ""))

    def check_identity(self, registration: Registration, env: Mapping[str, str]) -> Optional[str]:
        """What doctor can see without calling out: the identity token's source is there."""
        source = registration.settings.get("oidc_token", "")
        kind, _, rest = source.partition(":")
        if source == identity.GITHUB_ACTIONS and not (env.get("ACTIONS_ID_TOKEN_REQUEST_URL")
                                                       and env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")):
            return ("no GitHub Actions identity token here (ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN unset): it exists in "
                    "a job step with `permissions: id-token: write`")
        if kind == "env" and not env.get(rest, "").strip():
            return f"variable {rest} holds no identity token here"
        if kind == "file" and not _exists(rest):
            return f"identity token file {rest} does not exist here"
        return None

    def describe(self, registration: Registration) -> dict[str, Any]:
        settings = registration.settings
        return {**super().describe(registration), "identity_token": identity.describe(settings["oidc_token"]),
                "exchange_endpoint": _endpoint_shown(registration)}

    def fetch(self, registration: Registration, context: FetchContext) -> Credential:
        settings = registration.settings
        exchange = EXCHANGES[settings["exchange"]]
        token = identity.obtain(settings["oidc_token"], self.token_audience(registration), context)
        expected = self.token_audience(registration)  # --oidc-audience, else the exchange's own (dockerhub, chainguard)
        if expected and settings["oidc_token"] != identity.GITHUB_ACTIONS:
            _check_audience(token, expected, settings["oidc_token"],
                            None if settings.get("oidc_audience") else exchange.name)
        now = context.now()
        if exchange.name == "none":
            expires = identity.expiry(token)
            return Credential(settings.get("username") or NONE_USERNAME, token,
                              expires if expires is not None else now + self.lifetime(registration))
        host = context.host or registration.host
        url = settings.get("exchange_url") or _default_url(exchange.name, settings, host)
        answer = _call(exchange.name, _request(exchange.name, url, settings, token, self.lifetime(registration)),
                       settings, context)
        field = "access_token" if exchange.name in ("dockerhub", "jfrog") else "token"
        secret = answer.get(field)
        if not isinstance(secret, str) or not secret.strip() or len(secret) > MAX_TOKEN_CHARS \
                or any(ord(c) < 33 or ord(c) == 127 for c in secret):
            raise ProviderError(f"the {exchange.name} exchange answered without a usable {field}")
        username = _username_from(exchange.name, settings, answer)
        return Credential(username, secret, _expiry(answer, secret, now, self.lifetime(registration)))


def _check_audience(token: str, audience: str, source: str, default_of: Optional[str]) -> None:
    """A token minted beforehand (a variable, a file, the kubelet's) for another audience than --oidc-audience, or
    without it than the exchange's own, is not sent anywhere: it was meant for someone else (who could replay it), and
    the exchange would refuse it. `default_of`: the exchange whose own audience it is, None for --oidc-audience's."""
    claimed = identity.claims(token).get("aud")
    audiences = claimed if isinstance(claimed, list) else [claimed]
    if audience not in audiences:
        which = f"the {default_of} exchange expects ({audience})" if default_of else "--oidc-audience names"
        raise ProviderError(f"the identity token from {identity.describe(source)} was not minted for the audience "
                            f"{which}; mint it for that audience (GitLab: id_tokens: NAME: aud:; "
                            "Kubernetes: the projected token's audience) or "
                            f"{'give the one it carries with' if default_of else 'change'} --oidc-audience")


def _exists(path: str) -> bool:
    import os

    return os.path.exists(path)


def _default_url(kind: str, settings: Mapping[str, Any], host: str) -> str:
    if kind == "dockerhub":
        return DOCKERHUB_URL
    if kind == "jfrog":
        return str(settings["url"]) + JFROG_PATH
    if kind == "quay":
        return f"https://{host}{QUAY_PATH}"
    return CHAINGUARD_URL


def _endpoint_shown(registration: Registration) -> str:
    settings = registration.settings
    if settings["exchange"] == "none":
        return "none: the identity token is the password"
    url = settings.get("exchange_url") or _default_url(settings["exchange"], settings, registration.host)
    return str(url)


def _request(kind: str, url: str, settings: Mapping[str, Any], token: str, lifetime: float) -> Request:
    import base64
    import json

    if kind == "dockerhub":
        low, high = DOCKERHUB_LIFETIMES
        form = {"grant_type": TOKEN_EXCHANGE, "subject_token_type": ID_TOKEN_TYPE, "subject_token": token,
                "connection_id": settings["connection_id"], "expires_in": str(int(min(max(lifetime, low), high)))}
        return Request(url, data=urllib.parse.urlencode(form).encode("ascii"), method="POST",
                       headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
    if kind == "jfrog":
        body = {"grant_type": TOKEN_EXCHANGE, "subject_token_type": ID_TOKEN_TYPE, "subject_token": token,
                "provider_name": settings["provider_name"]}
        return Request(url, data=json.dumps(body).encode("utf-8"), method="POST",
                       headers={"Content-Type": "application/json", "Accept": "application/json"})
    if kind == "quay":
        basic = base64.b64encode(f"{settings['robot']}:{token}".encode()).decode("ascii")
        return Request(url, method="GET", headers={"Authorization": f"Basic {basic}", "Accept": "application/json"})
    query = urllib.parse.urlencode({"aud": CHAINGUARD_AUDIENCE, "identity": settings["identity"]})
    return Request(url + ("&" if "?" in url else "?") + query, method="GET",
                   headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})


def _call(kind: str, request: Request, settings: Mapping[str, Any], context: FetchContext) -> dict[str, Any]:
    where = f"the {kind} exchange at {origin(request.full_url)}"
    try:
        status, _, body = context.transport(request, settings, context.timeout)
    except OSError as error:
        raise ProviderError(f"{where} did not answer: {network_reason(error)}", transient=True) from None
    if status in (401, 403):
        raise ProviderError(f"{where} refused the identity token (HTTP {status}{_shown_error(body)}): check its "
                            f"audience (--oidc-audience) and that the service trusts its issuer and subject "
                            f"({_trust_hint(kind)})")
    if status != 200:
        raise ProviderError(f"{where} answered HTTP {status}{_shown_error(body)}",
                            transient=status >= 500 or status == 429)
    try:
        answer = loads(body[:MAX_TOKEN_CHARS * 2].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ProviderError(f"{where} answered with something that is not JSON") from None
    if not isinstance(answer, dict):
        raise ProviderError(f"{where} answered with JSON that is not an object")
    return answer


def _trust_hint(kind: str) -> str:
    return {"dockerhub": "the OIDC connection's issuer and subject rules, and --connection-id",
            "jfrog": "the OIDC integration's issuer and audience, its identity mappings' claims",
            "quay": "the robot's federation configuration: issuer and subject",
            "chainguard": "the identity's issuer and subject, and --identity"}.get(kind, "")




def _username_from(kind: str, settings: Mapping[str, Any], answer: Mapping[str, Any]) -> str:
    if kind == "quay":
        return str(settings["robot"])
    if kind == "chainguard":
        return "user"
    if kind == "jfrog":
        named = answer.get("username")
        if isinstance(named, str) and named.strip() and ":" not in named \
                and not any(ord(c) < 32 or ord(c) == 127 for c in named):
            return named.strip()
        if settings.get("username"):
            return str(settings["username"])
        raise ProviderError("the jfrog exchange answered without a username; give the JFrog user with --username")
    return str(settings["username"])


def _expiry(answer: Mapping[str, Any], secret: str, now: float, lifetime: float) -> float:
    """expires_in when the answer gives it, else the exp of an answer that is a JWT, else the documented default."""
    expires_in = answer.get("expires_in")
    if isinstance(expires_in, str) and expires_in.strip().isdigit():
        expires_in = int(expires_in)
    if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool) and expires_in > 0:
        return now + float(expires_in)
    exp = identity.expiry(secret)
    return exp if exp is not None else now + lifetime


PROVIDER = OidcProvider()


def _shown_error(body: bytes) -> str:
    code = oauth_error(body)
    return f", {code}" if code else ""
