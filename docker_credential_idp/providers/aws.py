"""What the AWS providers (ecr, aws-secret) share: their options, the credentials a fetch signs with, the endpoints,
one SigV4-signed JSON 1.1 call, and STS (AssumeRole, AssumeRoleWithWebIdentity). Not a provider itself.

No boto3 client is made: loading one (its service model and endpoint rules) costs more than the call it makes. The
calls are signed here with the standard library (`sign`, AWS Signature Version 4) and sent through the context's
transport. Credentials: the registration's static keys, an identity token exchanged with STS, or the environment's
keys need nothing more; every other source boto3 knows (profiles, SSO, credential_process, role profiles, web identity
from AWS_WEB_IDENTITY_TOKEN_FILE, container and instance metadata) comes from botocore's own credential chain,
imported inside the fetch that needs it (`chain_keys`)."""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

from .. import identity
from ..errors import PROG, InvalidInput, ProviderError
from .base import FetchContext, Option, import_sdk

SESSION_OPTIONS = (
    Option("profile", "AWS shared-config profile (SSO profiles too)"),
    Option("role-arn", "a role to assume first (with --oidc-token: the role the identity token is exchanged for)"),
    Option("external-id", "external id for --role-arn"),
    Option("role-session-name", f"session name for --role-arn (default {PROG}; with --oidc-token, the CI job or pod)"),
    Option("access-key-id", "static access key id (its secret through --secret-access-key-stdin/-env)"),
    Option("secret-access-key", "the secret access key", secret=True),
    *identity.OPTIONS,
)

# What the kubelet's request may carry for these types (KEP-4412's service-account annotations): the role an
# `--oidc-token kubelet` registration exchanges the pod's token for, as EKS names it for IRSA.
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
ANNOTATION_KEYS = {"role_arn": ROLE_ANNOTATION}
STS_AUDIENCE = "sts.amazonaws.com"
# AssumeRoleWithWebIdentity's DurationSeconds: STS's default, and within every role's maximum (1 h at least).
WEB_IDENTITY_SECONDS = 3600

# Every AWS partition's region names (botocore's partitions.json regionRegex): us-east-1, us-gov-west-1,
# cn-north-1, eu-isoe-west-1, eusc-de-east-1.
REGION = re.compile(r"[a-z]{2,4}(-[a-z]+){1,3}-\d{1,2}")
ROLE_ARN = re.compile(r"arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]+")
SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
# (partition, the prefix of its region names, DNS suffix), most specific first (botocore's partitions.json
# regionRegex, as prefixes: no regular expression to compile on the fetch path); any other region is in `aws`, as
# botocore says.
PARTITIONS = (
    ("aws-us-gov", "us-gov-", "amazonaws.com"),
    ("aws-iso-b", "us-isob-", "sc2s.sgov.gov"),
    ("aws-iso-f", "us-isof-", "csp.hci.ic.gov"),
    ("aws-iso", "us-iso-", "c2s.ic.gov"),
    ("aws-iso-e", "eu-isoe-", "cloud.adc-e.uk"),
    ("aws-eusc", "eusc-de-", "amazonaws.eu"),
    ("aws-cn", "cn-", "amazonaws.com.cn"),
)
# The service's name in AWS_ENDPOINT_URL_<NAME>, and its signing name.
SERVICES = {"ecr": ("ECR", "ecr"), "ecr-public": ("ECR_PUBLIC", "ecr-public"),
            "secretsmanager": ("SECRETS_MANAGER", "secretsmanager"), "sts": ("STS", "sts")}
# Error codes that mean "try again later" (botocore's standard retry mode), besides HTTP 429 and 5xx.
TRANSIENT_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "TransactionInProgressException", "RequestLimitExceeded",
    "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
    "EC2ThrottledException", "RequestTimeout", "RequestTimeoutException", "IDPCommunicationError",
})
# What STS answers when it will not take an identity token (or the role will not trust it).
TOKEN_REFUSALS = frozenset({"InvalidIdentityToken", "AccessDenied", "ExpiredToken", "ExpiredTokenException",
                            "IDPRejectedClaim", "InvalidParameterValue", "PackedPolicyTooLarge"})


