"""One conformance suite run against every provider, each set up against its nearest real thing on 127.0.0.1:
moto's server mode for ECR, STS and Secrets Manager, a local OAuth token endpoint for a Google service-account key,
local Entra ID and ACR exchange endpoints, a local HTTPS creds API for the platform, real /bin/sh scripts."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import assert_one_line_error, call_helper, run_helper
from .oidc import Issuer
from .servers import (
    ENTRA_FEDERATION_AUDIENCE,
    entra_and_acr_exchange,
    fake_jwt,
    google_sts_and_iam,
    google_token_endpoint,
    platform_creds_api,
    write_key,
)
from .setups import AWS_SECRET, put_secret
from .tls import make_tls

ECR_HOST = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
GOOGLE_TOKEN = "ya29.conformance-google-token"
AZURE_SECRET = "azure-client-secret-77b0"
ACR_REFRESH = fake_jwt({"exp": 4102444800})


def add(*args: str, stdin: str = "", env=None):
    result = call_helper("registry", "add", *args, stdin=stdin, env=env)
    assert result.code == 0, result
    return result


class ProviderConformance:
    """What every provider owes: a credential for a good setup, no secret anywhere but the answer, one bounded
    line naming the registration when its source is down, and no SDK import until it is used."""

    type_name: str
    module: str
    heavy_modules: tuple[str, ...] = ()
    expected_username: str

    def register(self, prefix: str, tmp_path: Path, upstream) -> list[str]:
        """Add a working registration; return the secrets used."""
        raise NotImplementedError

    def test_get_returns_the_credential(self, tmp_path, upstream):
        self.register(self.prefix, tmp_path, upstream)
        result = call_helper("get", stdin=self.prefix.split("/")[0])
        assert result.code == 0, result
        answer = json.loads(result.out)
        assert answer["Username"] == self.expected_username and answer["Secret"]

    def test_secrets_appear_only_in_the_answer(self, tmp_path, upstream, isolated_env):
        used = self.register(self.prefix, tmp_path, upstream)
        got = call_helper("get", stdin=self.prefix.split("/")[0])
        assert got.code == 0, got
        outputs = [call_helper(*argv) for argv in (("registry", "list"), ("registry", "list", "--json"),
                                                  ("registry", "show", "it"), ("registry", "show", "it", "--json"),
                                                  ("vault", "status"), ("resolve", self.prefix), ("list",))]
        files = [p for p in Path(isolated_env["DOCKER_CREDENTIAL_IDP_HOME"]).rglob("*") if p.is_file()]
        for secret in [*used, json.loads(got.out)["Secret"]]:
            for result in outputs:
                assert secret not in result.out + result.err
            for path in files:
                assert secret.encode() not in path.read_bytes(), path

    def test_module_import_leaves_sdks_alone(self):
        code = (f"import sys, docker_credential_idp.providers.{self.module}, docker_credential_idp.cli; "
                f"print([m for m in {list(self.heavy_modules)!r} if m in sys.modules])")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert out.strip() == "[]"


class UpstreamConformance(ProviderConformance):
    """Providers that call a token source."""

    def register_unreachable(self, prefix: str, tmp_path: Path) -> None:
        raise NotImplementedError

    def test_unreachable_source_is_one_bounded_line(self, tmp_path):
        self.register_unreachable(self.prefix, tmp_path)
        started = time.monotonic()
        result = run_helper("get", stdin=self.prefix.split("/")[0])
        elapsed = time.monotonic() - started
        assert_one_line_error(result, "registration 'it'", stream="out")
        assert elapsed < 40, elapsed  # the SDKs' retries are bounded; plus their start on a busy machine


class TestBasic(ProviderConformance):
    type_name, module, expected_username = "basic", "basic", "robot"
    prefix = "registry.example.com/team"

    @pytest.fixture
    def upstream(self):
        return None

    def register(self, prefix, tmp_path, upstream):
        add("it", "--prefix", prefix, "--type", "basic", "--username", "robot", "--password-stdin", stdin="basic-pw-3f9")
        return ["basic-pw-3f9"]


class TestEcr(UpstreamConformance):
    type_name, module, expected_username = "ecr", "ecr", "AWS"
    heavy_modules = ("boto3", "botocore")
    prefix = ECR_HOST

    @pytest.fixture
    def upstream(self, moto_url):
        return moto_url

    def register(self, prefix, tmp_path, upstream):
        add("it", "--prefix", prefix, "--type", "ecr", "--access-key-id", "AKIAIOSFODNN7EXAMPLE",
            "--secret-access-key-env", "MY_AWS_SECRET", "--endpoint-url", upstream, env={"MY_AWS_SECRET": AWS_SECRET})
        return [AWS_SECRET]

    def register_unreachable(self, prefix, tmp_path):
        add("it", "--prefix", prefix, "--type", "ecr", "--access-key-id", "AKIAIOSFODNN7EXAMPLE",
            "--secret-access-key-stdin", "--endpoint-url", "http://127.0.0.1:9", "--timeout", "2", stdin=AWS_SECRET)


class TestGcr(UpstreamConformance):
    type_name, module, expected_username = "gcr", "gcr", "oauth2accesstoken"
    heavy_modules = ("google.auth", "google.oauth2", "requests")
    prefix = "europe-docker.pkg.dev/project/repo"

    @pytest.fixture
    def upstream(self, service_account_key):
        server = google_token_endpoint(GOOGLE_TOKEN)
        yield server, service_account_key
        server.stop()

    def register(self, prefix, tmp_path, upstream):
        server, key = upstream
        key_file = write_key(tmp_path, key, f"{server.url}/token")
        add("it", "--prefix", prefix, "--type", "gar", "--key-file", str(key_file))
        key_file.unlink()  # kept in the vault: the file is not needed afterwards
        return [key["private_key"].splitlines()[1]]

    def register_unreachable(self, prefix, tmp_path):
        key = {"type": "service_account", "client_email": "x@y.iam.gserviceaccount.com", "private_key_id": "1",
               "token_uri": "http://127.0.0.1:9/token"}
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key["private_key"] = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
        add("it", "--prefix", prefix, "--type", "gcr", "--key-stdin", "--timeout", "2", stdin=json.dumps(key))


class TestAcr(UpstreamConformance):
    type_name, module, expected_username = "acr", "acr", "00000000-0000-0000-0000-000000000000"
    heavy_modules = ("azure.identity", "azure.core", "msal")
    prefix = "myregistry.azurecr.io"

    @pytest.fixture
    def upstream(self):
        server = entra_and_acr_exchange(tenant="tenant-1", client_secret=AZURE_SECRET, federated_token="fed",
                                        registry_host=self.prefix, refresh_token=ACR_REFRESH)
        yield server
        server.stop()

    def register(self, prefix, tmp_path, upstream):
        add("it", "--prefix", prefix, "--type", "acr", "--tenant", "tenant-1", "--client-id", "app-1",
            "--client-secret-stdin", "--authority-host", upstream.url, "--exchange-url", f"{upstream.url}/oauth2/exchange",
            "--ca-file", str(upstream.ca), stdin=AZURE_SECRET)
        return [AZURE_SECRET]

    def register_unreachable(self, prefix, tmp_path):
        add("it", "--prefix", prefix, "--type", "acr", "--tenant", "t", "--client-id", "c", "--client-secret-stdin",
            "--authority-host", "https://127.0.0.1:9", "--timeout", "2", stdin=AZURE_SECRET)


GOOGLE_PROVIDER = "//iam.googleapis.com/projects/42/locations/global/workloadIdentityPools/pool/providers/ci-oidc"
SERVICE_ACCOUNT = "pusher@conformance.iam.gserviceaccount.com"


def identity_token_file(tmp_path: Path, issuer: Issuer, audience: str) -> Path:
    """A projected-token-like file, read by --oidc-token file:PATH on every fetch."""
    path = tmp_path / "oidc" / "token"
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(issuer.mint(audience, subject="system:serviceaccount:ci:pusher"))
    path.chmod(0o600)
    return path


class TestGcrFederated(UpstreamConformance):
    """gcr with nothing stored: an identity token file exchanged at STS, then impersonation."""

    type_name, module, expected_username = "gcr", "gcr", "oauth2accesstoken"
    heavy_modules = ("google.auth", "google.oauth2", "requests")
    prefix = "us-docker.pkg.dev/project/repo"

    @pytest.fixture
    def upstream(self):
        issuer = Issuer()
        server = google_sts_and_iam(issuer, provider=GOOGLE_PROVIDER, audience="https:" + GOOGLE_PROVIDER,
                                    service_accounts=(SERVICE_ACCOUNT,))
        yield server, issuer
        server.stop()

    def register(self, prefix, tmp_path, upstream):
        server, issuer = upstream
        path = identity_token_file(tmp_path, issuer, "https:" + GOOGLE_PROVIDER)
        add("it", "--prefix", prefix, "--type", "gar", "--workload-identity-provider", GOOGLE_PROVIDER, "--oidc-token",
            f"file:{path}", "--service-account", SERVICE_ACCOUNT, "--sts-url", f"{server.url}/v1/token",
            "--impersonation-url", server.url)
        return [path.read_text(), *server.issued]

    def register_unreachable(self, prefix, tmp_path):
        path = identity_token_file(tmp_path, Issuer(), "https:" + GOOGLE_PROVIDER)
        add("it", "--prefix", prefix, "--type", "gcr", "--workload-identity-provider", GOOGLE_PROVIDER, "--oidc-token",
            f"file:{path}", "--sts-url", "http://127.0.0.1:9/v1/token", "--timeout", "2")


class TestAcrFederated(UpstreamConformance):
    """acr with nothing stored: an identity token file as Entra ID's client assertion."""

    type_name, module, expected_username = "acr", "acr", "00000000-0000-0000-0000-000000000000"
    heavy_modules = ("azure.identity", "azure.core", "msal")
    prefix = "federated.azurecr.io"

    @pytest.fixture
    def upstream(self):
        issuer = Issuer(iss="https://oidc.prod-aks.azure.com/tenant-1/")
        server = entra_and_acr_exchange(tenant="tenant-1", client_secret=AZURE_SECRET, issuer=issuer,
                                        client_ids=("app-1",), registry_host=self.prefix, refresh_token=ACR_REFRESH)
        yield server, issuer
        server.stop()

    def register(self, prefix, tmp_path, upstream):
        server, issuer = upstream
        path = identity_token_file(tmp_path, issuer, ENTRA_FEDERATION_AUDIENCE)
        add("it", "--prefix", prefix, "--type", "acr", "--tenant", "tenant-1", "--client-id", "app-1", "--oidc-token",
            f"file:{path}", "--authority-host", server.url, "--exchange-url", f"{server.url}/oauth2/exchange",
            "--ca-file", str(server.ca))
        return [path.read_text()]

    def register_unreachable(self, prefix, tmp_path):
        path = identity_token_file(tmp_path, Issuer(), ENTRA_FEDERATION_AUDIENCE)
        add("it", "--prefix", prefix, "--type", "acr", "--tenant", "t", "--client-id", "c", "--oidc-token",
            f"file:{path}", "--authority-host", "https://127.0.0.1:9", "--timeout", "2")


