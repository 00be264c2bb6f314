"""One table of provider set-ups: every type registered against its nearest real thing on 127.0.0.1, for the tests
that exercise all types at once (faults, the kubelet). The conformance suite (test_provider_conformance.py) keeps
one class per type, as it also checks each type's own failure modes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

from .conftest import call_helper
from .oidc import Exchange, Issuer
from .servers import (
    LocalServer,
    ecr_api_endpoint,
    entra_and_acr_exchange,
    fake_jwt,
    google_token_endpoint,
    platform_creds_api,
    write_key,
)

ECR_HOST = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "moto-secret-access-key-e8a1"
ACR_USERNAME = "00000000-0000-0000-0000-000000000000"
PREFIXES = {
    "basic": "registry.example.com/team",
    "ecr": ECR_HOST,
    "gcr": "europe-docker.pkg.dev/project",
    "acr": "setups.azurecr.io",
    "platform": "platform.example.com/apps",
    "script": "scripted.example.com",
    "aws-secret": "fleet.example.com",
    "oidc": "oidc.example.com",
}
OIDC_CONNECTION = "0f5b7e0c-3d8a-4c61-9b7e-2a1d4c5e6f70"


class Setup:
    """One type's registration: its prefix, its `registry add` arguments and stdin, and the credential it yields
    (a password of None: any, as an ACR refresh token is minted per call)."""

    def __init__(self, type_name: str, argv: list[str], stdin: str, username: str, password: Optional[str]) -> None:
        self.type_name, self.prefix, self.argv, self.stdin = type_name, PREFIXES[type_name], argv, stdin
        self.username, self.password = username, password

    def register(self, registration_id: str, *extra: str) -> None:
        """`registry add`, in process: a set-up, not what the test shows."""
        result = call_helper("registry", "add", registration_id, "--prefix", self.prefix, *self.argv, *extra,
                            stdin=self.stdin)
        assert result.code == 0, (self.type_name, result)


class StandIns:
    """The stand-ins of every type that calls out, each minting `tag`-named secrets living `lifetime` seconds."""

    def __init__(self, tmp_path: Path, google_key: dict[str, Any], tag: str, lifetime: int = 3600,
                 moto_url: Optional[str] = None) -> None:
        self.tag, self.moto_url = tag, moto_url
        self.servers: dict[str, LocalServer] = {
            "ecr": ecr_api_endpoint(f"{tag}-ecr-password", lifetime=lifetime),
            "gcr": google_token_endpoint(f"ya29.{tag}-google-token", expires_in=lambda: lifetime),
            "acr": entra_and_acr_exchange(tenant="t", client_secret=f"{tag}-acr-secret", federated_token="f",
                                          registry_host=PREFIXES["acr"],
                                          refresh_token=lambda: fake_jwt({"exp": int(time.time()) + lifetime})),
            "platform": platform_creds_api(token=f"{tag}-platform-token", org="o", registries={
                "r": {"username": "platform-robot", "password": f"{tag}-platform-password", "expires_in": lifetime}}),
        }
        # oidc: Docker Hub's exchange, given a projected identity token from a file (no variable to set).
        self.issuer = Issuer()
        self.oidc = Exchange("dockerhub", self.issuer, "https://identity.docker.com", f"{tag}-oidc-token",
                             connection_id=OIDC_CONNECTION, expires_in=lifetime)
        self.servers["oidc"] = self.oidc.server
        tokens = tmp_path / "oidc-tokens"
        tokens.mkdir(mode=0o700)
        self.identity_token = tokens / "token"
        self.identity_token.write_text(self.issuer.mint("https://identity.docker.com", lifetime=86400))
        self.identity_token.chmod(0o600)
        self.key_file = write_key(tmp_path, google_key, f"{self.servers['gcr'].url}/token")

    def setup(self, type_name: str) -> Setup:
        tag, servers = self.tag, self.servers
        if type_name == "basic":
            return Setup("basic", ["--type", "basic", "--username", "robot", "--password-stdin"], f"{tag}-basic-pw",
                         "robot", f"{tag}-basic-pw")
        if type_name == "ecr":
            return Setup("ecr", ["--type", "ecr", "--endpoint-url", servers["ecr"].url, "--access-key-id", AWS_KEY_ID,
                                 "--secret-access-key-stdin"], AWS_SECRET, "AWS", f"{tag}-ecr-password")
        if type_name == "gcr":
            return Setup("gcr", ["--type", "gar", "--key-file", str(self.key_file)], "", "oauth2accesstoken",
                         f"ya29.{tag}-google-token")
        if type_name == "acr":
            url = servers["acr"].url
            return Setup("acr", ["--type", "acr", "--tenant", "t", "--client-id", "c", "--client-secret-stdin",
                                 "--authority-host", url, "--exchange-url", f"{url}/oauth2/exchange", "--ca-file",
                                 str(servers["acr"].ca)],
                         f"{tag}-acr-secret", ACR_USERNAME, None)
        if type_name == "platform":
            return Setup("platform", ["--type", "platform", "--url", servers["platform"].url, "--org", "o",
                                      "--registry-id", "r", "--token-stdin"], f"{tag}-platform-token",
                         "platform-robot", f"{tag}-platform-password")
        if type_name == "script":
            return Setup("script", ["--type", "script", "--script-stdin"], f"echo script-robot:{tag}-script-pw\n",
                         "script-robot", f"{tag}-script-pw")
        if type_name == "aws-secret":
            assert self.moto_url, "aws-secret needs moto (the moto_url fixture)"
            put_secret(self.moto_url, f"{tag}/registry", json.dumps({"username": "sm-robot", "password": f"{tag}-sm-pw"}))
            return Setup("aws-secret", ["--type", "aws-secret", "--secret-id", f"{tag}/registry", "--region",
                                        "eu-west-1", "--endpoint-url", self.moto_url, "--access-key-id", AWS_KEY_ID,
                                        "--secret-access-key-stdin"], AWS_SECRET, "sm-robot", f"{tag}-sm-pw")
        if type_name == "oidc":
            return Setup("oidc", ["--type", "oidc", "--exchange", "dockerhub", "--connection-id", OIDC_CONNECTION,
                                  "--username", "acme", "--oidc-token", f"file:{self.identity_token}", "--exchange-url",
                                  f"{servers['oidc'].url}/oauth/token"], "", "acme", f"{tag}-oidc-token")
        raise KeyError(type_name)

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


def put_secret(moto_url: str, name: str, value: str) -> str:
    """A Secrets Manager secret in moto's server; its ARN."""
    import boto3

    client = boto3.client("secretsmanager", region_name="eu-west-1", endpoint_url=moto_url,
                          aws_access_key_id=AWS_KEY_ID, aws_secret_access_key=AWS_SECRET)
    try:
        return client.create_secret(Name=name, SecretString=value)["ARN"]
    except client.exceptions.ResourceExistsException:
        client.put_secret_value(SecretId=name, SecretString=value)
        return client.describe_secret(SecretId=name)["ARN"]