def validate_session(settings: dict[str, Any], secrets: Mapping[str, str]) -> None:
    """The options both AWS types take: the region, the endpoint, the keys, the role, the identity token."""
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
    if settings.get("role_arn") and not ROLE_ARN.fullmatch(settings["role_arn"]):
        raise InvalidInput("--role-arn must look like arn:aws:iam::123456789012:role/NAME")
    if settings.get("role_session_name") and not SESSION_NAME.fullmatch(settings["role_session_name"]):
        raise InvalidInput("--role-session-name takes 2 to 64 letters, digits and +=,.@_-")
    source = settings.get("oidc_token")
    if settings.get("oidc_audience") and not source:
        raise InvalidInput("--oidc-audience goes with --oidc-token")
    if not source:
        return
    if settings.get("profile") or settings.get("access_key_id"):
        raise InvalidInput("--oidc-token exchanges an identity token for the role's keys: drop --profile and "
                           "--access-key-id (no AWS secret is stored)")
    if settings.get("external_id"):
        raise InvalidInput("--external-id is for a signed AssumeRole; AssumeRoleWithWebIdentity takes none: drop it")
    if not settings.get("role_arn") and source != identity.KUBELET:
        raise InvalidInput("--oidc-token needs --role-arn, the role whose trust policy accepts the token")


SDK = ("botocore", "boto3")  # what the credential chain needs (module, pip requirement); boto3 brings botocore


class Keys:
    """Signing credentials. Never printed: the repr shows the key id only."""

    __slots__ = ("access_key", "secret_key", "token")

    def __init__(self, access_key: str, secret_key: str, token: Optional[str] = None) -> None:
        self.access_key, self.secret_key, self.token = access_key, secret_key, token or None

    def __repr__(self) -> str:
        return f"Keys({self.access_key!r}, ...)"


# -- endpoints ------------------------------------------------------------------------------------------------------


def partition_suffix(region: str) -> tuple[str, str]:
    """(partition, DNS suffix) of a region."""
    for name, prefix, suffix in PARTITIONS:
        if region.startswith(prefix):
            return name, suffix
    return "aws", "amazonaws.com"


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() == "true"


def default_endpoint(service: str, region: str, fips: bool) -> str:
    """The regional endpoint, as botocore's endpoint rules give it (tests/test_aws_wire.py compares them)."""
    partition, suffix = partition_suffix(region)
    if service == "ecr":
        if fips and partition in ("aws", "aws-us-gov"):
            return f"https://ecr-fips.{region}.amazonaws.com"
        return f"https://api.ecr{'-fips' if fips else ''}.{region}.{suffix}"
    if service == "ecr-public":
        return f"https://api.ecr-public{'-fips' if fips else ''}.{region}.{suffix}"
    if service == "sts" and fips and partition == "aws-us-gov":
        return f"https://sts.{region}.{suffix}"  # GovCloud's STS is FIPS already
    return f"https://{service}{'-fips' if fips else ''}.{region}.{suffix}"


