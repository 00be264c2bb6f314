"""AWS Secrets Manager: a registry's username and password kept in a secret that a fleet reads with its own AWS
identity, so no machine holds the registry password itself."""

from __future__ import annotations

import json
import re
from typing import Any, Mapping, Optional

from ..errors import InvalidInput, ProviderError
from ..model import Credential, Registration
from . import aws
from .base import FetchContext, Option, Provider, expire_option

SECRET_ARN = re.compile(r"^arn:aws[\w-]*:secretsmanager:([a-z0-9-]+):\d{12}:secret:.+$")


class AwsSecretProvider(Provider):
    type_name = "aws-secret"
    summary = "a username and password read from AWS Secrets Manager with the machine's AWS identity"
    sdk = aws.SDK
    annotation_keys = aws.ANNOTATION_KEYS
    options = (
        Option("secret-id", "the secret's name or ARN; its value is JSON {username, password} or username:password",
               required=True),
        Option("region", "AWS region (default: from the secret's ARN, else the AWS config)"),
        *aws.SESSION_OPTIONS,
        Option("endpoint-url", "AWS API endpoint (private endpoints, tests); AWS_ENDPOINT_URL_<SERVICE> works too"),
        expire_option(Provider.default_expire),
        Option("version-stage", "the secret version stage to read (default AWSCURRENT)"),
    )

    def validate(self, settings: dict[str, Any], secrets: dict[str, str]) -> None:
        aws.validate_session(settings, secrets)
        if not settings["secret_id"].strip():
            raise InvalidInput("--secret-id is empty")

    def check_identity(self, registration: Registration, env: Mapping[str, str]) -> Optional[str]:
        return super().check_identity(registration, env) or aws.identity_problem(
            registration.settings, registration.secrets, env)

    def fetch(self, registration: Registration, context: FetchContext) -> Credential:
        settings = registration.settings
        region = _region(settings) or aws.config_region(self.type_name, settings, context.env)
        if not region:
            raise ProviderError("no AWS region: give the registration --region or set AWS_REGION")
        payload = {"SecretId": settings["secret_id"]}
        if settings.get("version_stage"):
            payload["VersionStage"] = settings["version_stage"]
        keys = aws.credentials(self.type_name, settings, registration.secrets, region, False, context)
        url = aws.endpoint("secretsmanager", region, False, settings.get("endpoint_url"), context.env)
        try:
            answer = aws.call_json(context, "secretsmanager", region, url, "secretsmanager.GetSecretValue", payload, keys)
        except ProviderError as error:
            raise _described(error, settings["secret_id"]) from None
        username, password = parse_secret(answer.get("SecretString"), settings["secret_id"])
        return Credential(username, password, context.now() + self.lifetime(registration))


def _region(settings: Mapping[str, Any]) -> Optional[str]:
    found = SECRET_ARN.match(settings["secret_id"])
    return settings.get("region") or (found.group(1) if found else None)


def _described(error: ProviderError, secret_id: str) -> ProviderError:
    if "ResourceNotFoundException" in error.message:
        return ProviderError(f"secret {secret_id!r} does not exist in that account and region; check --secret-id and "
                             "--region")
    if "AccessDenied" in error.message:
        return ProviderError(f"the AWS identity may not read secret {secret_id!r} (secretsmanager:GetSecretValue, and "
                             "kms:Decrypt for its key)")
    return error


def parse_secret(value: Any, secret_id: str) -> tuple[str, str]:
    """JSON {"username", "password"} or the text username:password. The value itself never reaches a message."""
    if not isinstance(value, str) or not value.strip():
        raise ProviderError(f"secret {secret_id!r} has no SecretString (a binary secret cannot hold a registry login)")
    text = value.strip()
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except ValueError:
            raise ProviderError(f"secret {secret_id!r} starts like JSON but is not valid JSON") from None
        username, password = document.get("username"), document.get("password")
        if not (isinstance(username, str) and username and isinstance(password, str) and password):
            raise ProviderError(f"secret {secret_id!r} is JSON without string fields username and password")
        return username, password
    username, colon, password = text.partition(":")
    if not colon or not username or not password or "\n" in text:
        raise ProviderError(f"secret {secret_id!r} is neither JSON with username and password nor one line "
                            "username:password")
    return username, password


PROVIDER = AwsSecretProvider()
