"""Registry sources: the table synced from a local HTTPS platform (private CA, bearer token) whose list the tests
edit while they run — registries added, removed, moved, disabled, and the platform stopped — counting its calls."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from .conftest import add_basic, assert_one_line_error, run_helper
from .servers import platform_creds_api
from .tls import make_tls

TOKEN = "sync-platform-token-1"
LIST = "/orgs/acme/registries"


@pytest.fixture
def platform(tmp_path):
    ca, cert, key = make_tls(tmp_path / "platform-tls")
    listing = [
        {"id": "team-a", "registry": "registry.example.com/team-a", "type": "basic", "enable_ci": True},
        {"id": "hub", "registry": "registry.hub.docker.com/acme", "type": "basic", "enable_ci": True},
        {"id": "secret-stuff", "registry": "registry.example.com/private", "type": "basic", "enable_ci": False},
    ]
    registries = {"team-a": {"username": "robot-a", "password": "sync-pw-a"},
                  "hub": {"username": "robot-hub", "password": "sync-pw-hub"},
                  "team-b": {"username": "robot-b", "password": "sync-pw-b"}}
    server = platform_creds_api(token=TOKEN, org="acme", registries=registries, tls=(cert, key), listing=listing)
    server.listing, server.ca = listing, ca  # type: ignore[attr-defined]
    yield server
    server.stop()


def lists(platform) -> int:
    """How many times the list of registries was read (the creds calls share its path prefix)."""
    return sum(1 for _, path in platform.calls if path == LIST)


def add_source(platform, *extra: str, token: str = TOKEN):
    return run_helper("source", "add", "idp", "--type", "platform", "--url", platform.url, "--org", "acme",
                      "--token-stdin", "--ca-file", str(platform.ca), *extra, stdin=token)


def get(host: str) -> dict:
    result = run_helper("get", stdin=host)
    assert result.code == 0, result
    return json.loads(result.out)


def registrations() -> dict[str, dict]:
    return {r["id"]: r for r in json.loads(run_helper("registry", "list", "--json").out)}


def test_source_add_syncs_the_enabled_registries_at_once(platform):
    added = add_source(platform)
    assert added.code == 0, added
    assert "idp: 2 added, 0 moved, 0 removed, 0 unchanged" in added.out
    assert "skipped secret-stuff (enable_ci is false on the platform)" in added.out
    table = registrations()
    assert {i: (r["prefix"], r["origin"]) for i, r in table.items()} == {
        "idp.team-a": ("registry.example.com/team-a", "source:idp"), "idp.hub": ("docker.io/acme", "source:idp")}
    assert get("registry.example.com")["Secret"] == "sync-pw-a"
    assert json.loads(run_helper("creds", "acme/app").out)["password"] == "sync-pw-hub"
    assert lists(platform) == 1
    listed = json.loads(run_helper("source", "list", "--json").out)
    assert [(s["id"], s["org"], s["registrations"], s["last_error"]) for s in listed] == [
        ("idp", "acme", ["idp.hub", "idp.team-a"], None)]
    assert TOKEN not in run_helper("source", "list").out + run_helper("registry", "show", "idp.team-a").out


def test_a_source_whose_list_cannot_be_read_is_not_kept(platform):
    assert_one_line_error(add_source(platform, token="wrong-token"), "refused the token (HTTP 401)")
    assert json.loads(run_helper("source", "list", "--json").out) == []
    assert registrations() == {}


def test_sync_adds_removes_moves_and_reports_conflicts(platform):
    assert add_source(platform).code == 0
    add_basic("mine", "registry.example.com/team-b", "me", "my-own-pw")
    platform.listing[0]["registry"] = "registry.example.com/team-a2"  # moved
    del platform.listing[1]  # removed
    platform.listing.append({"id": "team-b", "registry": "registry.example.com/team-b", "type": "basic",
                             "enable_ci": True})  # conflicts with the registry add
    platform.listing.append({"id": "team-c", "registry": "registry.example.com/team-c", "type": "basic",
                             "enable_ci": True})  # added
    synced = run_helper("source", "sync", "idp")
    assert synced.code == 0, synced
    assert "idp: 1 added, 1 moved, 1 removed, 0 unchanged" in synced.out
    assert "moved idp.team-a (registry.example.com/team-a -> registry.example.com/team-a2)" in synced.out
    assert "conflict: registry.example.com/team-b (team-b) is registered as 'mine', which wins" in synced.out
    table = registrations()
    assert set(table) == {"idp.team-a", "idp.team-c", "mine"}
    assert table["idp.team-a"]["prefix"] == "registry.example.com/team-a2"
    assert json.loads(run_helper("creds", "registry.example.com/team-b/app").out)["password"] == "my-own-pw"


def age_sources(seconds: float) -> None:
    """Move every source's last sync `seconds` into the past, as if that much time had gone by."""
    import os

    from docker_credential_idp.paths import home_dir
    from docker_credential_idp.vault import Vault

    def change(table, records):
        for record in records.values():
            record["attempted_at"] -= seconds
            record["synced_at"] -= seconds

    Vault(home_dir(os.environ), os.environ).update_with_sources(change)