class TestEcrWebIdentity(UpstreamConformance):
    """ecr with no stored secret: a GitHub Actions identity token exchanged by STS (moto's, behind a stand-in that
    verifies the token as STS does) for the role's keys, each fetch."""

    type_name, module, expected_username = "ecr", "ecr", "AWS"
    heavy_modules = ("boto3", "botocore")
    prefix = ECR_HOST
    request_token = "gha-request-token-conformance-4f1"

    @pytest.fixture(autouse=True)
    def sts_nowhere(self, monkeypatch):
        """Unless `upstream` says otherwise, STS does not answer, and the identity token is a variable's."""
        from .oidc import Issuer

        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
        monkeypatch.setenv("CONFORMANCE_JWT", Issuer().mint("sts.amazonaws.com"))

    @pytest.fixture
    def upstream(self, moto_url, monkeypatch):
        from .aws_standins import StsWebIdentity
        from .oidc import Issuer, github_env, github_token_endpoint

        issuer = Issuer()
        sts = StsWebIdentity(issuer, moto_url)
        github = github_token_endpoint(issuer, self.request_token)
        for name, value in {**github_env(github, self.request_token), "AWS_ENDPOINT_URL_STS": sts.url}.items():
            monkeypatch.setenv(name, value)
        yield moto_url, issuer, sts
        sts.stop()
        github.stop()

    def register(self, prefix, tmp_path, upstream):
        moto_url, issuer, sts = upstream
        add("it", "--prefix", prefix, "--type", "ecr", "--role-arn", "arn:aws:iam::123456789012:role/ci",
            "--oidc-token", "github-actions", "--endpoint-url", moto_url)
        # issuer.minted is filled by the get that follows: the list itself is returned, so its tokens are looked for.
        return issuer.minted

    def register_unreachable(self, prefix, tmp_path):
        add("it", "--prefix", prefix, "--type", "ecr", "--role-arn", "arn:aws:iam::123456789012:role/ci",
            "--oidc-token", "env:CONFORMANCE_JWT", "--timeout", "2")


