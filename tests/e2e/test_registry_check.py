"""`registry test` against real registries: Debian's docker-registry with htpasswd (Basic) and with Bearer tokens
from a token service; a good credential, a bad one, and a registry that is not there, each told apart. skopeo pulls
through the Bearer registry with the credential from credHelpers, too."""

from __future__ import annotations

import pytest

from ..conftest import assert_one_line_error, run_helper
from ..e2e.registry import free_port
from .conftest import ALICE_PASSWORD, IMAGE, skopeo_inspect, write_docker_config

pytestmark = pytest.mark.e2e


def add(registry_id: str, prefix: str, password: str, *tls: str) -> None:
    result = run_helper("registry", "add", registry_id, "--prefix", prefix, "--type", "basic", "--username", "alice",
                        "--password-stdin", *tls, stdin=password)
    assert result.code == 0, result


@pytest.mark.parametrize("kind", ["basic", "bearer"])
def test_good_bad_and_unreachable_registries_are_told_apart(kind, registry, bearer_registry):
    server = registry if kind == "basic" else bearer_registry
    ca = ("--ca-file", str(server.ca_path))
    add("good", f"{server.host}/team", ALICE_PASSWORD, *ca)
    good = run_helper("registry", "test", "good")
    assert good.code == 0, good
    expected = "Basic auth" if kind == "basic" else "Bearer token from 127.0.0.1"
    assert f"OK: {server.host} accepts the credential ({expected}" in good.out
    assert good.out.count(" ms)") == (2 if kind == "basic" else 3)  # each step timed

    add("bad", f"{server.host}/other", "not-alices-password-9", *ca)
    bad = run_helper("registry", "test", f"{server.host}/other/app:1")  # a reference works as well as an id
    line = assert_one_line_error(bad, "refused the credential of registration 'bad'", "--replace")
    assert ("token service" in line) is (kind == "bearer") and "not-alices-password-9" not in bad.out + bad.err

    add("gone", f"127.0.0.1:{free_port()}", ALICE_PASSWORD, *ca)
    gone = run_helper("registry", "test", "gone")
    assert_one_line_error(gone, "cannot reach 127.0.0.1:", "refused")


def test_tls_needs_the_ca_or_insecure(registry):
    add("noca", registry.host, ALICE_PASSWORD)
    assert_one_line_error(run_helper("registry", "test", "noca"), "TLS verification failed", "--ca-file")
    add("insecure", f"{registry.host}/x", ALICE_PASSWORD, "--insecure")
    assert run_helper("registry", "test", "insecure").code == 0


def test_skopeo_pulls_from_the_bearer_registry_through_the_helper(bearer_registry):
    add("bearer", bearer_registry.host, ALICE_PASSWORD)
    write_docker_config({"credHelpers": {bearer_registry.host: "idp"}})
    result = skopeo_inspect(bearer_registry, IMAGE)
    assert result.returncode == 0, result.stderr


def test_unknown_target_is_one_clear_line():
    assert_one_line_error(run_helper("registry", "test", "nothing-here"), "no registration with id 'nothing-here'")
    assert_one_line_error(run_helper("registry", "test", "nothing.example.com/app"), "no registration serves")
