"""`doctor --online` against the authenticated registry: the handshake with the right password is no problem, with
a wrong one it is, named after the registration."""

from __future__ import annotations

import json

import pytest

from ..conftest import add_basic, run_helper
from .conftest import ALICE_PASSWORD

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("password, healthy", [(ALICE_PASSWORD, True), ("not-alices-password", False)])
def test_doctor_online_runs_the_registry_handshake(registry, password, healthy):
    add_basic("local", registry.host, "alice", password, "--ca-file", str(registry.ca_path))
    assert run_helper("configure-docker").code == 0
    offline = run_helper("doctor", "--json")
    assert offline.code == 0 and json.loads(offline.out) == [], offline
    online = run_helper("doctor", "--online", "--json")
    problems = json.loads(online.out)
    assert (online.code == 0) is healthy, online
    if not healthy:
        [problem] = problems
        assert problem["check"] == "online" and problem["subject"] == "registration local"
        assert "registry test local" in problem["fix"] and password not in online.out
