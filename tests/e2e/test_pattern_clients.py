"""A pattern registration (`*.idp-e2e.example.com:PORT`) serving the authenticated registry under the name
`registry.idp-e2e.example.com:PORT`, to skopeo and podman through credHelpers, with a wrong-password control and a
more literal registration winning. No resolver knows the name: the clients reach the registry through a CONNECT
proxy (HTTPS_PROXY), TLS verified end to end. (`local*:PORT` served as the pattern before issue 18; a one-label
pattern is refused now.)"""

from __future__ import annotations

from typing import Iterator

import pytest

from ..conftest import add_basic
from ..servers import TunnelProxy
from .conftest import ALICE_PASSWORD, IMAGE, TAG, run_client, skopeo, write_docker_config
from .registry import PATTERN_NAME

pytestmark = pytest.mark.e2e


@pytest.fixture
def by_name(registry, monkeypatch) -> Iterator[str]:
    """The registry's address under PATTERN_NAME, the clients sent there through a tunnel."""
    port = registry.host.rsplit(":", 1)[1]
    proxy = TunnelProxy(int(port))
    for variable in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(variable, proxy.url)
    for variable in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    try:
        yield f"{PATTERN_NAME}:{port}"
    finally:
        proxy.stop()


def pattern(address: str) -> str:
    return "*." + address.split(".", 1)[1]  # *.idp-e2e.example.com:PORT


def inspect(registry, address: str) -> object:
    write_docker_config({"credHelpers": {address: "idp"}})
    return skopeo(registry, "inspect", "--cert-dir", str(registry.ca_dir), f"docker://{address}/{IMAGE}:{TAG}")


def test_skopeo_and_podman_pull_through_a_pattern(registry, podman_dirs, by_name):
    add_basic("any-e2e", pattern(by_name), "alice", ALICE_PASSWORD)
    inspected = inspect(registry, by_name)
    assert inspected.returncode == 0, inspected.stderr
    pulled = run_client("podman", *podman_dirs, "pull", "--quiet", "--cert-dir", str(registry.ca_dir),
                        f"{by_name}/{IMAGE}:{TAG}")
    assert pulled.returncode == 0, pulled.stderr


def test_a_wrong_password_behind_a_pattern_fails(registry, by_name):
    add_basic("any-e2e", pattern(by_name), "alice", "not-alices-password")
    inspected = inspect(registry, by_name)
    assert inspected.returncode != 0 and "unauthorized" in inspected.stderr.lower(), inspected.stderr


def test_a_registration_without_star_wins_over_the_pattern(registry, by_name):
    add_basic("any-e2e", pattern(by_name), "alice", "not-alices-password")
    add_basic("exact", by_name, "alice", ALICE_PASSWORD)
    inspected = inspect(registry, by_name)
    assert inspected.returncode == 0, inspected.stderr