SCRIPT_PASSWORD = "script-pw-0c41"
PLATFORM_TOKEN = "platform-token-93be"
PLATFORM_PASSWORD = "platform-pw-6f20"
SECRETS_MANAGER_PASSWORD = "secretsmanager-pw-1d7a"


class TestScript(UpstreamConformance):
    type_name, module, expected_username = "script", "script", "robot"
    prefix = "registry.example.com/scripted"

    @pytest.fixture
    def upstream(self):
        return None

    def register(self, prefix, tmp_path, upstream):
        add("it", "--prefix", prefix, "--type", "script", "--script-stdin",
            stdin=f'# fetched from the platform\necho "robot:{SCRIPT_PASSWORD}"\n')
        return [SCRIPT_PASSWORD]

    def register_unreachable(self, prefix, tmp_path):
        add("it", "--prefix", prefix, "--type", "script", "--script-stdin",
            stdin="curl -sf http://127.0.0.1:9/creds || { echo 'cannot reach the creds service' >&2; exit 7; }\n")


class TestPlatform(UpstreamConformance):
    type_name, module, expected_username = "platform", "platform", "ci-robot"
    prefix = "registry.example.com/platform"

    @pytest.fixture
    def upstream(self, tmp_path):
        ca, cert, key = make_tls(tmp_path / "tls")
        server = platform_creds_api(token=PLATFORM_TOKEN, org="acme", tls=(cert, key),
                                    registries={"team-registry": {"username": "ci-robot", "password": PLATFORM_PASSWORD}})
        yield server, ca
        server.stop()

    def register(self, prefix, tmp_path, upstream):
        server, ca = upstream
        add("it", "--prefix", prefix, "--type", "platform", "--url", server.url, "--org", "acme",
            "--registry-id", "team-registry", "--token-env", "PLATFORM_TOKEN", "--ca-file", str(ca),
            env={"PLATFORM_TOKEN": PLATFORM_TOKEN})
        return [PLATFORM_TOKEN, PLATFORM_PASSWORD]

    def register_unreachable(self, prefix, tmp_path):
        add("it", "--prefix", prefix, "--type", "platform", "--url", "https://127.0.0.1:9", "--org", "acme",
            "--registry-id", "r", "--token-stdin", "--timeout", "2", stdin=PLATFORM_TOKEN)


