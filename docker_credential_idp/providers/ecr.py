"""AWS ECR and ECR Public: GetAuthorizationToken through boto3, per registration profile, role or static keys."""

from __future__ import annotations

import base64
import re
from typing import Any, Mapping, Optional

from ..errors import InvalidInput, ProviderError, ProviderUnavailable
from ..model import Credential, Registration
from .base import FetchContext, Option, Provider

# awslabs/amazon-ecr-credential-helper ecr-login/api/client.go
ECR_HOST = re.compile(
    r"^(\d{12})\.dkr[\.\-]ecr(\-fips)?\.([a-zA-Z0-9][a-zA-Z0-9-_]*)\.(amazonaws\.(?:com(?:\.cn)?|eu)|"
    r"on\.(?:aws|amazonwebservices\.com\.cn)|sc2s\.sgov\.gov|c2s\.ic\.gov|cloud\.adc-e\.uk|csp\.hci\.ic\.gov)$"
)
ECR_PUBLIC_HOST = "public.ecr.aws"


def registry_target(registration: Registration) -> tuple[str, Optional[str], Optional[str], bool]:
    """(API, account, region, fips) for a registration: from the host, with --registry-id and --region winning."""
    settings = registration.settings
    host = registration.host
    if host == ECR_PUBLIC_HOST:
        return "ecr-public", None, "us-east-1", False
    found = ECR_HOST.match(host)
    account = settings.get("registry_id") or (found.group(1) if found else None)
    region = settings.get("region") or (found.group(3) if found else None)
    return "ecr", account, region, bool(found and found.group(2))


class EcrProvider(Provider):
    type_name = "ecr"
    summary = "AWS ECR / ECR Public tokens (boto3: profile, role, static keys or the default chain)"
    caches_tokens = True
    sdk = ("boto3", "aws")
    options = (
        Option("region", "AWS region (default: from the ECR host)"),
        Option("registry-id", "the 12-digit account that owns the registry (default: from the host)"),
        Option("profile", "AWS shared-config profile (SSO profiles too)"),
        Option("role-arn", "a role to assume before asking for the token"),
        Option("external-id", "external id for --role-arn"),
        Option("role-session-name", "session name for --role-arn (default docker-credential-idp)"),
        Option("access-key-id", "static access key id (its secret through --secret-access-key-stdin/-env)"),
        Option("secret-access-key", "the secret access key", secret=True),
        Option("endpoint-url", "ECR API endpoint (private endpoints, tests); AWS_ENDPOINT_URL_ECR works too"),
    )

    def validate(self, settings: dict[str, Any], secrets: dict[str, str]) -> None:
        if bool(settings.get("access_key_id")) != bool(secrets.get("secret_access_key")):
            raise InvalidInput("--access-key-id and --secret-access-key-stdin/-env go together")
        if settings.get("external_id") and not settings.get("role_arn"):
            raise InvalidInput("--external-id needs --role-arn")
        if settings.get("registry_id") and not re.fullmatch(r"\d{12}", settings["registry_id"]):
            raise InvalidInput("--registry-id is a 12-digit AWS account id")

    def check_prefix(self, registration: Registration) -> None:
        _, account, region, _ = registry_target(registration)
        if not region or account is None and registration.host != ECR_PUBLIC_HOST:
            raise InvalidInput(
                f"{registration.host} is not an ECR host (<account>.dkr.ecr.<region>.amazonaws.com); "
                "pass --region and --registry-id to serve it"
            )

    def username_hint(self, registration: Registration) -> str:
        return "AWS"

    def fetch(self, registration: Registration, context: FetchContext) -> Credential:
        try:
            import boto3
            import botocore.config
            import botocore.exceptions
        except ImportError:
            raise ProviderUnavailable("ecr", "boto3", "aws") from None
        api, account, region, fips = registry_target(registration)
        settings = registration.settings
        config = botocore.config.Config(
            connect_timeout=context.timeout, read_timeout=context.timeout, retries={"max_attempts": 2, "mode": "standard"},
            use_fips_endpoint=fips or None,
        )
        try:
            session = _session(boto3, settings, registration.secrets, region, config)
            client = session.client(api, region_name=region, endpoint_url=settings.get("endpoint_url"), config=config)
            if api == "ecr-public":
                data = client.get_authorization_token()["authorizationData"]
            else:
                data = client.get_authorization_token(**({"registryIds": [account]} if account else {}))["authorizationData"][0]
        except botocore.exceptions.BotoCoreError as error:
            raise ProviderError(_describe_boto_error(error, settings)) from None
        except botocore.exceptions.ClientError as error:
            info = error.response.get("Error", {})
            raise ProviderError(f"AWS answered {info.get('Code', 'an error')}: {_short(info.get('Message', ''))}") from None
        return _decode(data)


def _session(boto3: Any, settings: Mapping[str, Any], secrets: Mapping[str, str], region: Optional[str], config: Any) -> Any:
    session = boto3.session.Session(
        profile_name=settings.get("profile"),
        region_name=region,
        aws_access_key_id=settings.get("access_key_id"),
        aws_secret_access_key=secrets.get("secret_access_key"),
    )
    if not settings.get("role_arn"):
        return session
    arguments = {"RoleArn": settings["role_arn"], "RoleSessionName": settings.get("role_session_name") or "docker-credential-idp"}
    if settings.get("external_id"):
        arguments["ExternalId"] = settings["external_id"]
    assumed = session.client("sts", region_name=region, config=config).assume_role(**arguments)["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=assumed["AccessKeyId"],
        aws_secret_access_key=assumed["SecretAccessKey"],
        aws_session_token=assumed["SessionToken"],
        region_name=region,
    )


def _decode(data: Mapping[str, Any]) -> Credential:
    try:
        username, _, password = base64.b64decode(data["authorizationToken"]).decode("utf-8").partition(":")
    except (KeyError, ValueError, UnicodeDecodeError):
        raise ProviderError("ECR returned an authorization token that is not base64 of user:password") from None
    if not password:
        raise ProviderError("ECR returned an authorization token without a password")
    expires = data.get("expiresAt")
    return Credential(username=username, secret=password, expires_at=expires.timestamp() if expires else None)


def _describe_boto_error(error: Exception, settings: Mapping[str, Any]) -> str:
    name = type(error).__name__
    if name == "NoCredentialsError":
        where = f"profile {settings['profile']!r}" if settings.get("profile") else "the default chain (environment, shared config, SSO, web identity, instance metadata)"
        return f"no AWS credentials found in {where}; log in (aws sso login) or give the registration --profile or keys"
    if name == "ProfileNotFound":
        return f"AWS profile {settings.get('profile')!r} is not in the shared config; check --profile or AWS_CONFIG_FILE"
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"):
        return f"cannot reach the AWS endpoint ({name}); check the network, --endpoint-url or --timeout"
    return f"{name}: {_short(str(error))}"


def _short(text: str) -> str:
    return " ".join(text.split())[:200]


PROVIDER = EcrProvider()
