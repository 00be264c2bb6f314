"""skopeo pulls from the authenticated registry with credentials the cloud providers fetch from local endpoints:
an `ecr` registration through moto's server mode (htpasswd user AWS, moto's token), a `gcr` one through a local
OAuth token endpoint, an `acr` one through local Entra ID and ACR exchange endpoints."""

from __future__ import annotations

import pytest

from ..conftest import run_helper
from ..servers import entra_and_acr_exchange, google_token_endpoint, write_key
from ..test_provider_conformance import AWS_SECRET
from .conftest import GOOGLE_ACCESS_TOKEN, acr_refresh_token, skopeo_inspect, write_docker_config

pytestmark = pytest.mark.e2e


def add(*args: str, stdin: str = "") -> None:
    result = run_helper("registry", "add", "cloud", "--prefix", *args, stdin=stdin)
    assert result.code == 0, result


def test_skopeo_through_ecr_registration(registry, moto_url):
    # A registry behind another name is served by naming the region and account: how a pull-through proxy works.
    add(registry.host, "--type", "ecr", "--region", "eu-west-1", "--registry-id", "123456789012",
        "--access-key-id", "AKIAIOSFODNN7EXAMPLE", "--secret-access-key-stdin", "--endpoint-url", moto_url, stdin=AWS_SECRET)
    write_docker_config({"credHelpers": {registry.host: "idp"}})
    result = skopeo_inspect(registry)
    assert result.returncode == 0, result.stderr


def test_skopeo_through_gcr_registration(registry, service_account_key, tmp_path):
    server = google_token_endpoint(GOOGLE_ACCESS_TOKEN)
    try:
        add(registry.host, "--type", "gcr", "--key-file", str(write_key(tmp_path, service_account_key, f"{server.url}/token")))
        write_docker_config({"credHelpers": {registry.host: "idp"}})
        result = skopeo_inspect(registry)
        assert result.returncode == 0, result.stderr
        assert server.count("/token") == 1
    finally:
        server.stop()


def test_skopeo_through_acr_registration(registry):
    server = entra_and_acr_exchange(tenant="tenant-e2e", client_secret="sp-secret-e2e", federated_token="unused",
                                    registry_host=registry.host, refresh_token=acr_refresh_token())
    try:
        add(registry.host, "--type", "acr", "--tenant", "tenant-e2e", "--client-id", "app", "--client-secret-stdin",
            "--authority-host", server.url, "--exchange-url", f"{server.url}/oauth2/exchange", "--ca-file", str(server.ca),
            stdin="sp-secret-e2e")
        write_docker_config({"credHelpers": {registry.host: "idp"}})
        result = skopeo_inspect(registry)
        assert result.returncode == 0, result.stderr
    finally:
        server.stop()


def test_skopeo_fails_when_the_token_source_refuses(registry, service_account_key, tmp_path):
    server = google_token_endpoint(GOOGLE_ACCESS_TOKEN)
    server.fault = "403"
    try:
        add(registry.host, "--type", "gcr", "--key-file", str(write_key(tmp_path, service_account_key, f"{server.url}/token")))
        write_docker_config({"credHelpers": {registry.host: "idp"}})
        result = skopeo_inspect(registry)
        assert result.returncode != 0 and "registration 'cloud'" in result.stderr
    finally:
        server.stop()