def test_a_get_that_finds_no_registration_syncs_first_at_most_once_a_minute(platform):
    assert add_source(platform).code == 0  # refresh: the default 10 minutes
    age_sources(61)
    platform.listing.append({"id": "team-b", "registry": "registry.example.com/team-b", "type": "basic",
                             "enable_ci": True})
    answer = json.loads(run_helper("creds", "registry.example.com/team-b/app").out)  # not in the table yet
    assert answer["password"] == "sync-pw-b"
    assert lists(platform) == 2
    # Listed now, but the last sync was less than a minute ago: a miss does not sync again so soon.
    platform.listing.append({"id": "ghcr", "registry": "ghcr.io/acme", "type": "basic", "enable_ci": True})
    assert_one_line_error(run_helper("get", stdin="ghcr.io"), "credentials not found", stream="out")
    for _ in range(3):  # unregistered hosts (credsStore sends every host) do not call the platform each time
        assert_one_line_error(run_helper("get", stdin="unregistered.example.com"), "credentials not found",
                              stream="out")
    assert lists(platform) == 2


def test_a_table_older_than_refresh_syncs_and_a_cache_hit_never_calls(platform):
    assert add_source(platform, "--refresh", "2s").code == 0
    calls = platform.count()
    for _ in range(3):
        assert get("registry.example.com")["Secret"] == "sync-pw-a"
    assert platform.count() == calls + 1  # one creds call; the hits call nothing
    time.sleep(2.2)
    platform.listing[0]["registry"] = "registry.example.com/moved"
    run_helper("cache", "clear")  # the next get is no cache hit
    assert_one_line_error(run_helper("creds", "registry.example.com/team-a/app"), "no registration serves")
    assert json.loads(run_helper("creds", "registry.example.com/moved/app").out)["password"] == "sync-pw-a"


def test_with_the_platform_down_the_last_table_keeps_serving_with_a_warning(platform):
    assert add_source(platform, "--refresh", "1s", "--timeout", "2").code == 0
    assert get("registry.example.com")["Secret"] == "sync-pw-a"
    platform.listing.clear()
    platform.fault = "503"
    time.sleep(1.2)
    run_helper("cache", "clear")
    platform.fault_times = 1  # the list call fails, the creds call works
    platform.calls.clear()
    result = run_helper("get", stdin="registry.example.com")
    assert result.code == 0 and json.loads(result.out)["Secret"] == "sync-pw-a", result
    assert "source 'idp'" in result.err and "HTTP 503" in result.err and "serving the registry table as last" \
        in result.err
    listed = json.loads(run_helper("source", "list", "--json").out)[0]
    assert "HTTP 503" in listed["last_error"]
    platform.fault_times = None  # down for good
    assert_one_line_error(run_helper("source", "sync", "idp"), "source 'idp'", "HTTP 503")
    assert set(registrations()) == {"idp.team-a", "idp.hub"}  # the last table stays


def test_source_remove_takes_its_registrations_and_their_tokens(platform):
    assert add_source(platform).code == 0
    assert get("registry.example.com")["Secret"] == "sync-pw-a"
    removed = run_helper("source", "remove", "idp")
    assert removed.code == 0 and removed.out == "Removed source idp and 2 registrations\n"
    assert registrations() == {}
    assert json.loads(run_helper("vault", "status", "--json").out)["cached_tokens"] == 0
    assert_one_line_error(run_helper("source", "remove", "idp"), "no source with id 'idp'")


def test_the_token_never_lands_outside_the_vault(platform, isolated_env):
    assert add_source(platform).code == 0
    assert get("registry.example.com")["Secret"] == "sync-pw-a"
    for path in Path(isolated_env["DOCKER_CREDENTIAL_IDP_HOME"]).rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_a_platform_that_does_not_answer_costs_one_timeout(platform):
    assert add_source(platform, "--refresh", "4s", "--timeout", "1").code == 0
    assert get("registry.example.com")["Secret"] == "sync-pw-a"
    platform.delay = 5
    started = time.monotonic()
    line = assert_one_line_error(run_helper("source", "sync", "idp"), "source 'idp'")
    assert "timed out" in line or "did not answer within 1 s" in line
    assert time.monotonic() - started < 1 + 4
    # The failed try counts as the source's last sync: until --refresh has passed again, nothing waits on it.
    started = time.monotonic()
    answered = run_helper("get", stdin="registry.example.com")
    assert answered.code == 0 and "warning" not in answered.err and time.monotonic() - started < 3
