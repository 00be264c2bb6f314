"""Fixtures for the real-client tests: one authenticated registry per session, the helper on PATH."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from ..conftest import LEAKS, helper_path
from .daemon import DockerDaemon
from .registry import Registry, ensure_tools

ALICE_PASSWORD = "alice-e2e-pass-5d1e"
BOB_PASSWORD = "bob-e2e-pass-9a07"
# The cloud providers' tokens, as the local token endpoints issue them (tests/servers.py, tests/test_cloud_providers.py).
MOTO_ECR_PASSWORD = "123456789012-auth-token"  # moto answers AWS:<account>-auth-token
GOOGLE_ACCESS_TOKEN = "ya29.e2e-google-access-token"
ACR_REFRESH_TOKEN_USER = "00000000-0000-0000-0000-000000000000"
IMAGE = "team/app"
TAG = "1"


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    ensure_tools()
    users = {"alice": ALICE_PASSWORD, "bob": BOB_PASSWORD, "AWS": MOTO_ECR_PASSWORD, "oauth2accesstoken": GOOGLE_ACCESS_TOKEN,
             ACR_REFRESH_TOKEN_USER: acr_refresh_token()}
    server = Registry(tmp_path_factory.mktemp("registry"), users)
    try:
        server.push_image(IMAGE, TAG, "alice")
        for repository in BASE_IMAGES:
            server.push_image(repository, TAG, "alice", with_shell=True)
        yield server
    finally:
        server.stop()


# Images with a shell, for builds: FROM one of these, RUN a step.
BASE_IMAGES = ("team/base", "team-a/base", "team-b/base")


@pytest.fixture(scope="session")
def daemon(registry: Registry) -> Iterator[DockerDaemon]:
    server = DockerDaemon(registry.host, registry.ca_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def bearer_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """The same registry behind Bearer tokens from a token service, as Docker Hub, GHCR, Harbor and most others are."""
    ensure_tools()
    server = Registry(tmp_path_factory.mktemp("bearer-registry"), {"alice": ALICE_PASSWORD}, bearer=True)
    try:
        server.push_image(IMAGE, TAG, "alice")
        yield server
    finally:
        server.stop()


def acr_refresh_token() -> str:
    from ..servers import fake_jwt

    return fake_jwt({"exp": 4102444800, "aud": "registry"})  # 2100-01-01


@pytest.fixture(autouse=True)
def helper_on_path(monkeypatch: pytest.MonkeyPatch) -> str:
    """Clients find `docker-credential-idp` on PATH, as they do on a user's machine."""
    directory = str(Path(helper_path()).parent)
    monkeypatch.setenv("PATH", directory + os.pathsep + os.environ["PATH"])
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    return directory


def write_docker_config(content: dict) -> Path:
    path = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    path.write_text(json.dumps(content))
    return path


def run_client(*argv: str, stdin: bytes = b"", timeout: float = 180) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), input=stdin.decode(), capture_output=True, text=True, timeout=timeout,
                            check=False)
    LEAKS.saw(argv[0], result.stdout + result.stderr)  # a client never shows the credential it was given
    return result


def skopeo(registry: Registry, *argv: str) -> subprocess.CompletedProcess[str]:
    return run_client("skopeo", "--policy", str(registry.policy), *argv)


def skopeo_inspect(registry: Registry, repository: str = IMAGE) -> subprocess.CompletedProcess[str]:
    return skopeo(registry, "inspect", "--cert-dir", str(registry.ca_dir), f"docker://{registry.host}/{repository}:{TAG}")


@pytest.fixture
def podman_dirs() -> Iterator[list[str]]:
    # podman refuses a --runroot longer than 50 characters, so these live directly under /tmp.
    with tempfile.TemporaryDirectory(prefix="idp-pm-", dir="/tmp") as base:
        yield ["--root", f"{base}/root", "--runroot", f"{base}/run", "--tmpdir", f"{base}/tmp",
               "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"]
