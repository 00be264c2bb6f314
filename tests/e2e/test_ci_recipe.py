"""docs/ci-runner.sh, the plain shell CI recipe, run as written against the authenticated registry: it registers
the registry from environment variables, tests it, configures docker's config and pushes with skopeo through the
helper, then hands the credential to another tool with `creds --format env`."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest

from .conftest import ALICE_PASSWORD, TAG, skopeo, skopeo_inspect
from .registry import make_oci_image

pytestmark = pytest.mark.e2e
RECIPE = Path(__file__).resolve().parents[2] / "docs" / "ci-runner.sh"


def test_shell_runner_recipe_pushes_through_the_helper(registry, tmp_path):
    layout = tmp_path / "image"
    make_oci_image(layout, TAG, b"built by the ci recipe\n")
    env = {**os.environ, "IDP_VAULT_KEY": base64.b64encode(os.urandom(32)).decode(),
           "REGISTRY": f"{registry.host}/ci", "REGISTRY_USER": "alice", "REGISTRY_PASSWORD": ALICE_PASSWORD,
           "IMAGE_SOURCE": f"oci:{layout}:{TAG}", "IMAGE": f"{registry.host}/ci/app:{TAG}",
           "REGISTRY_CA_FILE": str(registry.ca_path),
           "SKOPEO_OPTS": f"--policy {registry.policy} --dest-cert-dir {registry.ca_dir} --quiet"}
    env.pop("DOCKER_CREDENTIAL_IDP_HOME")  # the recipe makes its own
    env.pop("DOCKER_CONFIG")
    env["HOME"] = str(tmp_path / "runner-home")
    result = subprocess.run(["sh", str(RECIPE)], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"pushed {registry.host}/ci/app:{TAG} as alice" in result.stdout
    assert ALICE_PASSWORD not in result.stdout + result.stderr
    assert skopeo_inspect(registry, "ci/app").returncode != 0  # without credentials the registry refuses
    pushed = skopeo(registry, "inspect", "--authfile", str(registry.auth_file("alice")), "--cert-dir",
                    str(registry.ca_dir), f"docker://{registry.host}/ci/app:{TAG}")
    assert pushed.returncode == 0, pushed.stderr  # the push landed


def test_shell_runner_recipe_stops_at_a_wrong_password(registry, tmp_path):
    env = {**os.environ, "IDP_VAULT_KEY": base64.b64encode(os.urandom(32)).decode(), "REGISTRY": registry.host,
           "REGISTRY_USER": "alice", "REGISTRY_PASSWORD": "wrong-ci-password-1", "IMAGE_SOURCE": "oci:/nonexistent",
           "IMAGE": f"{registry.host}/ci/app:{TAG}", "HOME": str(tmp_path)}
    for name in ("DOCKER_CREDENTIAL_IDP_HOME", "DOCKER_CONFIG"):
        env.pop(name)
    env["REGISTRY_CA_FILE"] = str(registry.ca_path)
    result = subprocess.run(["sh", str(RECIPE)], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert "refused the credential of registration 'ci'" in result.stderr
