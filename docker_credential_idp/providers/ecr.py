"""AWS ECR and ECR Public: one signed GetAuthorizationToken (aws.py), per registration profile, role, static keys,
identity token or the default chain."""

from __future__ import annotations

import base64
import re
from typing import Any, Mapping, Optional

from ..errors import InvalidInput, ProviderError
from ..matching import host_matches, is_pattern
from ..model import Credential, Registration
from . import aws
from .base import FetchContext, Option, Provider

# awslabs/amazon-ecr-credential-helper ecr-login/api/client.go
ECR_HOST = re.compile(
    r"^(\d{12})\.dkr[\.\-]ecr(\-fips)?\.([a-zA-Z0-9][a-zA-Z0-9-_]*)\.(amazonaws\.(?:com(?:\.cn)?|eu)|"
    r"on\.(?:aws|amazonwebservices\.com\.cn)|sc2s\.sgov\.gov|c2s\.ic\.gov|cloud\.adc-e\.uk|csp\.hci\.ic\.gov)$"
)
ECR_PUBLIC_HOST = "public.ecr.aws"


def registry_target(registration: Registration, host: str) -> tuple[str, Optional[str], Optional[str], bool]:
    """(API, account, region, fips) for a registration serving `host`: from the host, with --registry-id and
    --region winning (a pattern registration has neither: each host it matches names its own)."""
    settings = registration.settings
    if host == ECR_PUBLIC_HOST:
        return "ecr-public", None, "us-east-1", False
    found = ECR_HOST.match(host)
    account = settings.get("registry_id") or (found.group(1) if found else None)
    region = settings.get("region") or (found.group(3) if found else None)
    return "ecr", account, region, bool(found and found.group(2))


class EcrProvider(Provider):
    type_name = "ecr"
    summary = "AWS ECR / ECR Public tokens (profile, role, static keys, identity token or the default chain)"
    sdk = aws.SDK
    annotation_keys = aws.ANNOTATION_KEYS
    options = (
        Option("region", "AWS region (default: from the ECR host, else the AWS config)"),
        Option("registry-id", "ecr: the 12-digit account that owns the registry (default: from the host)"),
        *aws.SESSION_OPTIONS,
        Option("endpoint-url", "AWS API endpoint (private endpoints, tests); AWS_ENDPOINT_URL_<SERVICE> works too"),
    )

    def validate(self, settings: dict[str, Any], secrets: dict[str, str]) -> None:
        aws.validate_session(settings, secrets)
        if settings.get("registry_id") and not re.fullmatch(r"\d{12}", settings["registry_id"]):
            raise InvalidInput("--registry-id is a 12-digit AWS account id")

    def check_prefix(self, registration: Registration) -> None:
        if is_pattern(registration.prefix):
            if registration.settings.get("registry_id") or registration.settings.get("region"):
                raise InvalidInput("a pattern takes the account and region from each host it matches; drop "
                                   "--registry-id and --region")
            if not ECR_HOST.match(_example_host(registration.host)):
                raise InvalidInput(f"pattern {registration.host} does not match ECR hosts "
                                   "(<account>.dkr.ecr.<region>.amazonaws.com); write it like *.dkr.ecr.*.amazonaws.com")
            return
        _, account, region, _ = registry_target(registration, registration.host)
        if not region or account is None and registration.host != ECR_PUBLIC_HOST:
            raise InvalidInput(
                f"{registration.host} is not an ECR host (<account>.dkr.ecr.<region>.amazonaws.com); "
                "pass --region and --registry-id to serve it"
            )

    def check_identity(self, registration: Registration, env: Mapping[str, str]) -> Optional[str]:
        return super().check_identity(registration, env) or aws.identity_problem(
            registration.settings, registration.secrets, env)

    def username_hint(self, registration: Registration) -> str:
        return "AWS"

    def fetch(self, registration: Registration, context: FetchContext) -> Credential:
        host = context.host or registration.host
        api, account, region, fips = registry_target(registration, host)
        if not region or account is None and host != ECR_PUBLIC_HOST:
            raise ProviderError(f"{host} is not an ECR host (<account>.dkr.ecr.<region>.amazonaws.com)")
        settings = registration.settings
        keys = aws.credentials(self.type_name, settings, registration.secrets, region, fips, context)
        url = aws.endpoint(api, region, fips, settings.get("endpoint_url"), context.env)
        if api == "ecr-public":
            answer = aws.call_json(context, api, region, url, "SpencerFrontendService.GetAuthorizationToken", {}, keys)
            data = answer.get("authorizationData")
        else:
            answer = aws.call_json(context, api, region, url, "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
                                   {"registryIds": [account]} if account else {}, keys)
            found = answer.get("authorizationData")
            data = found[0] if isinstance(found, list) and found else None
        if not isinstance(data, dict):
            raise ProviderError("ECR answered GetAuthorizationToken without authorizationData")
        return _decode(data)


# The words an ECR host is made of, beside its account and region: what a `*` in those labels has to stand for.
_ECR_WORDS = ("dkr", "ecr", "ecr-fips", "amazonaws", "com", "cn", "eu", "on", "aws", "amazonwebservices", "sc2s",
              "sgov", "gov", "c2s", "ic", "cloud", "adc-e", "uk", "csp", "hci")


def _example_host(pattern_host: str) -> str:
    """A host the pattern matches that is an ECR host if any is: the first label's `*` filled with digits up to an
    account's 12 (`123*` -> 123000000000), another label's with what makes an ECR word (`ecr*` -> ecr-fips) or else
    a region's characters."""
    labels = pattern_host.split(".")
    first = labels[0]
    digits = max(1, 12 - len(first.replace("*", "")) - (first.count("*") - 1))
    filled = [first.replace("*", "0" * digits, 1).replace("*", "0")]
    for label in labels[1:]:
        word = next((w for w in _ECR_WORDS if host_matches(label, w)), None) if "*" in label else label
        filled.append(word or label.replace("*", "1"))
    return ".".join(filled)


def _decode(data: Mapping[str, Any]) -> Credential:
    try:
        username, _, password = base64.b64decode(data["authorizationToken"]).decode("utf-8").partition(":")
    except (KeyError, ValueError, UnicodeDecodeError):
        raise ProviderError("ECR returned an authorization token that is not base64 of user:password") from None
    if not password:
        raise ProviderError("ECR returned an authorization token without a password")
    expires = data.get("expiresAt")  # epoch seconds in the JSON 1.1 protocol
    if not isinstance(expires, (int, float)) or isinstance(expires, bool) or expires <= 0:
        expires = None
    return Credential(username=username, secret=password, expires_at=float(expires) if expires else None)


PROVIDER = EcrProvider()
