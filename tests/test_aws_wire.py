"""The AWS providers speak the wire themselves (providers/aws.py): endpoints as botocore's endpoint rules give them,
Signature Version 4 as botocore's signer computes it, JSON 1.1 and STS query answers and errors read in one line
(transient for throttling, 429 and 5xx, retried once), and no SDK loaded for static or environment keys. Checked
against botocore itself, a scripted transport (tests/test_provider_rules.py's) and stand-ins that verify
signatures."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.error

import pytest

from docker_credential_idp.errors import ProviderError
from docker_credential_idp.model import Registration, Secrets
from docker_credential_idp.providers import aws, get_provider
from docker_credential_idp.providers.base import FetchContext

from .aws_standins import checked_ecr_api
from .conftest import call_helper
from .test_provider_rules import NOW, ScriptedTransport

ECR_HOST = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
KEY_ID, SECRET = "AKIAIOSFODNN7EXAMPLE", "wire-secret-access-key-31"
REGIONS = ("eu-west-1", "us-east-1", "us-gov-west-1", "cn-north-1", "cn-northwest-1", "us-iso-east-1",
           "us-isob-east-1", "eu-isoe-west-1", "us-isof-south-1", "eusc-de-east-1", "ap-southeast-5", "mx-central-1")


@pytest.mark.parametrize("service", ["ecr", "ecr-public", "secretsmanager", "sts"])
def test_endpoints_are_botocores(service):
    import botocore.config
    import botocore.session

    session = botocore.session.Session()
    for region in REGIONS:
        for fips in (False, True):
            client = session.create_client(service, region_name=region, aws_access_key_id="a",
                                           aws_secret_access_key="b",
                                           config=botocore.config.Config(use_fips_endpoint=fips))
            assert aws.default_endpoint(service, region, fips) == client.meta.endpoint_url, (region, fips)


def test_endpoint_precedence():
    env = {"AWS_ENDPOINT_URL_ECR": "https://ecr.internal.example", "AWS_ENDPOINT_URL": "https://all.internal.example"}
    assert aws.endpoint("ecr", "eu-west-1", False, "https://given.example", env) == "https://given.example"
    assert aws.endpoint("ecr", "eu-west-1", False, None, env) == "https://ecr.internal.example"
    assert aws.endpoint("sts", "eu-west-1", False, None, env) == "https://all.internal.example"
    assert aws.endpoint("sts", "eu-west-1", False, None, {**env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}) == \
        "https://sts.eu-west-1.amazonaws.com"
    assert aws.endpoint("secretsmanager", "us-east-1", False, None, {"AWS_USE_FIPS_ENDPOINT": "true"}) == \
        "https://secretsmanager-fips.us-east-1.amazonaws.com"
    with pytest.raises(ProviderError) as raised:
        aws.endpoint("sts", "eu-west-1", False, None, {"AWS_ENDPOINT_URL_STS": "http://sts.example.com"})
    assert "AWS_ENDPOINT_URL_STS must be https" in raised.value.message and "sts.example.com" not in raised.value.message


def test_dual_stack_endpoints_come_from_botocores_rules():
    assert aws.endpoint("ecr", "eu-west-1", False, None, {"AWS_USE_DUALSTACK_ENDPOINT": "true"}) == \
        "https://ecr.eu-west-1.api.aws"


@pytest.mark.parametrize("token", [None, "session-token-for-signing"])
@pytest.mark.parametrize("url", ["https://api.ecr.eu-west-1.amazonaws.com", "http://127.0.0.1:8123/"])
def test_signatures_are_botocores(token, url):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = b'{"registryIds": ["123456789012"]}'
    headers = {"Content-Type": "application/x-amz-json-1.1",
               "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"}
    ours = aws.sign("POST", url, headers, body, aws.Keys(KEY_ID, SECRET, token), "eu-west-1", "ecr", NOW)
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    request.context["timestamp"] = ours["X-Amz-Date"]
    signer = SigV4Auth(Credentials(KEY_ID, SECRET, token), "ecr", "eu-west-1")
    if token:
        request.headers["X-Amz-Security-Token"] = token
    request.headers["X-Amz-Date"] = ours["X-Amz-Date"]
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    assert ours["Authorization"].endswith(f"Signature={expected}")
    assert ours["X-Amz-Date"] == "20270115T080000Z" and ours.get("X-Amz-Security-Token") == token


def ecr_registration(**settings) -> Registration:
    secrets = Secrets({"secret_access_key": settings.pop("secret", SECRET)})
    return Registration("e", ECR_HOST, "ecr", {"access_key_id": KEY_ID, **settings}, secrets)


def test_a_signed_fetch_reaches_an_endpoint_that_checks_signatures():
    server = checked_ecr_api("checked-password", lambda key: (SECRET, None) if key == KEY_ID else None)
    try:
        context = FetchContext(host=ECR_HOST, timeout=5)
        credential = get_provider("ecr").fetch(ecr_registration(endpoint_url=server.url), context)
        assert (credential.username, credential.secret) == ("AWS", "checked-password")
        assert credential.expires_at and credential.expires_at > time.time() + 40000
        with pytest.raises(ProviderError) as raised:
            get_provider("ecr").fetch(ecr_registration(endpoint_url=server.url, secret="wrong-secret-key"), context)
        assert raised.value.message.startswith("AWS answered InvalidSignatureException: signature does not match")
        assert not raised.value.transient and server.refusals == ["signature does not match"]
    finally:
        server.stop()


def token_answer(password: str = "pw", expires: float = NOW + 43200, public: bool = False):
    data = {"authorizationToken": base64.b64encode(f"AWS:{password}".encode()).decode(), "expiresAt": expires}
    return 200, {"authorizationData": data if public else [data]}


def fetch(registration: Registration, *answers, host: str = ECR_HOST, env=None):
    transport = ScriptedTransport(*answers)
    pauses: list[float] = []
    context = FetchContext(host=host, env=env or {}, timeout=5, now=lambda: NOW, transport=transport,
                           sleep=pauses.append)
    return get_provider(registration.type).fetch(registration, context), transport, pauses


def test_what_an_ecr_fetch_sends():
    credential, transport, _ = fetch(ecr_registration(), token_answer("p1"))
    assert (credential.secret, credential.expires_at) == ("p1", NOW + 43200)
    [request] = transport.requests
    assert request.full_url == "https://api.ecr.eu-west-1.amazonaws.com" and request.get_method() == "POST"
    assert json.loads(request.data) == {"registryIds": ["123456789012"]}
    assert request.get_header("X-amz-target") == "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"
    assert f"Credential={KEY_ID}/20270115/eu-west-1/ecr/aws4_request" in request.get_header("Authorization")
    assert SECRET not in str(request.headers) + request.data.decode()


@pytest.mark.parametrize("host, url", [
    ("public.ecr.aws", "https://api.ecr-public.us-east-1.amazonaws.com"),
    ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "https://api.ecr.cn-north-1.amazonaws.com.cn"),
    ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", "https://ecr-fips.us-gov-west-1.amazonaws.com"),
    ("123456789012.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk", "https://api.ecr.eu-isoe-west-1.cloud.adc-e.uk"),
])
def test_hosts_of_every_partition(host, url):
    registration = Registration("e", host, "ecr", {"access_key_id": KEY_ID}, Secrets({"secret_access_key": SECRET}))
    credential, transport, _ = fetch(registration, token_answer("p2", public=host == "public.ecr.aws"), host=host)
    assert credential.secret == "p2" and transport.requests[0].full_url == url
    if host == "public.ecr.aws":
        assert transport.requests[0].get_header("X-amz-target") == "SpencerFrontendService.GetAuthorizationToken"
        assert "/us-east-1/ecr-public/aws4_request" in transport.requests[0].get_header("Authorization")


def test_environment_keys_sign_with_their_session_token():
    env = {"AWS_ACCESS_KEY_ID": "ASIAENVIRONMENTKEY01", "AWS_SECRET_ACCESS_KEY": "env-secret",
           "AWS_SESSION_TOKEN": "env-session-token-8f"}
    registration = Registration("e", ECR_HOST, "ecr", {}, Secrets({}))
    _, transport, _ = fetch(registration, token_answer(), env=env)
    request = transport.requests[0]
    assert request.get_header("X-amz-security-token") == "env-session-token-8f"
    assert "Credential=ASIAENVIRONMENTKEY01/" in request.get_header("Authorization")


@pytest.mark.parametrize("answers, transient, fragment, calls", [
    ([(503, {"__type": "ServiceUnavailableException", "message": "busy"}), token_answer()], None, "", 2),
    ([(503, {"__type": "ServiceUnavailableException", "message": "busy"})] * 2, True,
     "AWS answered ServiceUnavailableException: busy", 2),
    ([(400, {"__type": "com.amazonaws#ThrottlingException", "message": "slow down"})] * 2, True,
     "AWS answered ThrottlingException: slow down", 2),
    ([(403, {"message": "no"}, {"x-amzn-ErrorType": "AccessDeniedException:http://internal/"})], False,
     "AWS answered AccessDeniedException: no", 1),
    ([(400, {"__type": "UnrecognizedClientException", "message": "The security token included in the request is "
                                                                 "invalid."})], False,
     "AWS answered UnrecognizedClientException", 1),
    ([urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))] * 2, True,
     "cannot reach the AWS endpoint https://api.ecr.eu-west-1.amazonaws.com:443 (Connection refused)", 2),
    ([urllib.error.URLError(TimeoutError("timed out"))], True, "(timed out)", 1),
    ([(200, b"<html>captive portal</html>")], True, "not a JSON object", 1),
])
def test_answers_and_failures(answers, transient, fragment, calls):
    registration = ecr_registration()
    transport = ScriptedTransport(*answers)
    pauses: list[float] = []
    context = FetchContext(host=ECR_HOST, timeout=5, now=lambda: NOW, transport=transport, sleep=pauses.append)
    if transient is None:
        assert get_provider("ecr").fetch(registration, context).secret == "pw"
    else:
        with pytest.raises(ProviderError) as raised:
            get_provider("ecr").fetch(registration, context)
        assert raised.value.transient is transient and fragment in raised.value.message, raised.value.message
    assert len(transport.requests) == calls and len(pauses) == calls - 1


def test_a_role_is_assumed_with_a_signed_sts_call():
    assumed = ("<AssumeRoleResponse xmlns='https://sts.amazonaws.com/doc/2011-06-15/'><AssumeRoleResult><Credentials>"
               "<AccessKeyId>ASIAASSUMEDROLEKEY01</AccessKeyId><SecretAccessKey>assumed-secret</SecretAccessKey>"
               "<SessionToken>assumed-session-token</SessionToken><Expiration>2027-01-15T09:00:00Z</Expiration>"
               "</Credentials></AssumeRoleResult></AssumeRoleResponse>").encode()
    registration = ecr_registration(role_arn="arn:aws:iam::123456789012:role/pull", external_id="ext-1")
    _, transport, _ = fetch(registration, (200, assumed), token_answer())
    sts, ecr = transport.requests
    assert sts.full_url == "https://sts.eu-west-1.amazonaws.com"
    assert dict(p.split("=", 1) for p in sts.data.decode().split("&")) == {
        "Action": "AssumeRole", "RoleArn": "arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fpull",
        "RoleSessionName": "docker-credential-idp", "ExternalId": "ext-1", "Version": "2011-06-15"}
    assert f"Credential={KEY_ID}/20270115/eu-west-1/sts/aws4_request" in sts.get_header("Authorization")
    assert "Credential=ASIAASSUMEDROLEKEY01/" in ecr.get_header("Authorization")
    assert ecr.get_header("X-amz-security-token") == "assumed-session-token"


def test_an_sts_refusal_of_assume_role_is_one_line():
    refused = (b"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User is not authorized to"
               b" perform: sts:AssumeRole</Message></Error></ErrorResponse>")
    registration = ecr_registration(role_arn="arn:aws:iam::123456789012:role/pull")
    with pytest.raises(ProviderError) as raised:
        fetch(registration, (403, refused))
    assert raised.value.message == "AWS answered AccessDenied: User is not authorized to perform: sts:AssumeRole"
    assert not raised.value.transient


def test_a_secret_read_sends_its_id_and_stage():
    registration = Registration("s", "fleet.example.com", "aws-secret",
                                {"secret_id": "arn:aws:secretsmanager:us-gov-west-1:123456789012:secret:ci-AbCdEf",
                                 "version_stage": "AWSPREVIOUS", "access_key_id": KEY_ID},
                                Secrets({"secret_access_key": SECRET}))
    credential, transport, _ = fetch(registration, (200, {"SecretString": "robot:sm-password"}),
                                     env={"AWS_USE_FIPS_ENDPOINT": "true"})
    assert (credential.username, credential.secret) == ("robot", "sm-password")
    [request] = transport.requests
    assert request.full_url == "https://secretsmanager-fips.us-gov-west-1.amazonaws.com"
    assert request.get_header("X-amz-target") == "secretsmanager.GetSecretValue"
    assert json.loads(request.data) == {"SecretId": registration.settings["secret_id"], "VersionStage": "AWSPREVIOUS"}
    with pytest.raises(ProviderError, match="does not exist in that account and region"):
        fetch(registration, (400, {"__type": "ResourceNotFoundException", "message": "not found"}))


def test_aws_ca_bundle_is_the_transports_ca_file():
    _, transport, _ = fetch(ecr_registration(), token_answer(), env={"AWS_CA_BUNDLE": "/etc/corp-ca.pem"})
    assert transport.settings == [{"ca_file": "/etc/corp-ca.pem"}]


def test_static_and_environment_keys_load_no_sdk():
    """The cold path's cost: neither boto3 nor botocore for a registration with keys (or keys in the environment)."""
    code = """if True:
        import base64, json, sys
        from docker_credential_idp.model import Registration, Secrets
        from docker_credential_idp.providers import get_provider
        from docker_credential_idp.providers.base import FetchContext
        data = {"authorizationToken": base64.b64encode(b"AWS:pw").decode(), "expiresAt": 4102444800}
        def transport(request, settings, timeout):
            public = "ecr-public" in request.full_url
            return 200, {}, json.dumps({"authorizationData": data if public else [data]}).encode()
        env = {"AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "s"}
        static = Registration("e", "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "ecr", {"access_key_id": "AKIA"},
                              Secrets({"secret_access_key": "s"}))
        for registration in (static, Registration("e", "public.ecr.aws", "ecr", {}, Secrets({}))):
            context = FetchContext(host=registration.host, env=env, transport=transport)
            assert get_provider("ecr").fetch(registration, context).secret == "pw"
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore", "s3transfer")))
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_profile_comes_from_botocores_chain(tmp_path, isolated_env):
    """--profile: botocore's chain (here a credential_process profile) gives the keys; the endpoint checks the
    signature they make."""
    answer = json.dumps({"Version": 1, "AccessKeyId": "AKIAPROCESSKEY000001", "SecretAccessKey": "process-secret",
                         "SessionToken": "process-session-token"})
    process = tmp_path / "credential-process.sh"
    process.write_text(f"#!/bin/sh\necho '{answer}'\n")
    process.chmod(0o700)
    config = tmp_path / "aws-config"
    config.write_text(f"[profile ci]\ncredential_process = {process}\n")
    known = {"AKIAPROCESSKEY000001": ("process-secret", "process-session-token")}
    server = checked_ecr_api("profile-password", known.get)
    try:
        env = {"AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
        assert call_helper("registry", "add", "p", "--prefix", ECR_HOST, "--type", "ecr", "--profile", "ci",
                           "--endpoint-url", server.url, env=env).code == 0
        got = call_helper("get", stdin=ECR_HOST, env=env)
        assert got.code == 0, (got, server.refusals)
        assert json.loads(got.out)["Secret"] == "profile-password"
        missing = call_helper("registry", "add", "q", "--prefix", "210987654321.dkr.ecr.eu-west-1.amazonaws.com",
                              "--type", "ecr", "--profile", "ghost", "--endpoint-url", server.url, env=env)
        assert missing.code == 0
        failed = call_helper("get", stdin="210987654321.dkr.ecr.eu-west-1.amazonaws.com", env=env)
        assert failed.code == 1 and "AWS profile 'ghost' is not in the shared config" in failed.out
    finally:
        server.stop()


def test_partitions_are_botocores():
    """Every region botocore knows, and its partition's DNS suffix."""
    import os

    import botocore

    with open(os.path.join(os.path.dirname(botocore.__file__), "data", "partitions.json")) as file:
        partitions = json.load(file)["partitions"]
    checked = 0
    for partition in partitions:
        for region in partition["regions"]:
            if region.endswith("-global"):
                continue
            assert aws.partition_suffix(region) == (partition["id"], partition["outputs"]["dnsSuffix"]), region
            checked += 1
    assert checked > 30
