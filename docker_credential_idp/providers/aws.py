"""What the AWS providers (ecr, aws-secret) share: their options, a boto3 session per registration, and errors
turned into one line. Not a provider itself; boto3 is imported only by `import_boto3`, inside a fetch."""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

from ..errors import PROG, InvalidInput, ProviderError
from .base import Option, import_sdk

SESSION_OPTIONS = (
    Option("profile", "AWS shared-config profile (SSO profiles too)"),
    Option("role-arn", "a role to assume first"),
    Option("external-id", "external id for --role-arn"),
    Option("role-session-name", f"session name for --role-arn (default {PROG})"),
    Option("access-key-id", "static access key id (its secret through --secret-access-key-stdin/-env)"),
    Option("secret-access-key", "the secret access key", secret=True),
)


# Every AWS partition's region names (botocore's partitions.json regionRegex): us-east-1, us-gov-west-1,
# cn-north-1, eu-isoe-west-1, eusc-de-east-1.
REGION = re.compile(r"[a-z]{2,4}(-[a-z]+){1,3}-\d{1,2}")


def validate_session(settings: dict[str, Any], secrets: Mapping[str, str]) -> None:
    """The options both AWS types take: the region, the endpoint, the keys, the role."""
    if settings.get("region") and not REGION.fullmatch(settings["region"]):
        raise InvalidInput(f"--region {settings['region'][:40]!r} is not an AWS region name; write it like eu-west-1 "
                           "or us-gov-west-1")
    if settings.get("endpoint_url"):  # signed requests go there, and the token comes back from it
        from ..httpclient import check_endpoint

        settings["endpoint_url"] = check_endpoint(settings["endpoint_url"], "--endpoint-url")
    if bool(settings.get("access_key_id")) != bool(secrets.get("secret_access_key")):
        raise InvalidInput("--access-key-id and --secret-access-key-stdin/-env go together")
    if settings.get("external_id") and not settings.get("role_arn"):
        raise InvalidInput("--external-id needs --role-arn")
    if settings.get("role_arn") and not re.fullmatch(r"arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]+", settings["role_arn"]):
        raise InvalidInput("--role-arn must look like arn:aws:iam::123456789012:role/NAME")


SDK = ("boto3", "boto3")


def import_boto3(type_name: str) -> tuple[Any, Any]:
    """(boto3, botocore) or ProviderUnavailable naming the install line."""
    boto3 = import_sdk(type_name, *SDK)
    import botocore.config
    import botocore.exceptions

    return boto3, botocore


def client_config(botocore: Any, timeout: float, fips: bool = False) -> Any:
    return botocore.config.Config(connect_timeout=timeout, read_timeout=timeout,
                                  retries={"max_attempts": 2, "mode": "standard"}, use_fips_endpoint=fips or None)


# botocore's data loader (the parsed endpoint and service models), shared by the sessions of one process: a new
# session parses them again, 50-80 ms a fetch, which a resident agent (agent.py) fetching many times would pay each
# time. Keyed by what its search path is made of; the models are botocore's static data.
_LOADERS: dict[tuple[str, str], Any] = {}


def _botocore_session() -> Any:
    import os

    import botocore.loaders
    import botocore.session

    key = (os.environ.get("AWS_DATA_PATH", ""), os.environ.get("HOME", ""))
    if key not in _LOADERS:
        _LOADERS[key] = botocore.loaders.create_loader(key[0] or None)
    fresh = botocore.session.Session()
    fresh.register_component("data_loader", _LOADERS[key])
    return fresh


def session(boto3: Any, settings: Mapping[str, Any], secrets: Mapping[str, str], region: Optional[str], config: Any) -> Any:
    """A session with the registration's profile or static keys, then its role if it names one."""
    base = boto3.session.Session(
        botocore_session=_botocore_session(),
        profile_name=settings.get("profile"),
        region_name=region,
        aws_access_key_id=settings.get("access_key_id"),
        aws_secret_access_key=secrets.get("secret_access_key"),
    )
    if not settings.get("role_arn"):
        return base
    arguments = {"RoleArn": settings["role_arn"], "RoleSessionName": settings.get("role_session_name") or PROG}
    if settings.get("external_id"):
        arguments["ExternalId"] = settings["external_id"]
    assumed = base.client("sts", region_name=region, config=config).assume_role(**arguments)["Credentials"]
    return boto3.session.Session(
        botocore_session=_botocore_session(),
        aws_access_key_id=assumed["AccessKeyId"],
        aws_secret_access_key=assumed["SecretAccessKey"],
        aws_session_token=assumed["SessionToken"],
        region_name=region or base.region_name,
    )


def describe_error(botocore: Any, error: Exception, settings: Mapping[str, Any]) -> ProviderError:
    """One line for any boto3/botocore failure; never the request or its credentials."""
    if isinstance(error, botocore.exceptions.ClientError):
        info = error.response.get("Error", {})
        code = info.get("Code", "an error")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return ProviderError(f"AWS answered {code}: {short(info.get('Message', ''))}",
                             transient=isinstance(status, int) and (status >= 500 or status == 429))
    name = type(error).__name__
    if name == "NoCredentialsError":
        where = f"profile {settings['profile']!r}" if settings.get("profile") else \
            "the default chain (environment, shared config, SSO, web identity, instance metadata)"
        return ProviderError(f"no AWS credentials found in {where}; log in (aws sso login) or give the registration "
                             "--profile or keys")
    if name == "ProfileNotFound":
        return ProviderError(f"AWS profile {settings.get('profile')!r} is not in the shared config; check --profile or "
                             "AWS_CONFIG_FILE")
    if name == "NoRegionError":
        return ProviderError("no AWS region: give the registration --region or set AWS_REGION")
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"):
        return ProviderError(f"cannot reach the AWS endpoint ({name}); check the network, --endpoint-url or --timeout",
                             transient=True)
    return ProviderError(f"{name}: {short(str(error))}")


def short(text: str) -> str:
    return " ".join(text.split())[:200]


def identity_problem(settings: Mapping[str, Any], secrets: Mapping[str, str], env: Mapping[str, str]) -> Optional[str]:
    """For `doctor`: no AWS credentials for this registration's session, looked for without calling out (the
    instance metadata service is not asked; a role is assumed only at fetch time)."""
    if settings.get("access_key_id") and secrets.get("secret_access_key"):
        return None
    boto3, botocore = import_boto3("ecr")
    import os

    previous = os.environ.get("AWS_EC2_METADATA_DISABLED")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    try:
        found = boto3.session.Session(profile_name=settings.get("profile")).get_credentials()
    except botocore.exceptions.ProfileNotFound:
        return f"the AWS profile {settings.get('profile')!r} is not in the AWS config files"
    except botocore.exceptions.BotoCoreError as error:
        return f"the AWS credential chain fails: {str(error)[:160]}"
    finally:
        if previous is None:
            os.environ.pop("AWS_EC2_METADATA_DISABLED", None)
        else:
            os.environ["AWS_EC2_METADATA_DISABLED"] = previous
    if found is None:
        return ("no AWS credentials in the chain (environment, shared files, SSO, web identity; the instance "
                "metadata service was not asked)")
    return None
