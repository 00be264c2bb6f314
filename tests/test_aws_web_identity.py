"""`--type ecr|aws-secret --role-arn ARN --oidc-token SOURCE`: no AWS secret stored. Each fetch obtains a fresh identity
token, exchanges it with STS AssumeRoleWithWebIdentity (moto's, behind a stand-in that verifies the token's signature,
audience and expiry as STS does, and the session name) and signs the ECR or Secrets Manager call with the temporary
keys (an ECR stand-in verifies the signature with botocore's signer). Sources: GitHub Actions' token endpoint, env:VAR,
file:/PATH, and the kubelet's token with the role from the service account's annotation."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from docker_credential_idp import fetching
from docker_credential_idp.errors import InvalidInput, ProviderError
from docker_credential_idp.model import Registration, Secrets
from docker_credential_idp.providers import get_provider
from docker_credential_idp.providers.base import FetchContext

from .aws_standins import StsWebIdentity, checked_ecr_api
from .conftest import assert_one_line_error, call_helper
from .oidc import Issuer, github_env, github_token_endpoint
from .setups import put_secret

ECR_HOST = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
ROLE = "arn:aws:iam::123456789012:role/ci-pull"
POD_ROLE = "arn:aws:iam::123456789012:role/pod-pull"
REQUEST_TOKEN = "gha-request-token-5be1"
PASSWORD = "ecr-password-from-web-identity"


class Stack:
    def __init__(self, moto_url: str, expect_session=None) -> None:
        self.issuer = Issuer()
        self.sts = StsWebIdentity(self.issuer, moto_url, expect_session=expect_session)
        self.github = github_token_endpoint(self.issuer, REQUEST_TOKEN)
        self.ecr = checked_ecr_api(PASSWORD, self.secret_for)

    def secret_for(self, key_id: str):
        return self.sts.issued.get(key_id)

    def env(self, **extra: str) -> dict[str, str]:
        return {**github_env(self.github, REQUEST_TOKEN), "AWS_ENDPOINT_URL_STS": self.sts.url, **extra}

    def secrets(self) -> list[str]:
        return [*self.issuer.minted, *self.sts.session_tokens(), *(s for s, _ in self.sts.issued.values())]

    def stop(self) -> None:
        for server in (self.sts, self.github, self.ecr):
            server.stop()


@pytest.fixture
def stack(moto_url):
    stack = Stack(moto_url)
    yield stack
    stack.stop()


def add(*args: str, env=None) -> None:
    result = call_helper("registry", "add", *args, env=env)
    assert result.code == 0, result


def assert_nowhere(secrets: list[str], outputs: list[str], home: str) -> None:
    """The JWTs and the STS keys: in no output and in no file of the home, in clear."""
    assert secrets
    files = [p for p in Path(home).rglob("*") if p.is_file()]
    for secret in secrets:
        assert all(secret not in text for text in outputs)
        for path in files:
            assert secret.encode() not in path.read_bytes(), path


def test_github_actions_token_is_exchanged_afresh_on_each_fetch(stack, isolated_env, monkeypatch):
    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)
    add("ci", "--prefix", ECR_HOST, "--type", "ecr", "--role-arn", ROLE, "--oidc-token", "github-actions",
        "--endpoint-url", stack.ecr.url)
    first = call_helper("get", stdin=ECR_HOST)
    assert first.code == 0, (first, stack.ecr.refusals)
    assert json.loads(first.out) == {"ServerURL": ECR_HOST, "Username": "AWS", "Secret": PASSWORD}
    # The token was minted for STS's audience, verified by the stand-in, and named the job in the session name.
    assert stack.github.count("/_apis/token") == 1 and "audience=sts.amazonaws.com" in stack.github.calls[0][1]
    [exchange] = stack.sts.received
    assert exchange["RoleArn"] == ROLE and exchange["RoleSessionName"] == "gha-4242-1-example-app"
    assert exchange["DurationSeconds"] == "3600" and exchange["WebIdentityToken"] == stack.issuer.minted[0]
    assert stack.ecr.refusals == [] and stack.ecr.count() == 1  # signed with the temporary keys moto issued
    assert call_helper("get", stdin=ECR_HOST).code == 0  # a cache hit: no token, no exchange
    assert stack.github.count("/_apis/token") == 1 and len(stack.sts.received) == 1
    assert call_helper("cache", "clear").code == 0
    again = call_helper("get", stdin=ECR_HOST)
    assert again.code == 0, again
    assert stack.github.count("/_apis/token") == 2 and len(stack.issuer.minted) == 2
    assert stack.sts.received[1]["WebIdentityToken"] == stack.issuer.minted[1]
    shown = [call_helper(*argv) for argv in (("registry", "show", "ci", "--json"), ("registry", "list"), ("list",))]
    assert "oidc_token" in shown[0].out and "github-actions" in shown[0].out
    assert_nowhere(stack.secrets(), [r.out + r.err for r in shown] + [first.err, again.err],
                   isolated_env["DOCKER_CREDENTIAL_IDP_HOME"])


def test_an_env_token_for_aws_secret(stack, moto_url, isolated_env, monkeypatch):
    """GitLab's id_tokens: the token in a variable, the pipeline and job in the session name; Secrets Manager read
    with the exchanged keys."""
    put_secret(moto_url, "web-identity/registry", json.dumps({"username": "wi-robot", "password": "wi-sm-pw-77"}))
    token = stack.issuer.mint("sts.amazonaws.com", subject="project_path:group/app:ref_type:branch:ref:main")
    env = {"AWS_ENDPOINT_URL_STS": stack.sts.url, "GITLAB_ID_TOKEN": token, "CI_PIPELINE_ID": "981",
           "CI_JOB_ID": "5521", "CI_PROJECT_PATH": "group/app"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    add("sm", "--prefix", "fleet.example.com", "--type", "aws-secret", "--secret-id", "web-identity/registry",
        "--region", "eu-west-1", "--endpoint-url", moto_url, "--role-arn", ROLE, "--oidc-token", "env:GITLAB_ID_TOKEN")
    got = call_helper("get", stdin="fleet.example.com")
    assert got.code == 0, got
    assert json.loads(got.out)["Secret"] == "wi-sm-pw-77"
    assert stack.sts.received[0]["RoleSessionName"] == "gitlab-981-5521-group-app"
    assert_nowhere(stack.secrets(), [got.err], isolated_env["DOCKER_CREDENTIAL_IDP_HOME"])


def test_a_token_file_and_a_session_name_of_ones_own(stack, tmp_path, monkeypatch):
    token_file = tmp_path / "token"
    token_file.write_text(stack.issuer.mint("sts.amazonaws.com", subject="system:serviceaccount:ci:builder"))
    token_file.chmod(0o600)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", stack.sts.url)
    add("f", "--prefix", ECR_HOST, "--type", "ecr", "--role-arn", ROLE, "--oidc-token", f"file:{token_file}",
        "--role-session-name", "nightly-build", "--endpoint-url", stack.ecr.url)
    got = call_helper("get", stdin=ECR_HOST)
    assert got.code == 0, got
    assert stack.sts.received[0]["RoleSessionName"] == "nightly-build"
    assert stack.sts.received[0]["WebIdentityToken"] == token_file.read_text()


def test_a_token_for_another_audience_fails_the_get_in_one_line(stack, isolated_env, monkeypatch):
    """The control: the stand-in refuses what STS refuses, so the tests above prove the audience."""
    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)
    add("ci", "--prefix", ECR_HOST, "--type", "ecr", "--role-arn", ROLE, "--oidc-token", "github-actions",
        "--oidc-audience", "https://github.com/example", "--endpoint-url", stack.ecr.url)
    result = call_helper("get", stdin=ECR_HOST)
    line = assert_one_line_error(result, "registration 'ci'", "STS refused the identity token from GitHub Actions'",
                                 ROLE, "InvalidIdentityToken", stream="out")
    assert "wrong audience" in line and stack.ecr.count() == 0
    assert_nowhere(stack.issuer.minted, [result.out, result.err], isolated_env["DOCKER_CREDENTIAL_IDP_HOME"])


def test_a_refused_token_is_not_transient(stack):
    registration = Registration("ci", ECR_HOST, "ecr", {"role_arn": ROLE, "oidc_token": "env:TOKEN"}, Secrets({}))
    expired = stack.issuer.mint("sts.amazonaws.com", lifetime=-60)
    context = FetchContext(host=ECR_HOST, env={"TOKEN": expired, "AWS_ENDPOINT_URL_STS": stack.sts.url}, timeout=5)
    with pytest.raises(ProviderError) as raised:
        get_provider("ecr").fetch(registration, context)
    assert not raised.value.transient and "variable TOKEN" in raised.value.message
    assert "expired" in raised.value.message and expired not in raised.value.message


def kubelet_fetch(stack, settings, annotations):
    registration = Registration("k", ECR_HOST, "ecr", {"oidc_token": "kubelet", "endpoint_url": stack.ecr.url,
                                                       **settings}, Secrets({}))
    token = stack.issuer.mint("sts.amazonaws.com", subject="system:serviceaccount:shop:checkout")
    context = FetchContext(host=ECR_HOST, env={"AWS_ENDPOINT_URL_STS": stack.sts.url}, timeout=5,
                           identity_token=token, annotations=annotations)
    return fetching.fetch(registration, context.env, time.time, ECR_HOST, identity_token=token,
                          annotations=annotations)


def test_the_kubelet_role_comes_from_the_service_account_annotation_else_the_registration(stack):
    assert get_provider("ecr").annotation_keys == {"role_arn": "eks.amazonaws.com/role-arn"}
    assert get_provider("aws-secret").annotation_keys == {"role_arn": "eks.amazonaws.com/role-arn"}
    assert kubelet_fetch(stack, {"role_arn": ROLE}, {"eks.amazonaws.com/role-arn": POD_ROLE}).secret == PASSWORD
    assert kubelet_fetch(stack, {"role_arn": ROLE}, {}).secret == PASSWORD
    assert kubelet_fetch(stack, {}, {"eks.amazonaws.com/role-arn": POD_ROLE}).secret == PASSWORD
    assert [r["RoleArn"] for r in stack.sts.received] == [POD_ROLE, ROLE, POD_ROLE]
    assert {r["RoleSessionName"] for r in stack.sts.received} == {"k8s-shop-checkout"}
    with pytest.raises(ProviderError, match="annotate its service account with eks.amazonaws.com/role-arn"):
        kubelet_fetch(stack, {}, {})
    with pytest.raises(ProviderError, match="annotation eks.amazonaws.com/role-arn: --role-arn must look like"):
        kubelet_fetch(stack, {}, {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:user/x"})


@pytest.mark.parametrize("argv, message", [
    (["--oidc-token", "github-actions"], "--oidc-token needs --role-arn"),
    (["--oidc-token", "github-actions", "--role-arn", ROLE, "--profile", "p"], "drop --profile and --access-key-id"),
    (["--oidc-token", "github-actions", "--role-arn", ROLE, "--access-key-id", "AKIAIOSFODNN7EXAMPLE",
      "--secret-access-key-env", "K"], "drop --profile and --access-key-id"),
    (["--oidc-token", "github-actions", "--role-arn", ROLE, "--external-id", "x"], "--external-id is for a signed"),
    (["--oidc-audience", "sts.amazonaws.com"], "--oidc-audience goes with --oidc-token"),
    (["--oidc-token", "env:T", "--role-arn", ROLE, "--role-session-name", "a b"], "--role-session-name takes"),
])
def test_web_identity_options_are_checked_at_add(argv, message):
    result = call_helper("registry", "add", "x", "--prefix", ECR_HOST, "--type", "ecr", *argv, env={"K": "secret-k"})
    assert_one_line_error(result, message)
    assert call_helper("registry", "add", "k", "--prefix", ECR_HOST, "--type", "ecr", "--oidc-token", "kubelet").code == 0


def test_validate_accepts_the_kubelet_source_without_a_role():
    settings = {"oidc_token": "kubelet"}
    get_provider("ecr").validate(settings, {})
    with pytest.raises(InvalidInput):
        get_provider("aws-secret").validate({"secret_id": "s", "oidc_token": "env:T"}, {})