def endpoint(service: str, region: str, fips: bool, explicit: Optional[str], env: Mapping[str, str]) -> str:
    """Where a call goes: the registration's --endpoint-url (`explicit`), else AWS_ENDPOINT_URL_<SERVICE>, else
    AWS_ENDPOINT_URL (unless AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true), else the regional endpoint (FIPS with an
    ecr-fips host or AWS_USE_FIPS_ENDPOINT=true; dual-stack with AWS_USE_DUALSTACK_ENDPOINT=true, from botocore's
    endpoint rules). A URL from the environment passes the same rule as --endpoint-url."""
    if explicit:
        return explicit
    if not _flag(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        for name in (f"AWS_ENDPOINT_URL_{SERVICES[service][0]}", "AWS_ENDPOINT_URL"):
            if env.get(name, "").strip():
                from ..httpclient import check_endpoint

                try:
                    return check_endpoint(env[name], name)
                except InvalidInput as error:
                    raise ProviderError(error.message) from None
    fips = fips or _flag(env, "AWS_USE_FIPS_ENDPOINT")
    if _flag(env, "AWS_USE_DUALSTACK_ENDPOINT"):
        return _botocore_endpoint(service, region, fips)
    return default_endpoint(service, region, fips)


def _botocore_endpoint(service: str, region: str, fips: bool) -> str:
    """A dual-stack endpoint, from botocore's endpoint rules (the slow way: a client; only when asked for)."""
    _import_botocore()
    import botocore.config
    import botocore.session

    config = botocore.config.Config(use_fips_endpoint=fips, use_dualstack_endpoint=True)
    client = botocore.session.Session().create_client(service, region_name=region, aws_access_key_id="unused",
                                                      aws_secret_access_key="unused", config=config)
    return str(client.meta.endpoint_url)


# -- SigV4 and the wire ---------------------------------------------------------------------------------------------


def sign(method: str, url: str, headers: Mapping[str, str], body: bytes, keys: Keys, region: str, service: str,
         now: float) -> dict[str, str]:
    """`headers` plus Host, X-Amz-Date, X-Amz-Security-Token and the Authorization of AWS Signature Version 4, every
    header given being signed."""
    import hashlib
    import hmac
    import time
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    signed = {"host": parts.netloc, "x-amz-date": stamp, **{k.lower(): v for k, v in headers.items()}}
    if keys.token:
        signed["x-amz-security-token"] = keys.token
    names = sorted(signed)
    canonical_headers = "".join(f"{name}:{' '.join(str(signed[name]).split())}\n" for name in names)
    query = "&".join(sorted(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                            for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)))
    canonical_request = "\n".join([method, urllib.parse.quote(parts.path or "/", safe="/~"), query, canonical_headers,
                                   ";".join(names), hashlib.sha256(body).hexdigest()])
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = ("AWS4" + keys.secret_key).encode()
    for part in (stamp[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    answer = {"Host": parts.netloc, "X-Amz-Date": stamp, **headers}
    if keys.token:
        answer["X-Amz-Security-Token"] = keys.token
    answer["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={keys.access_key}/{scope}, "
                               f"SignedHeaders={';'.join(names)}, Signature={signature}")
    return answer


def transport_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """TLS for AWS endpoints: the system's trust store, plus AWS_CA_BUNDLE as botocore reads it."""
    bundle = env.get("AWS_CA_BUNDLE", "").strip()
    return {"ca_file": bundle} if bundle else {}


def _exchange(context: FetchContext, url: str, body: bytes, headers: Mapping[str, str],
              keys: Optional[Keys], region: str, service: str) -> tuple[int, Any, bytes]:
    """One POST (signed when `keys` are given), tried twice when the first attempt meets a refused or broken
    connection, HTTP 429/5xx or a throttling code, as botocore's standard retry mode would; never twice past a
    timeout. OSError means no answer."""
    from ..httpclient import Request

    for attempt in (1, 2):
        sent = sign("POST", url, headers, body, keys, region, service, context.now()) if keys else dict(headers)
        try:
            status, answer_headers, answer = context.transport(Request(url, data=body, headers=sent, method="POST"),
                                                               transport_settings(context.env), context.timeout)
        except OSError as error:
            if attempt == 2 or _timed_out(error):
                raise
            context.sleep(0.5)
            continue
        if attempt == 1 and (status in (429, 500, 502, 503, 504) or
                             status >= 400 and _error_code(answer_headers, answer) in TRANSIENT_CODES):
            context.sleep(0.5)
            continue
        return status, answer_headers, answer
    raise AssertionError("unreachable")


def _timed_out(error: BaseException) -> bool:
    reason = getattr(error, "reason", error)
    return isinstance(reason, TimeoutError) or "timed out" in str(reason)


def unreachable(url: str, error: OSError) -> ProviderError:
    from ..httpclient import network_reason, origin

    return ProviderError(f"cannot reach the AWS endpoint {origin(url)} ({network_reason(error)}); check the network, "
                         "--endpoint-url or --timeout", transient=True)


def call_json(context: FetchContext, service: str, region: str, url: str, target: str, payload: Mapping[str, Any],
              keys: Keys) -> dict[str, Any]:
    """One AWS JSON 1.1 call (X-Amz-Target: `target`), signed for `service` in `region`; its answer, or a
    ProviderError in the words describe_error uses."""
    import json

    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target}
    try:
        status, answer_headers, answer = _exchange(context, url, body, headers, keys, region, SERVICES[service][1])
    except OSError as error:
        raise unreachable(url, error) from None
    if status != 200:
        raise answered(status, _error_code(answer_headers, answer), _error_message(answer))
    try:
        document = json.loads(answer.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        document = None
    if not isinstance(document, dict):
        raise ProviderError(f"AWS answered {target.rpartition('.')[2]} with something that is not a JSON object",
                            transient=True)
    return document


def answered(status: int, code: str, message: str) -> ProviderError:
    """An error answer in one line: its code and message, transient for throttling, 429 and 5xx."""
    return ProviderError(f"AWS answered {code or f'HTTP {status}'}: {short(message)}".rstrip(": "),
                         transient=status >= 500 or status == 429 or code in TRANSIENT_CODES)


def _header(headers: Any, name: str) -> str:
    if headers is None:
        return ""
    value = headers.get(name) or (headers.get(name.lower()) if isinstance(headers, dict) else None)
    return str(value or "")


def _error_code(headers: Any, body: bytes) -> str:
    """The error code of a JSON 1.x answer (its __type, or x-amzn-ErrorType) or of a query answer (<Code>)."""
    text = body[:65536].decode("utf-8", "replace").strip()
    if text.startswith("<"):
        return _xml_fields(text, ("Code",)).get("Code", "")
    document = _json_object(text)
    code = str(document.get("__type") or document.get("code") or _header(headers, "x-amzn-ErrorType"))
    return code.split(":")[0].rpartition("#")[2]


def _error_message(body: bytes) -> str:
    text = body[:65536].decode("utf-8", "replace").strip()
    if text.startswith("<"):
        return _xml_fields(text, ("Message",)).get("Message", "")
    document = _json_object(text)
    return str(document.get("message") or document.get("Message") or "")


def _json_object(text: str) -> dict[str, Any]:
    import json

    try:
        document = json.loads(text)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _xml_fields(text: str, names: tuple[str, ...]) -> dict[str, str]:
    """The first element of each name (any namespace) in an XML answer; {} when it is not XML."""
    import xml.etree.ElementTree as ElementTree

    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return {}
    found: dict[str, str] = {}
    for element in root.iter():
        name = element.tag.rpartition("}")[2]
        if name in names and name not in found:
            found[name] = (element.text or "").strip()
    return found


def short(text: str) -> str:
    return " ".join(text.split())[:200]


# -- credentials ----------------------------------------------------------------------------------------------------


def credentials(type_name: str, settings: Mapping[str, Any], secrets: Mapping[str, str], region: str, fips: bool,
                context: FetchContext) -> Keys:
    """The keys a fetch signs with: the identity token exchanged (--oidc-token), else the base keys (static, the
    environment's, or botocore's chain for --profile and every other source), then --role-arn assumed with them."""
    if settings.get("oidc_token"):
        return web_identity(settings, region, fips, context)
    if settings.get("access_key_id") and secrets.get("secret_access_key"):
        base = Keys(settings["access_key_id"], secrets["secret_access_key"])
    else:
        base = environment_keys(settings, context.env) or chain_keys(type_name, settings)
    if not settings.get("role_arn"):
        return base
    return assume_role(settings, base, region, fips, context)


def environment_keys(settings: Mapping[str, Any], env: Mapping[str, str]) -> Optional[Keys]:
    """The first link of botocore's chain, read as its EnvProvider reads it: AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY, with AWS_SECURITY_TOKEN or AWS_SESSION_TOKEN. Skipped for --profile (botocore skips it for
    an explicit profile), and when either key is missing (botocore then names what is missing)."""
    if settings.get("profile"):
        return None
    access_key, secret_key = env.get("AWS_ACCESS_KEY_ID", ""), env.get("AWS_SECRET_ACCESS_KEY", "")
    if not access_key or not secret_key:
        return None
    token = env.get("AWS_SECURITY_TOKEN") or env.get("AWS_SESSION_TOKEN")
    return Keys(access_key, secret_key, token)


def _import_botocore(type_name: str = "ecr") -> None:
    import_sdk(type_name, *SDK)  # ProviderUnavailable naming the install line when botocore is missing


def chain_keys(type_name: str, settings: Mapping[str, Any]) -> Keys:
    """botocore's credential chain for the registration's --profile (or the default one): shared files, SSO,
    credential_process, role profiles, web identity, container and instance metadata. No boto3 and no client of
    ours: botocore makes the clients a source needs (SSO, STS) itself."""
    _import_botocore(type_name)
    import botocore.exceptions
    import botocore.session

    try:
        found = botocore.session.Session(profile=settings.get("profile")).get_credentials()
        frozen = found.get_frozen_credentials() if found is not None else None
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        raise describe_error(botocore, error, settings) from None
    if frozen is None or not frozen.access_key or not frozen.secret_key:
        raise describe_error(botocore, botocore.exceptions.NoCredentialsError(), settings)
    return Keys(frozen.access_key, frozen.secret_key, frozen.token)


def config_region(type_name: str, settings: Mapping[str, Any], env: Mapping[str, str]) -> Optional[str]:
    """The region when the registration does not say: AWS_REGION, AWS_DEFAULT_REGION, else the profile's (read by
    botocore, as boto3 reads it)."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if env.get(name, "").strip():
            return env[name].strip()
    _import_botocore(type_name)
    import botocore.exceptions
    import botocore.session

    try:
        region = botocore.session.Session(profile=settings.get("profile")).get_config_variable("region")
    except botocore.exceptions.BotoCoreError as error:
        raise describe_error(botocore, error, settings) from None
    return str(region) if region else None


def _sts(context: FetchContext, region: str, fips: bool, fields: Mapping[str, str], keys: Optional[Keys]) -> tuple[
        int, dict[str, str], str]:
    """One STS query-protocol call; (status, the answer's credential or error fields, the endpoint)."""
    import urllib.parse

    url = endpoint("sts", region, fips, None, context.env)
    body = urllib.parse.urlencode({**fields, "Version": "2011-06-15"}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    try:
        status, _, answer = _exchange(context, url, body, headers, keys, region, "sts")
    except OSError as error:
        raise unreachable(url, error) from None
    names = ("AccessKeyId", "SecretAccessKey", "SessionToken") if status == 200 else ("Code", "Message")
    return status, _xml_fields(answer[:1024 * 1024].decode("utf-8", "replace"), names), url


def _keys_from(fields: Mapping[str, str], action: str) -> Keys:
    if not (fields.get("AccessKeyId") and fields.get("SecretAccessKey") and fields.get("SessionToken")):
        raise ProviderError(f"STS answered {action} without credentials", transient=True)
    return Keys(fields["AccessKeyId"], fields["SecretAccessKey"], fields["SessionToken"])


def assume_role(settings: Mapping[str, Any], base: Keys, region: str, fips: bool, context: FetchContext) -> Keys:
    """--role-arn: a signed AssumeRole with the base keys."""
    fields = {"Action": "AssumeRole", "RoleArn": settings["role_arn"],
              "RoleSessionName": settings.get("role_session_name") or PROG}
    if settings.get("external_id"):
        fields["ExternalId"] = settings["external_id"]
    status, answer, _ = _sts(context, region, fips, fields, base)
    if status != 200:
        raise answered(status, answer.get("Code", ""), answer.get("Message", ""))
    return _keys_from(answer, "AssumeRole")


def role_for(settings: Mapping[str, Any]) -> str:
    """The role an identity token is exchanged for: --role-arn, which in kubelet mode the pod's service account's
    eks.amazonaws.com/role-arn annotation has already replaced (fetching.annotated: one rule for every type)."""
    role = settings.get("role_arn")
    if not role:
        raise ProviderError(f"no role to exchange the pod's token for: annotate its service account with "
                            f"{ROLE_ANNOTATION} or give the registration --role-arn")
    return str(role)


def web_identity(settings: Mapping[str, Any], region: str, fips: bool, context: FetchContext) -> Keys:
    """--oidc-token: a fresh identity token exchanged by STS AssumeRoleWithWebIdentity (unsigned) for the role's
    temporary keys. The session name is the CI job's or the pod's, so that CloudTrail names who pulled."""
    role = role_for(settings)
    source = settings["oidc_token"]
    token = identity.obtain(source, settings.get("oidc_audience") or STS_AUDIENCE, context)
    name = settings.get("role_session_name") or identity.job_name(context.env, identity.claims(token))
    fields = {"Action": "AssumeRoleWithWebIdentity", "RoleArn": role, "RoleSessionName": name,
              "WebIdentityToken": token, "DurationSeconds": str(WEB_IDENTITY_SECONDS)}
    status, answer, _ = _sts(context, region, fips, fields, None)
    if status == 200:
        return _keys_from(answer, "AssumeRoleWithWebIdentity")
    code = answer.get("Code", "")
    message = short(answer.get("Message", "").replace(token, "<token>"))
    transient = status >= 500 or status == 429 or code in TRANSIENT_CODES
    if code in TOKEN_REFUSALS or not transient:
        raise ProviderError(f"STS refused the identity token from {identity.describe(source)} for role {role}: "
                            f"{code or f'HTTP {status}'}{': ' + message if message else ''}; check the role's trust "
                            "policy (issuer, audience, subject) and --oidc-audience")
    raise ProviderError(f"STS did not exchange the identity token for role {role}: {code or f'HTTP {status}'}",
                        transient=True)


# -- errors ---------------------------------------------------------------------------------------------------------


def describe_error(botocore: Any, error: Exception, settings: Mapping[str, Any]) -> ProviderError:
    """One line for a botocore failure (the credential chain's); never the request or its credentials."""
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
                             "--profile, keys or --oidc-token with --role-arn")
    if name == "ProfileNotFound":
        return ProviderError(f"AWS profile {settings.get('profile')!r} is not in the shared config; check --profile or "
                             "AWS_CONFIG_FILE")
    if name == "NoRegionError":
        return ProviderError("no AWS region: give the registration --region or set AWS_REGION")
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"):
        return ProviderError(f"cannot reach the AWS endpoint ({name}); check the network, --endpoint-url or --timeout",
                             transient=True)
    return ProviderError(f"{name}: {short(str(error))}")


def identity_problem(settings: Mapping[str, Any], secrets: Mapping[str, str], env: Mapping[str, str]) -> Optional[str]:
    """For `doctor`: no AWS credentials for this registration's session, looked for without calling out (the
    instance metadata service is not asked; a role is assumed only at fetch time)."""
    if settings.get("access_key_id") and secrets.get("secret_access_key") or settings.get("oidc_token"):
        return None
    if environment_keys(settings, env):
        return None
    _import_botocore()
    import os

    import botocore.exceptions
    import botocore.session

    previous = os.environ.get("AWS_EC2_METADATA_DISABLED")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    try:
        found = botocore.session.Session(profile=settings.get("profile")).get_credentials()
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
