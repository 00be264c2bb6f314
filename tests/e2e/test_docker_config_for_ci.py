"""`creds --format docker-config`: a CI job writes the registry credential into a file (or DOCKER_AUTH_CONFIG) once,
and tools that read docker's config format use it with no credential helper configured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..conftest import add_basic, run_helper
from .conftest import ALICE_PASSWORD, IMAGE, TAG, run_client, skopeo, write_docker_config

pytestmark = pytest.mark.e2e


def docker_config_file(tmp_path: Path, *refs: str) -> Path:
    result = run_helper("creds", *refs, "--format", "docker-config")
    assert result.code == 0, result
    path = tmp_path / "auth.json"
    path.write_text(result.out)
    return path


def test_skopeo_pulls_with_the_printed_config_and_no_helper(registry, tmp_path):
    write_docker_config({})  # no credHelpers, no credsStore: the file is the only credential
    add_basic("ci", f"{registry.host}/team", "alice", ALICE_PASSWORD)
    authfile = docker_config_file(tmp_path, f"{registry.host}/{IMAGE}:{TAG}")
    assert list(json.loads(authfile.read_text())["auths"]) == [registry.host]
    inspected = skopeo(registry, "inspect", "--authfile", str(authfile), "--cert-dir", str(registry.ca_dir),
                       f"docker://{registry.host}/{IMAGE}:{TAG}")
    assert inspected.returncode == 0, inspected.stderr
    copied = skopeo(registry, "copy", "--quiet", "--authfile", str(authfile), "--src-cert-dir", str(registry.ca_dir),
                    f"docker://{registry.host}/{IMAGE}:{TAG}", f"oci:{tmp_path / 'out'}:{TAG}")
    assert copied.returncode == 0, copied.stderr


def test_podman_pulls_with_the_config_as_registry_auth_file(registry, tmp_path, podman_dirs, monkeypatch):
    write_docker_config({})
    add_basic("ci", registry.host, "alice", ALICE_PASSWORD)
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(docker_config_file(tmp_path, registry.host)))
    pulled = run_client("podman", *podman_dirs, "pull", "--quiet", "--cert-dir", str(registry.ca_dir),
                        f"{registry.host}/{IMAGE}:{TAG}")
    assert pulled.returncode == 0, pulled.stderr


def test_a_wrong_password_in_the_config_is_refused(registry, tmp_path):
    write_docker_config({})
    add_basic("ci", registry.host, "alice", "not-alices-password")
    authfile = docker_config_file(tmp_path, registry.host)
    inspected = skopeo(registry, "inspect", "--authfile", str(authfile), "--cert-dir", str(registry.ca_dir),
                       f"docker://{registry.host}/{IMAGE}:{TAG}")
    assert inspected.returncode != 0
    assert "unauthorized" in inspected.stderr.lower() or "authentication required" in inspected.stderr.lower()
