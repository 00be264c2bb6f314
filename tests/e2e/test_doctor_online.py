"""`doctor --online` against the authenticated registry: the handshake with the right password is no problem, with
a wrong one it is, named after the registration. And what doctor says breaks skopeo does break it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ..conftest import add_basic, run_helper
from .conftest import ALICE_PASSWORD, skopeo_inspect, write_docker_config

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("password, healthy", [(ALICE_PASSWORD, True), ("not-alices-password", False)])
def test_doctor_online_runs_the_registry_handshake(registry, password, healthy):
    add_basic("local", registry.host, "alice", password, "--ca-file", str(registry.ca_path))
    assert run_helper("configure-docker").code == 0
    offline = run_helper("doctor", "--json")
    assert offline.code == 0 and json.loads(offline.out) == [], offline
    online = run_helper("doctor", "--online", "--json")
    problems = json.loads(online.out)  # stdout stays pure JSON; progress, if the run is slow, goes to stderr
    assert all(line.startswith("doctor: ") for line in online.err.splitlines()), online
    assert (online.code == 0) is healthy, online
    if not healthy:
        [problem] = problems
        assert problem["check"] == "online" and problem["subject"] == "registration local"
        assert "registry test local" in problem["fix"] and password not in online.out


@pytest.mark.parametrize("content", ["not json", ""])
def test_a_containers_auth_file_doctor_finds_unreadable_fails_skopeo(registry, content):
    add_basic("local", registry.host, "alice", ALICE_PASSWORD)
    write_docker_config({"credHelpers": {registry.host: "idp"}})
    assert skopeo_inspect(registry).returncode == 0
    path = Path(os.environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"
    path.parent.mkdir()
    path.write_text(content)
    inspected = skopeo_inspect(registry)
    assert inspected.returncode != 0 and str(path) in inspected.stderr, inspected.stderr
    [problem] = json.loads(run_helper("doctor", "--json").out)
    assert problem["check"] == "containers-auth" and problem["subject"] == str(path)
