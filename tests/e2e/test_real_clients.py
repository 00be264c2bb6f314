"""Real clients we did not write pull from a registry that demands auth; the credential comes only through
the helper named in credHelpers (or credsStore)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ..conftest import add_basic, run_helper
from .conftest import ALICE_PASSWORD, IMAGE, TAG, run_client, skopeo, skopeo_inspect, write_docker_config

pytestmark = pytest.mark.e2e


def route_to_helper(registry) -> None:
    write_docker_config({"credHelpers": {registry.host: "idp"}})


def test_control_without_helper_the_registry_refuses(registry):
    write_docker_config({})
    result = skopeo_inspect(registry)
    assert result.returncode != 0 and "unauthorized" in result.stderr.lower(), result.stderr


def test_skopeo_inspect_and_copy(registry, tmp_path):
    add_basic("local", registry.host, "alice", ALICE_PASSWORD)
    route_to_helper(registry)
    inspected = skopeo_inspect(registry)
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["Name"] == f"{registry.host}/{IMAGE}"
    copied = skopeo(registry, "copy", "--quiet", "--src-cert-dir", str(registry.ca_dir),
                    f"docker://{registry.host}/{IMAGE}:{TAG}", f"oci:{tmp_path / 'out'}:{TAG}")
    assert copied.returncode == 0, copied.stderr
    assert json.loads((tmp_path / "out" / "index.json").read_text())["manifests"]


def test_wrong_password_fails(registry):
    add_basic("local", registry.host, "alice", "not-the-password")
    route_to_helper(registry)
    result = skopeo_inspect(registry)
    assert result.returncode != 0 and "unauthorized" in result.stderr.lower(), result.stderr


def test_path_scoped_registrations_chosen_by_scope_variable(registry, monkeypatch):
    add_basic("team", f"{registry.host}/team", "alice", ALICE_PASSWORD)
    add_basic("other", f"{registry.host}/other", "alice", "wrong-password")
    route_to_helper(registry)
    ambiguous = skopeo_inspect(registry)
    assert ambiguous.returncode != 0 and "DOCKER_CREDENTIAL_IDP_SCOPE" in ambiguous.stderr
    monkeypatch.setenv("DOCKER_CREDENTIAL_IDP_SCOPE", f"{registry.host}/team/app")
    assert skopeo_inspect(registry).returncode == 0
    monkeypatch.setenv("DOCKER_CREDENTIAL_IDP_SCOPE", "other")
    assert "unauthorized" in skopeo_inspect(registry).stderr.lower()


def test_podman_pull(registry, podman_dirs):
    add_basic("local", registry.host, "alice", ALICE_PASSWORD)
    route_to_helper(registry)
    pulled = run_client("podman", *podman_dirs, "pull", "--quiet", "--cert-dir", str(registry.ca_dir),
                        f"{registry.host}/{IMAGE}:{TAG}")
    assert pulled.returncode == 0, pulled.stderr
    images = run_client("podman", *podman_dirs, "images", "--format", "{{.Repository}}:{{.Tag}}")
    assert f"{registry.host}/{IMAGE}:{TAG}" in images.stdout


def test_docker_cli_manifest_inspect(registry):
    add_basic("local", registry.host, "alice", ALICE_PASSWORD)
    route_to_helper(registry)
    result = run_client("docker", "manifest", "inspect", "--insecure", f"{registry.host}/{IMAGE}:{TAG}")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["schemaVersion"] == 2
    # control: the same call with a wrong password is refused
    add_basic("local2", f"{registry.host}/nothing", "x", "y")
    run_helper("registry", "remove", "local")
    add_basic("local", registry.host, "alice", "wrong")
    refused = run_client("docker", "manifest", "inspect", "--insecure", f"{registry.host}/{IMAGE}:{TAG}")
    assert refused.returncode != 0


def test_docker_login_stores_and_logout_erases(registry):
    write_docker_config({"credsStore": "idp"})
    login = run_client("docker", "login", "-u", "alice", "--password-stdin", registry.host, stdin=ALICE_PASSWORD.encode())
    assert login.returncode == 0, login.stderr
    assert json.loads(run_helper("list").out) == {registry.host: "alice"}
    config = json.loads((Path(os.environ["DOCKER_CONFIG"]) / "config.json").read_text())
    assert ALICE_PASSWORD not in json.dumps(config)
    # the stored credential now serves docker itself (skopeo 1.9 reads credHelpers only, not credsStore)
    inspected = run_client("docker", "manifest", "inspect", "--insecure", f"{registry.host}/{IMAGE}:{TAG}")
    assert inspected.returncode == 0, inspected.stderr
    logout = run_client("docker", "logout", registry.host)
    assert logout.returncode == 0, logout.stderr
    assert json.loads(run_helper("list").out) == {}


def test_docker_login_wrong_password_stores_nothing(registry):
    write_docker_config({"credsStore": "idp"})
    login = run_client("docker", "login", "-u", "alice", "--password-stdin", registry.host, stdin=b"wrong")
    assert login.returncode != 0
    assert json.loads(run_helper("list").out) == {}


def test_docker_py_resolve_authconfig(registry):
    import docker.auth

    add_basic("local", registry.host, "alice", ALICE_PASSWORD)
    add_basic("hub", "docker.io", "hubuser", "hub-pass")
    assert run_helper("configure-docker").code == 0
    config = docker.auth.load_config(config_path=str(Path(os.environ["DOCKER_CONFIG"]) / "config.json"))
    auth = docker.auth.resolve_authconfig(config, registry.host)
    assert (auth["Username"], auth["Password"]) == ("alice", ALICE_PASSWORD)
    hub = docker.auth.resolve_authconfig(config, None)
    assert (hub["Username"], hub["Password"]) == ("hubuser", "hub-pass")
    assert docker.auth.resolve_authconfig(config, "unregistered.example.com") is None


def test_docker_py_identity_token(registry):
    import docker.auth

    run_helper("store", stdin=json.dumps({"ServerURL": registry.host, "Username": "<token>", "Secret": "refresh-tok"}))
    write_docker_config({"credHelpers": {registry.host: "idp"}})
    config = docker.auth.load_config(config_path=str(Path(os.environ["DOCKER_CONFIG"]) / "config.json"))
    auth = docker.auth.resolve_authconfig(config, registry.host)
    assert auth["IdentityToken"] == "refresh-tok" and "Password" not in auth and "Username" not in auth