class TestAwsSecret(UpstreamConformance):
    type_name, module, expected_username = "aws-secret", "aws_secret", "fleet"
    heavy_modules = ("boto3", "botocore")
    prefix = "registry.example.com/fleet"

    @pytest.fixture
    def upstream(self, moto_url):
        put_secret(moto_url, "conformance/registry", json.dumps({"username": "fleet", "password": SECRETS_MANAGER_PASSWORD}))
        return moto_url

    def register(self, prefix, tmp_path, upstream):
        add("it", "--prefix", prefix, "--type", "aws-secret", "--secret-id", "conformance/registry", "--region",
            "eu-west-1", "--access-key-id", "AKIAIOSFODNN7EXAMPLE", "--secret-access-key-env", "MY_AWS_SECRET",
            "--endpoint-url", upstream, env={"MY_AWS_SECRET": AWS_SECRET})
        return [AWS_SECRET, SECRETS_MANAGER_PASSWORD]

    def register_unreachable(self, prefix, tmp_path):
        add("it", "--prefix", prefix, "--type", "aws-secret", "--secret-id", "x", "--region", "eu-west-1",
            "--access-key-id", "AKIAIOSFODNN7EXAMPLE", "--secret-access-key-stdin", "--endpoint-url",
            "http://127.0.0.1:9", "--timeout", "2", stdin=AWS_SECRET)


