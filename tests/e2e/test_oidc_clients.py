"""--type oidc with real clients: skopeo and docker reach the registry through credHelpers only; the helper mints a
GitHub Actions identity token (the token endpoint's stand-in), exchanges it at Docker Hub's or JFrog's exchange
(a stand-in over TLS that verifies the token: signature, issuer, audience, expiry) and hands the client what the
exchange answered, here the registry's htpasswd password. Nothing secret is registered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from ..conftest import LEAKS, run_helper
from ..oidc import Exchange, Issuer, github_env, github_token_endpoint
from ..servers import LocalServer
from ..tls import make_tls
from .conftest import ALICE_PASSWORD, IMAGE, TAG, run_client, skopeo_inspect, write_docker_config

pytestmark = pytest.mark.e2e

REQUEST_TOKEN = "gha-request-token-e2e-41b7"
CONNECTION_ID = "0f5b7e0c-3d8a-4c61-9b7e-2a1d4c5e6f70"
AUDIENCES = {"dockerhub": "https://identity.docker.com", "jfrog": "https://acme.jfrog.io"}


class Federation:
    def __init__(self, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.kind = kind
        self.issuer = Issuer()
        self.github: LocalServer = github_token_endpoint(self.issuer, REQUEST_TOKEN)
        # The job's variables, in the client's environment: docker and skopeo run the helper with theirs.
        for name, value in github_env(self.github, REQUEST_TOKEN).items():
            monkeypatch.setenv(name, value)
        self.ca, cert, key = make_tls(tmp_path / "exchange-tls")
        self.exchange = Exchange(kind, self.issuer, AUDIENCES[kind], ALICE_PASSWORD, tls=(cert, key),
                                 connection_id=CONNECTION_ID, provider_name="github-oidc", username="alice")

    def register(self, host: str, *extra: str) -> None:
        url = self.exchange.url
        options = {"dockerhub": ["--connection-id", CONNECTION_ID, "--username", "alice", "--exchange-url",
                                 f"{url}/oauth/token"],
                   "jfrog": ["--url", "https://acme.jfrog.io", "--provider-name", "github-oidc", "--oidc-audience",
                             AUDIENCES["jfrog"], "--exchange-url", f"{url}/access/api/v1/oidc/token"]}[self.kind]
        result = run_helper("registry", "add", "fed", "--prefix", host, "--type", "oidc", "--exchange", self.kind,
                            "--oidc-token", "github-actions", *options, "--ca-file", str(self.ca), *extra)
        assert result.code == 0, result
        write_docker_config({"credHelpers": {host: "idp"}})

    def stop(self) -> None:
        self.github.stop()
        self.exchange.stop()


@pytest.fixture(params=["dockerhub", "jfrog"])
def federation(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Federation]:
    built = Federation(request.param, tmp_path, monkeypatch)
    yield built
    built.stop()


def test_skopeo_pulls_with_an_exchanged_identity_token(registry, federation: Federation, tmp_path: Path) -> None:
    federation.register(registry.host)
    inspected = skopeo_inspect(registry)
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["Name"] == f"{registry.host}/{IMAGE}"
    assert federation.github.count("/_apis/token") == 1, "the helper minted one identity token"
    assert len(federation.exchange.verified) == 1 and federation.exchange.refused == []
    assert federation.exchange.verified[0]["aud"] == AUDIENCES[federation.kind]
    # the answer is cached: a second client call mints and exchanges nothing
    assert skopeo_inspect(registry).returncode == 0
    assert federation.github.count("/_apis/token") == 1 and federation.exchange.count() == 1
    # nothing secret was registered: the vault holds no password, the registration no secret
    shown = json.loads(run_helper("registry", "show", "fed", "--json").out)
    assert shown["secrets"] == []
    LEAKS.watch(REQUEST_TOKEN)


def test_control_a_token_for_the_wrong_audience_is_refused_and_the_pull_fails(registry, federation: Federation) -> None:
    federation.register(registry.host, "--oidc-audience", "https://wrong.example.com")
    refused = skopeo_inspect(registry)
    assert refused.returncode != 0
    assert federation.exchange.refused and "wrong audience" in federation.exchange.refused[0]
    assert federation.exchange.issued == []  # the exchange gave nothing: skopeo never had the registry's password
    # skopeo stops at the helper's one line, which names the refusal and never a token
    assert f"the {federation.kind} exchange at {federation.exchange.url} refused the identity token (HTTP 401" \
        in refused.stderr, refused.stderr
    for token in federation.issuer.minted:
        assert token not in refused.stdout + refused.stderr


def test_docker_cli_manifest_inspect_with_an_exchanged_identity_token(registry, tmp_path, monkeypatch) -> None:
    federation = Federation("dockerhub", tmp_path, monkeypatch)
    try:
        federation.register(registry.host)
        result = run_client("docker", "manifest", "inspect", "--insecure", f"{registry.host}/{IMAGE}:{TAG}")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["schemaVersion"] == 2
        assert len(federation.exchange.verified) == 1
        # control: the same registration asking for another audience; the exchange refuses, docker is not let in
        run_helper("cache", "clear")
        federation.register(registry.host, "--oidc-audience", "wrong", "--replace")
        refused = run_client("docker", "manifest", "inspect", "--insecure", f"{registry.host}/{IMAGE}:{TAG}")
        assert refused.returncode != 0
        assert len(federation.exchange.refused) >= 1 and "refused the identity token" in refused.stderr, refused.stderr
    finally:
        federation.stop()
