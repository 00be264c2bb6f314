"""skopeo pulls from the authenticated registry with alice's password served by the fleet sources: a /bin/sh script,
the platform's creds API (local HTTPS endpoint with a private CA and a bearer token), and AWS Secrets Manager
(moto's server mode). The credential reaches skopeo only through credHelpers."""

from __future__ import annotations

import json

import pytest

from ..conftest import run_helper
from ..servers import platform_creds_api
from ..test_provider_conformance import AWS_SECRET, put_secret
from ..tls import make_tls
from .conftest import ALICE_PASSWORD, skopeo_inspect, write_docker_config

pytestmark = pytest.mark.e2e


def add(*args: str, stdin: str = "") -> None:
    result = run_helper("registry", "add", "fleet", "--prefix", *args, stdin=stdin)
    assert result.code == 0, result


def test_skopeo_through_script_registration(registry, tmp_path):
    # The password sits in a file only the script reads, as a secrets-agent sidecar would leave it.
    password_file = tmp_path / "agent-output"
    password_file.write_text(ALICE_PASSWORD)
    add(registry.host, "--type", "script", "--script-stdin", "--expire", "1h",
        stdin=f'set -e\nPASSWORD=$(cat "{password_file}")\necho "alice:$PASSWORD"\n')
    write_docker_config({"credHelpers": {registry.host: "idp"}})
    result = skopeo_inspect(registry)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Name"] == f"{registry.host}/team/app"


def test_skopeo_through_platform_registration(registry, tmp_path):
    ca, cert, key = make_tls(tmp_path / "platform-tls")
    api = platform_creds_api(token="ci-token-e2e", org="acme", tls=(cert, key),
                             registries={"team": {"username": "alice", "password": ALICE_PASSWORD}})
    try:
        add(registry.host, "--type", "platform", "--url", api.url, "--org", "acme", "--registry-id", "team",
            "--token-stdin", "--ca-file", str(ca), stdin="ci-token-e2e")
        write_docker_config({"credHelpers": {registry.host: "idp"}})
        result = skopeo_inspect(registry)
        assert result.returncode == 0, result.stderr
        second = skopeo_inspect(registry)
        assert second.returncode == 0, second.stderr
        assert api.count("/creds") == 1  # the second pull is served from the token cache
    finally:
        api.stop()


def test_skopeo_through_aws_secret_registration(registry, moto_url):
    put_secret(moto_url, "e2e/registry", json.dumps({"username": "alice", "password": ALICE_PASSWORD}))
    add(registry.host, "--type", "aws-secret", "--secret-id", "e2e/registry", "--region", "eu-west-1",
        "--endpoint-url", moto_url, "--access-key-id", "AKIAIOSFODNN7EXAMPLE", "--secret-access-key-stdin",
        stdin=AWS_SECRET)
    write_docker_config({"credHelpers": {registry.host: "idp"}})
    result = skopeo_inspect(registry)
    assert result.returncode == 0, result.stderr


def test_skopeo_fails_clearly_when_the_script_fails(registry):
    add(registry.host, "--type", "script", "--script-stdin", stdin="echo 'sso session expired' >&2\nexit 1\n")
    write_docker_config({"credHelpers": {registry.host: "idp"}})
    result = skopeo_inspect(registry)
    assert result.returncode != 0 and "sso session expired" in result.stderr


@pytest.mark.parametrize("password, works", [(ALICE_PASSWORD, True), ("not-alices-password", False)])
def test_skopeo_through_a_registration_synced_from_the_platform(registry, tmp_path, password, works):
    ca, cert, key = make_tls(tmp_path / "platform-tls")
    listing = [{"id": "team", "registry": f"{registry.host}/team", "type": "basic", "enable_ci": True}]
    api = platform_creds_api(token="sync-token-e2e", org="acme", tls=(cert, key), listing=listing,
                             registries={"team": {"username": "alice", "password": password}})
    try:
        result = run_helper("source", "add", "idp", "--type", "platform", "--url", api.url, "--org", "acme",
                            "--token-stdin", "--ca-file", str(ca), stdin="sync-token-e2e")
        assert result.code == 0, result
        write_docker_config({"credHelpers": {registry.host: "idp"}})
        inspected = skopeo_inspect(registry)
        assert (inspected.returncode == 0) is works, inspected.stderr
    finally:
        api.stop()


def test_skopeo_pulls_through_a_hand_made_registration_while_a_source_lists_the_host(registry, tmp_path):
    """skopeo sends only the host: a platform listing the whole host (with a credential that is not alice's) must
    not take those requests from the registration made by hand for the repositories under team/."""
    ca, cert, key = make_tls(tmp_path / "platform-tls")
    listing = [{"id": "whole", "registry": registry.host, "type": "basic", "enable_ci": True}]
    api = platform_creds_api(token="sync-token-e2e", org="acme", tls=(cert, key), listing=listing,
                             registries={"whole": {"username": "alice", "password": "not-alices-password"}})
    try:
        mine = run_helper("registry", "add", "mine", "--prefix", f"{registry.host}/team", "--type", "basic",
                          "--username", "alice", "--password-stdin", stdin=ALICE_PASSWORD)
        assert mine.code == 0, mine
        result = run_helper("source", "add", "idp", "--type", "platform", "--url", api.url, "--org", "acme",
                            "--token-stdin", "--ca-file", str(ca), stdin="sync-token-e2e")
        assert result.code == 0, result
        write_docker_config({"credHelpers": {registry.host: "idp"}})
        inspected = skopeo_inspect(registry)
        assert inspected.returncode == 0, inspected.stderr
        assert f"conflict: {registry.host} (whole) would take host-only requests" in result.out
    finally:
        api.stop()
