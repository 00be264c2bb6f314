"""A default install serves every type: `pip install` of the project brings boto3 and google-auth, and a type whose
SDK cannot be imported is refused at `registry add`, with the fix, instead of failing the next docker pull.

The fresh install runs offline, from the wheelhouse `make setup` builds (our wheel and every wheel it needs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import docker_credential_idp

from .conftest import Result, assert_one_line_error

WHEELHOUSE = Path(sys.prefix) / "wheelhouse"
REGISTRATIONS = (
    ("ecr", "123456789012.dkr.ecr.eu-west-1.amazonaws.com", ()),
    ("aws-secret", "registry.example.com/from-aws", ("--secret-id", "ci/registry", "--region", "eu-west-1")),
    ("gcr", "europe-docker.pkg.dev/project", ()),
    ("acr", "myregistry.azurecr.io", ("--managed-identity",)),
)


def run(python: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return Result(subprocess.run([str(python), *args], capture_output=True, timeout=300, check=False,
                                 env={**os.environ, **(env or {})}))


@pytest.fixture(scope="module")
def fresh_install(tmp_path_factory) -> Path:
    if not (WHEELHOUSE / ".built").exists():
        pytest.fail(f"no wheelhouse at {WHEELHOUSE}; run the tests with `make test` (make setup builds it)")
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-index", "--find-links",
                    str(WHEELHOUSE), "docker-credential-idp")
    assert installed.code == 0, installed
    return venv


@pytest.mark.parametrize("type_name, prefix, extra", REGISTRATIONS)
def test_a_default_install_serves_every_type(fresh_install, type_name, prefix, extra):
    helper = fresh_install / "bin" / "docker-credential-idp"
    result = subprocess.run([str(helper), "registry", "add", type_name, "--prefix", prefix, "--type", type_name,
                             *extra], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    sdk = {"ecr": "boto3", "aws-secret": "boto3", "gcr": "google.auth.transport.requests",
           "acr": "azure.identity"}[type_name]
    assert run(fresh_install / "bin" / "python", "-c", f"import {sdk}").code == 0


@pytest.mark.parametrize("type_name, prefix, extra", REGISTRATIONS)
def test_a_type_whose_sdk_cannot_be_imported_is_refused_at_add(tmp_path, type_name, prefix, extra):
    """An environment with our package and nothing else (a broken or partial install)."""
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "docker_credential_idp").symlink_to(Path(docker_credential_idp.__file__).parent)
    python = venv / "bin" / "python"
    assert run(python, "-c", "import boto3").code != 0  # the environment really lacks the SDKs
    result = run(python, "-m", "docker_credential_idp", "registry", "add", type_name, "--prefix", prefix, "--type",
                 type_name, *extra, env={"PYTHONPATH": str(lib)})
    package = {"gcr": "google-auth[requests]", "acr": "azure-identity"}.get(type_name, "boto3")
    line = assert_one_line_error(result, f"needs the Python package '{package}'", "-m pip install")
    assert str(python) in line or "bin/python" in line
    listing = run(python, "-m", "docker_credential_idp", "registry", "list", "--json", env={"PYTHONPATH": str(lib)})
    assert listing.code == 0 and listing.out.strip() == "[]", listing  # nothing was registered


def test_the_distribution_requires_every_sdk():
    from importlib.metadata import requires

    required = {line.split(">")[0].split("[")[0].split(";")[0].strip().lower()
                for line in requires("docker-credential-idp") or [] if "extra ==" not in line}
    assert {"boto3", "google-auth", "azure-identity", "cryptography", "platformdirs"} <= required, required
