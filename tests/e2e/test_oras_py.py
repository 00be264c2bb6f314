"""oras-py, a client we did not write, pushes and pulls through the config.json `configure-docker` writes: it asks the
helper named in credHelpers, and its login (which edits config.json itself when no docker daemon answers) finds the
"auths" object it indexes without looking (KeyError: 'auths' otherwise). oras-py reads ~/.docker/config.json only,
ignoring DOCKER_CONFIG: the test sets HOME and lets configure-docker write there."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from ..conftest import add_basic, run_helper
from .conftest import ALICE_PASSWORD

pytestmark = pytest.mark.e2e


def test_oras_py_pushes_and_pulls_through_the_config_configure_docker_writes(registry, tmp_path, monkeypatch):
    import oras.client

    monkeypatch.delenv("DOCKER_CONFIG")  # configure-docker then writes $HOME/.docker/config.json, as oras-py reads
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")  # oras-py's login tries a daemon first
    config_path = Path(os.environ["HOME"]) / ".docker" / "config.json"
    target = f"{registry.host}/team/artifact:1"
    artifact = tmp_path / "artifact.txt"
    artifact.write_text("pushed by oras-py through docker-credential-idp\n")

    def client() -> oras.client.OrasClient:
        # A fresh one each time (oras-py keeps what it read from the config). Its Basic backend: the token backend
        # renews a token on 403 only, and distribution answers a push that needs a wider scope with 401.
        return oras.client.OrasClient(hostname=registry.host, tls_verify=str(registry.ca_path), auth_backend="basic")

    add_basic("local", registry.host, "alice", ALICE_PASSWORD)
    assert run_helper("configure-docker").code == 0
    pushed = client().push(files=[str(artifact)], target=target, disable_path_validation=True)
    assert pushed.status_code in (200, 201), pushed.text
    pulled = client().pull(target=target, outdir=str(tmp_path / "out"))
    assert [Path(p).read_text() for p in pulled] == [artifact.read_text()]

    # oras-py's own login edits config.json: it reads "auths" as it is (it crashed without one), keeps our route.
    assert client().login(username="someone", password="not-a-secret", hostname="unrelated.example.com") == {
        "Status": "Login Succeeded"}
    config = json.loads(config_path.read_text())
    assert config["credHelpers"] == {registry.host: "idp"} and set(config["auths"]) == {"unrelated.example.com"}
    # the registry's password reached oras-py through the helper only, never config.json
    assert base64.b64encode(f"alice:{ALICE_PASSWORD}".encode()).decode() not in config_path.read_text()

    # control: what the helper answers is what oras-py sends (a wrong password there, and the pull is refused)
    add_basic("local", registry.host, "alice", "not-alices-password", "--replace")
    with pytest.raises(ValueError):
        client().pull(target=target, outdir=str(tmp_path / "refused"))