OIDC_REQUEST_TOKEN = "gha-request-token-c0nf"
OIDC_EXCHANGED = "dckr_oat_conformance-exchanged-7a1f"


class TestOidc(UpstreamConformance):
    """An identity token from GitHub Actions' token endpoint, exchanged at Docker Hub's (over TLS): no secret kept."""

    type_name, module, expected_username = "oidc", "oidc", "acme"
    prefix = "docker.io/acme"

    @pytest.fixture
    def upstream(self, tmp_path, monkeypatch):
        from .oidc import Exchange, Issuer, github_env, github_token_endpoint

        issuer = Issuer()
        github = github_token_endpoint(issuer, OIDC_REQUEST_TOKEN)
        for name, value in github_env(github, OIDC_REQUEST_TOKEN).items():
            monkeypatch.setenv(name, value)
        ca, cert, key = make_tls(tmp_path / "tls")
        exchange = Exchange("dockerhub", issuer, "https://identity.docker.com", OIDC_EXCHANGED, tls=(cert, key),
                            connection_id="0f5b7e0c-3d8a-4c61-9b7e-2a1d4c5e6f70")
        yield exchange, ca
        github.stop()
        exchange.stop()

    def register(self, prefix, tmp_path, upstream):
        exchange, ca = upstream
        add("it", "--prefix", prefix, "--type", "oidc", "--exchange", "dockerhub", "--connection-id",
            "0f5b7e0c-3d8a-4c61-9b7e-2a1d4c5e6f70", "--username", "acme", "--oidc-token", "github-actions",
            "--exchange-url", f"{exchange.url}/oauth/token", "--ca-file", str(ca))
        return [OIDC_REQUEST_TOKEN]

    def register_unreachable(self, prefix, tmp_path):
        from .oidc import Issuer

        token = tmp_path / "projected" / "token"
        token.parent.mkdir(mode=0o700)
        token.write_text(Issuer().mint("https://identity.docker.com"))
        add("it", "--prefix", prefix, "--type", "oidc", "--exchange", "dockerhub", "--connection-id",
            "0f5b7e0c-3d8a-4c61-9b7e-2a1d4c5e6f70", "--username", "acme", "--oidc-token", f"file:{token}",
            "--exchange-url", "https://127.0.0.1:9/oauth/token", "--timeout", "2")

    def test_the_answer_is_the_exchanged_token_and_nothing_is_stored(self, tmp_path, upstream, isolated_env):
        exchange, _ = upstream
        self.register(self.prefix, tmp_path, upstream)
        answer = json.loads(call_helper("get", stdin="docker.io").out)
        assert (answer["Username"], answer["Secret"]) == ("acme", OIDC_EXCHANGED)
        assert len(exchange.verified) == 1
        vault = Path(isolated_env["DOCKER_CREDENTIAL_IDP_HOME"]) / "vault.bin"
        assert vault.exists() and OIDC_REQUEST_TOKEN.encode() not in vault.read_bytes()


def test_every_provider_type_has_a_conformance_case():
    """A new provider module is not done until it has its class here."""
    from docker_credential_idp.providers import MODULES

    covered = {case.type_name for case in ProviderConformance.__subclasses__() + UpstreamConformance.__subclasses__()
               if hasattr(case, "type_name")}
    assert set(MODULES) <= covered, f"no conformance case for: {sorted(set(MODULES) - covered)}"
