"""A pattern registration (`local*:PORT`) serving the authenticated registry under its name `localhost:PORT`, to
skopeo and podman through credHelpers, with a wrong-password control and a more literal registration winning."""

from __future__ import annotations

import pytest

from ..conftest import add_basic
from .conftest import ALICE_PASSWORD, IMAGE, TAG, run_client, skopeo, write_docker_config

pytestmark = pytest.mark.e2e


def by_name(registry) -> str:
    return "localhost:" + registry.host.rsplit(":", 1)[1]  # the test certificate names localhost too


def inspect(registry) -> object:
    write_docker_config({"credHelpers": {by_name(registry): "idp"}})
    return skopeo(registry, "inspect", "--cert-dir", str(registry.ca_dir), f"docker://{by_name(registry)}/{IMAGE}:{TAG}")


def test_skopeo_and_podman_pull_through_a_pattern(registry, podman_dirs):
    port = registry.host.rsplit(":", 1)[1]
    add_basic("any-local", f"local*:{port}", "alice", ALICE_PASSWORD)
    inspected = inspect(registry)
    assert inspected.returncode == 0, inspected.stderr
    pulled = run_client("podman", *podman_dirs, "pull", "--quiet", "--cert-dir", str(registry.ca_dir),
                        f"{by_name(registry)}/{IMAGE}:{TAG}")
    assert pulled.returncode == 0, pulled.stderr


def test_a_wrong_password_behind_a_pattern_fails(registry):
    port = registry.host.rsplit(":", 1)[1]
    add_basic("any-local", f"local*:{port}", "alice", "not-alices-password")
    inspected = inspect(registry)
    assert inspected.returncode != 0 and "unauthorized" in inspected.stderr.lower(), inspected.stderr


def test_a_registration_without_star_wins_over_the_pattern(registry):
    port = registry.host.rsplit(":", 1)[1]
    add_basic("any-local", f"local*:{port}", "alice", "not-alices-password")
    add_basic("exact", by_name(registry), "alice", ALICE_PASSWORD)
    inspected = inspect(registry)
    assert inspected.returncode == 0, inspected.stderr
