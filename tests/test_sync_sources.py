"""Registry sources: the table synced from a local HTTPS platform (private CA, bearer token) whose list the tests
edit while they run — registries added, removed, moved, disabled, and the platform stopped — counting its calls."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from .conftest import add_basic, assert_one_line_error, call_helper
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
    server.listing, server.ca, server.registries = listing, ca, registries  # type: ignore[attr-defined]
    yield server
    server.stop()


def lists(platform) -> int:
    """How many times the list of registries was read (the creds calls share its path prefix)."""
    return sum(1 for _, path in platform.calls if path == LIST)


def add_source(platform, *extra: str, token: str = TOKEN):
    return call_helper("source", "add", "idp", "--type", "platform", "--url", platform.url, "--org", "acme",
                      "--token-stdin", "--ca-file", str(platform.ca), *extra, stdin=token)


def without_progress(result):
    """The result with `source sync`'s progress lines (a slow sync's steps) taken out of its stderr."""
    result.err = "".join(line for line in result.err.splitlines(keepends=True)
                         if "reading the list of registries" not in line and "registries listed" not in line)
    return result


def get(host: str) -> dict:
    result = call_helper("get", stdin=host)
    assert result.code == 0, result
    return json.loads(result.out)


def registrations() -> dict[str, dict]:
    return {r["id"]: r for r in json.loads(call_helper("registry", "list", "--json").out)}


def test_source_add_syncs_the_enabled_registries_at_once(platform):
    added = add_source(platform)
    assert added.code == 0, added
    assert "idp: 2 added, 0 moved, 0 removed, 0 unchanged" in added.out
    assert "skipped secret-stuff (enable_ci is false on the platform)" in added.out
    table = registrations()
    assert {i: (r["prefix"], r["origin"]) for i, r in table.items()} == {
        "idp.team-a": ("registry.example.com/team-a", "source:idp"), "idp.hub": ("docker.io/acme", "source:idp")}
    assert get("registry.example.com")["Secret"] == "sync-pw-a"
    assert json.loads(call_helper("creds", "acme/app").out)["password"] == "sync-pw-hub"
    assert lists(platform) == 1
    listed = json.loads(call_helper("source", "list", "--json").out)
    assert [(s["id"], s["org"], s["registrations"], s["last_error"]) for s in listed] == [
        ("idp", "acme", ["idp.hub", "idp.team-a"], None)]
    assert TOKEN not in call_helper("source", "list").out + call_helper("registry", "show", "idp.team-a").out


def test_a_source_whose_list_cannot_be_read_is_not_kept(platform):
    assert_one_line_error(add_source(platform, token="wrong-token"), "refused the token (HTTP 401)")
    assert json.loads(call_helper("source", "list", "--json").out) == []
    assert registrations() == {}


def test_sync_adds_removes_moves_and_reports_conflicts(platform):
    assert add_source(platform).code == 0
    add_basic("mine", "ghcr.io/acme", "me", "my-own-pw")
    platform.listing[0]["registry"] = "registry.example.com/team-a2"  # moved
    del platform.listing[1]  # removed
    platform.listing.append({"id": "team-b", "registry": "ghcr.io/acme", "type": "basic",
                             "enable_ci": True})  # conflicts with the registry add
    platform.listing.append({"id": "team-c", "registry": "registry.example.com/team-c", "type": "basic",
                             "enable_ci": True})  # added
    synced = call_helper("source", "sync", "idp")
    assert synced.code == 0, synced
    assert "idp: 1 added, 1 moved, 1 removed, 0 unchanged, 1 shadowed" in synced.out
    assert "moved idp.team-a (registry.example.com/team-a -> registry.example.com/team-a2)" in synced.out
    assert ("conflict: ghcr.io/acme (team-b) is registered as 'mine' (made with registry add), which wins; remove it "
            "to take the platform's") in synced.out
    table = registrations()
    assert set(table) == {"idp.team-a", "idp.team-c", "mine"}
    assert table["idp.team-a"]["prefix"] == "registry.example.com/team-a2"
    assert json.loads(call_helper("creds", "ghcr.io/acme/app").out)["password"] == "my-own-pw"


def age_sources(seconds: float) -> None:
    """Move every source's last sync `seconds` into the past, as if that much time had gone by."""
    import os

    from docker_credential_idp import source_record
    from docker_credential_idp.paths import home_dir
    from docker_credential_idp.vault import Vault

    def change(table, records):
        for source_id, text in records.items():
            record = source_record.from_text(text)
            record["attempted_at"] -= seconds
            record["synced_at"] -= seconds
            records[source_id] = source_record.to_text(record)

    Vault(home_dir(os.environ), os.environ).update_with_sources(change)


def test_a_get_that_finds_no_registration_syncs_first_at_most_once_a_minute(platform):
    assert add_source(platform).code == 0  # refresh: the default 10 minutes
    age_sources(61)
    platform.listing.append({"id": "team-b", "registry": "registry.example.com/team-b", "type": "basic",
                             "enable_ci": True})
    answer = json.loads(call_helper("creds", "registry.example.com/team-b/app").out)  # not in the table yet
    assert answer["password"] == "sync-pw-b"
    assert lists(platform) == 2
    # Listed now, but the last sync was less than a minute ago: a miss does not sync again so soon.
    platform.listing.append({"id": "ghcr", "registry": "ghcr.io/acme", "type": "basic", "enable_ci": True})
    assert_one_line_error(call_helper("get", stdin="ghcr.io"), "credentials not found", stream="out")
    for _ in range(3):  # unregistered hosts (credsStore sends every host) do not call the platform each time
        assert_one_line_error(call_helper("get", stdin="unregistered.example.com"), "credentials not found",
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
    call_helper("cache", "clear")  # the next get is no cache hit
    assert_one_line_error(call_helper("creds", "registry.example.com/team-a/app"), "no registration serves")
    assert json.loads(call_helper("creds", "registry.example.com/moved/app").out)["password"] == "sync-pw-a"


def test_with_the_platform_down_the_last_table_keeps_serving_with_a_warning(platform):
    assert add_source(platform, "--refresh", "1s", "--timeout", "2").code == 0
    assert get("registry.example.com")["Secret"] == "sync-pw-a"
    platform.listing.clear()
    platform.fault = "503"
    time.sleep(1.2)
    call_helper("cache", "clear")
    platform.fault_times = 2  # the list call fails (both its tries within --timeout 2), the creds call works
    platform.calls.clear()
    result = call_helper("get", stdin="registry.example.com")
    assert result.code == 0 and json.loads(result.out)["Secret"] == "sync-pw-a", result
    assert "source 'idp'" in result.err and "HTTP 503" in result.err and "serving the registry table as last" \
        in result.err
    listed = json.loads(call_helper("source", "list", "--json").out)[0]
    assert "HTTP 503" in listed["last_error"]
    platform.fault_times = None  # down for good
    assert_one_line_error(call_helper("source", "sync", "idp"), "source 'idp'", "HTTP 503")
    assert set(registrations()) == {"idp.team-a", "idp.hub"}  # the last table stays


def test_source_remove_takes_its_registrations_and_their_tokens(platform):
    assert add_source(platform).code == 0
    assert get("registry.example.com")["Secret"] == "sync-pw-a"
    removed = call_helper("source", "remove", "idp")
    assert removed.code == 0 and removed.out == "Removed source idp and 2 registrations\n"
    assert registrations() == {}
    assert json.loads(call_helper("vault", "status", "--json").out)["cached_tokens"] == 0
    assert_one_line_error(call_helper("source", "remove", "idp"), "no source with id 'idp'")


def test_the_token_never_lands_outside_the_vault(platform, isolated_env):
    assert add_source(platform).code == 0
    assert get("registry.example.com")["Secret"] == "sync-pw-a"
    for path in Path(isolated_env["DOCKER_CREDENTIAL_IDP_HOME"]).rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_a_platform_that_does_not_answer_costs_one_timeout(platform):
    # --refresh 60s: long enough that a busy machine cannot let it pass between the two calls below.
    assert add_source(platform, "--refresh", "60s", "--timeout", "1").code == 0
    assert get("registry.example.com")["Secret"] == "sync-pw-a"
    platform.delay = 60  # an answer this late has timed out, however busy the machine
    started = time.monotonic()
    line = assert_one_line_error(without_progress(call_helper("source", "sync", "idp")), "source 'idp'")
    assert "timed out" in line or "did not answer within 1 s" in line
    assert time.monotonic() - started < 1 + 30 < platform.delay
    # The failed try counts as the source's last sync: until --refresh has passed again, nothing waits on it.
    calls = platform.count()
    started = time.monotonic()
    answered = call_helper("get", stdin="registry.example.com")
    assert answered.code == 0 and "warning" not in answered.err and time.monotonic() - started < 30
    assert platform.count() == calls  # nothing asked the platform


# -- a registration made by hand wins, on any overlap (issue 18) ---------------------------------------------------


def listed(platform, registry_id: str, prefix: str, password: str = "", enabled: bool = True) -> None:
    platform.listing.append({"id": registry_id, "registry": prefix, "type": "basic", "enable_ci": enabled})
    platform.registries[registry_id] = {"username": f"robot-{registry_id}", "password": password or f"pw-{registry_id}"}


@pytest.fixture
def mine_on_team_a(platform):
    """A hand-made registration for registry.example.com/team-a, and a platform whose list has nothing yet."""
    platform.listing.clear()
    add_basic("mine", "registry.example.com/team-a", "me", "my-own-pw")
    return platform


def test_a_listed_host_never_takes_host_only_requests_from_a_hand_made_path(mine_on_team_a):
    listed(mine_on_team_a, "whole", "registry.example.com")
    added = add_source(mine_on_team_a)
    assert added.code == 0, added
    assert ("conflict: registry.example.com (whole) would take host-only requests for registry.example.com (docker, "
            "skopeo, podman and BuildKit send only the host) from 'mine' (registry.example.com/team-a)") in added.out
    assert get("registry.example.com")["Secret"] == "my-own-pw"  # what docker, skopeo and podman send
    assert "idp.whole" not in registrations()


def test_a_listed_sibling_never_makes_the_host_ambiguous(mine_on_team_a):
    listed(mine_on_team_a, "team-b", "registry.example.com/team-b")
    added = add_source(mine_on_team_a)
    assert added.code == 0, added
    assert "would leave host-only requests for registry.example.com" in added.out and "ambiguous" in added.out
    assert get("registry.example.com")["Secret"] == "my-own-pw"


def test_a_listed_prefix_under_a_hand_made_one_takes_none_of_its_requests(platform):
    platform.listing.clear()
    add_basic("mine", "registry.example.com", "me", "my-own-pw")
    listed(platform, "team-a", "registry.example.com/team-a")
    listed(platform, "ghcr", "ghcr.io/acme")  # no overlap: taken
    added = add_source(platform)
    assert added.code == 0, added
    assert ("conflict: registry.example.com/team-a (team-a) would take requests for registry.example.com/team-a from "
            "'mine' (registry.example.com)") in added.out
    assert json.loads(call_helper("creds", "registry.example.com/team-a/app").out)["password"] == "my-own-pw"
    assert set(registrations()) == {"mine", "idp.ghcr"}


def test_a_listed_pattern_is_checked_as_registry_add_checks_one(platform):
    platform.listing.clear()
    add_basic("mine", "a*.azurecr.io", "me", "my-own-pw")
    listed(platform, "same", "*b.azurecr.io")  # exactly as specific: registry add refuses it beside mine
    listed(platform, "wider", "*.azurecr.io")  # less specific: mine keeps every host it matches
    refused = call_helper("registry", "add", "other", "--prefix", "*b.azurecr.io", "--type", "basic", "--username",
                         "u", "--password-stdin", stdin="pw")
    assert_one_line_error(refused, "exactly as specific")
    added = add_source(platform)
    assert added.code == 0, added
    assert ("conflict: *b.azurecr.io (same) can match the same hosts as a*.azurecr.io (registration 'mine') and is "
            "exactly as specific, so neither would win") in added.out
    assert set(registrations()) == {"mine", "idp.wider"}
    assert get("ab.azurecr.io")["Secret"] == "my-own-pw"
    assert get("b.azurecr.io")["Secret"] == "pw-wider"


def test_registry_add_over_a_synced_prefix_wins_and_later_syncs_keep_it_so(platform):
    assert add_source(platform).code == 0
    added = add_basic("mine", "registry.example.com/team-a", "me", "my-own-pw")
    assert "Shadowed idp.team-a, synced from source idp: registry.example.com/team-a (team-a) is registered as " \
           "'mine'" in added.out
    assert get("registry.example.com")["Secret"] == "my-own-pw"
    listing = call_helper("registry", "list")
    assert "mine shadows idp.team-a (registry.example.com/team-a), listed by source idp" in listing.out
    assert [r["shadows"] for r in json.loads(call_helper("registry", "list", "--json").out) if r["id"] == "mine"] == [
        ["idp.team-a"]]
    sources = call_helper("source", "list")
    assert "1 registrations, 1 shadowed" in sources.out and "shadowed idp.team-a: registry.example.com/team-a" \
        in sources.out
    synced = call_helper("source", "sync", "idp")
    assert "idp: 0 added, 0 moved, 0 removed, 1 unchanged, 1 shadowed" in synced.out, synced
    assert set(registrations()) == {"mine", "idp.hub"}
    assert get("registry.example.com")["Secret"] == "my-own-pw"
    removed = call_helper("registry", "remove", "mine")
    assert removed.code == 0 and "Restored idp.team-a (registry.example.com/team-a), synced from source idp" in \
        removed.out, removed
    assert get("registry.example.com")["Secret"] == "sync-pw-a"


def test_registry_remove_of_a_synced_registration_says_the_next_sync_brings_it_back(platform):
    assert add_source(platform).code == 0
    removed = call_helper("registry", "remove", "idp.team-a")
    assert removed.code == 0 and "source idp still lists registry.example.com/team-a, so its next sync brings it " \
        "back" in removed.out, removed
    assert set(registrations()) == {"idp.hub"}
    assert call_helper("source", "sync", "idp").code == 0
    assert set(registrations()) == {"idp.hub", "idp.team-a"}


def test_docker_login_over_a_listed_host_wins_and_logout_gives_it_back(platform):
    platform.listing.clear()
    listed(platform, "a", "registry.example.com/team-a")
    listed(platform, "b", "registry.example.com/team-b")
    assert add_source(platform).code == 0
    # Host-only requests for the host cannot choose between the two: docker login stores a registration for it.
    stored = call_helper("store", stdin=json.dumps({"ServerURL": "registry.example.com", "Username": "me",
                                                    "Secret": "login-pw"}))
    assert stored.code == 0, stored
    assert "Shadowed idp.a" in stored.err and "Shadowed idp.b" in stored.err
    assert json.loads(call_helper("creds", "registry.example.com/team-a/app").out)["password"] == "login-pw"
    assert call_helper("erase", stdin="registry.example.com").code == 0
    assert json.loads(call_helper("creds", "registry.example.com/team-a/app").out)["password"] == "pw-a"


# -- a source never fails, loops or slows a get --------------------------------------------------------------------


def test_text_from_the_platform_is_checked_and_never_reaches_a_terminal_raw(platform):
    platform.listing.clear()
    listed(platform, "evil\x1b[31m", "registry.example.com/x", enabled=False)
    listed(platform, "csi", "registry.example.com/\x9b31m")
    listed(platform, "bidi", "registry.example.com/\u202eevil")
    listed(platform, "Upper", "registry.example.com/upper")
    platform.listing.append({"id": 7, "registry": "registry.example.com/seven", "enable_ci": True})
    listed(platform, "fine", "registry.example.com/fine")
    added = add_source(platform)
    assert added.code == 0, added
    for raw in ("\x1b", "\x9b", "\u202e"):
        assert raw not in added.out + added.err
    assert "skipped 'evil\\x1b[31m'" in added.out  # repr's escape
    assert "skipped 'Upper'" in added.out and "skipped the entry with id 7: it needs" in added.out
    assert set(registrations()) == {"idp.fine"}


@pytest.mark.parametrize("listed_id", [".dot", "dot.", "a..b", "-dash", "dash-", "a.-b"])
def test_a_listed_id_that_makes_no_valid_registration_id_is_skipped_as_invalid(listed_id):
    from docker_credential_idp.sources import Source, apply

    source = Source(id="idp", url="https://platform.example.com", org="acme", token="t")
    listing = [{"id": listed_id, "registry": "registry.example.com/bad", "enable_ci": True},
               {"id": "fine", "registry": "registry.example.com/fine", "enable_ci": True}]
    table: dict = {}
    _, report = apply(source, listing, table)
    assert sorted(table) == ["idp.fine"]
    assert len(report.invalid) == 1 and "a registration cannot be named idp.<this id>" in report.invalid[0]


def test_a_source_without_control_characters_in_its_org():
    result = call_helper("source", "add", "idp", "--type", "platform", "--url", "https://api.example.com", "--org",
                        "acme\x1b[2J", "--token-stdin", stdin=TOKEN)
    assert_one_line_error(result, "--org must be a non-empty name")
    assert "\x1b" not in result.err


def test_a_slow_sync_prints_its_steps(platform):
    assert add_source(platform).code == 0
    platform.delay = 1.5  # more than the second after which a sync says what it does
    synced = call_helper("source", "sync", "idp")
    assert synced.code == 0, synced
    steps = [line for line in synced.err.splitlines() if line.strip()]
    assert steps[0].startswith("docker-credential-idp: source 'idp': reading the list of registries from 127.0.0.1")
    assert "registries listed; updating the registry table" in steps[1] and "source sync: finished" in steps[-1]
    assert len(steps) == 3, synced.err


def test_a_due_sync_on_a_read_only_home_answers_from_the_table_with_one_warning(platform):
    from .test_unwritable_home import READ_ONLY, in_namespace

    add_basic("static", "static.example.com", "robot", "static-password-1")
    assert add_source(platform).code == 0
    age_sources(700)  # older than --refresh: the next get that is no cache hit syncs first
    calls = lists(platform)
    for host, secret in (("static.example.com", "static-password-1"), ("registry.example.com", "sync-pw-a")):
        result = in_namespace(READ_ONLY, "get", stdin=host)
        assert result.returncode == 0 and secret in result.stdout, result
        warnings = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(warnings) == 1, result.stderr
        assert "source 'idp' was not synced: cannot write in" in warnings[0] and "Read-only file system" in warnings[0]
        assert "serving the registry table as last synced" in warnings[0] and "without caching" in warnings[0]
    assert lists(platform) == calls  # a sync whose result cannot be kept does not call the platform


def test_one_get_syncs_a_source_once_however_slow_the_platform(platform):
    import os

    from docker_credential_idp.paths import home_dir
    from docker_credential_idp.pipeline import GetPipeline
    from docker_credential_idp.vault import Vault

    assert add_source(platform).code == 0  # --refresh: 10 minutes
    base = time.time()

    def clock() -> float:
        """Each read of the list takes longer than --refresh, as on a platform slower than the interval."""
        if lists(platform) > 6:
            raise RuntimeError("get syncs the source again and again")
        return base + 700 * lists(platform)

    warnings: list[str] = []
    pipeline = GetPipeline(Vault(home_dir(os.environ), os.environ), os.environ, warnings.append, clock)
    assert pipeline.get("registry.example.com").secret == "sync-pw-a"
    assert lists(platform) == 2 and warnings == []  # source add's read, and this get's one sync


def test_progress_says_nothing_of_a_quick_sync_every_step_of_a_slow_one_and_nothing_more_of_a_failure():
    from docker_credential_idp.errors import PROG
    from docker_credential_idp.progress import Progress

    lines: list[str] = []
    quick = Progress(lines.append, PROG, after=1e6)
    quick.step("reading")
    quick.step("updating")
    quick.finish("finished")
    assert lines == []
    now = [0.0]
    slow = Progress(lines.append, PROG, after=0, clock=lambda: now[0])
    slow.step("reading")
    slow.step("updating")
    now[0] = 2.5
    slow.finish("finished")
    assert lines == ["docker-credential-idp: reading", "docker-credential-idp: updating",
                     "docker-credential-idp: finished (2.5 s)"]
    lines.clear()
    failing = Progress(lines.append, PROG, after=0)
    failing.step("reading")
    failing.close()  # the error line is all that follows
    failing.step("late")
    assert lines == ["docker-credential-idp: reading"]


# -- the list call in process (platform_api.py: the creds call's retry rule) ----------------------------------------


def test_the_list_call_retries_a_platform_that_did_not_answer_as_the_creds_call_does():
    from docker_credential_idp.sources import fetch_listing, new_source

    from .test_provider_rules import ScriptedTransport

    listing = [{"id": "team-a", "registry": "registry.example.com/team-a", "type": "basic", "enable_ci": True}]
    transport = ScriptedTransport((503, b""), (200, listing))
    source = new_source("idp", "https://idp.example.com", "acme", TOKEN, None, None, None)
    assert fetch_listing(source, transport) == listing and len(transport.requests) == 2


@pytest.mark.parametrize("answers, fragment, transient", [
    ([(503, b"")], "answered HTTP 503 to the list of registries (after 1 attempt)", True),
    ([ConnectionRefusedError(111, "Connection refused")], "cannot reach the platform API at idp.example.com", True),
    ([(401, b"")], "refused the token (HTTP 401)", False),
])
def test_a_failed_sync_is_recorded_and_transient_when_the_platform_did_not_answer(answers, fragment, transient):
    import os
    from dataclasses import replace

    from docker_credential_idp.errors import ProviderError
    from docker_credential_idp.paths import home_dir
    from docker_credential_idp.sources import Source, new_source, sync
    from docker_credential_idp.vault import Vault

    from .test_provider_rules import ScriptedTransport

    # A timeout shorter than the first pause: one attempt, whatever the machine's speed.
    source = replace(new_source("idp", "https://idp.example.com", "acme", TOKEN, None, 0.4, None), entries=())
    vault = Vault(home_dir(os.environ), os.environ)
    vault.update_with_sources(lambda table, records: records.update(idp=source.to_text()))
    with pytest.raises(ProviderError) as raised:
        sync(vault, "idp", lambda: 5000.0, ScriptedTransport(*answers))
    assert raised.value.message.startswith("source 'idp': ") and fragment in raised.value.message
    assert raised.value.transient is transient
    [text] = Vault(home_dir(os.environ), os.environ).sources().values()  # the last table keeps serving
    record = Source.from_text(text)
    assert record.attempted_at == 5000.0 and f"source 'idp': {record.last_error}" == raised.value.message


@pytest.mark.parametrize("reason, age, due", [
    ("ASKED", 0.0, True), ("DUE", 599.0, False), ("DUE", 600.0, True), ("MISSING", 59.0, False),
    ("MISSING", 60.0, True),
])
def test_policy_a_source_syncs_when_asked_when_older_than_refresh_or_on_a_miss_once_a_minute(reason, age, due):
    from docker_credential_idp.cache_policy import SyncReason, source_due

    assert source_due(1000.0 + age, 1000.0, 600.0, getattr(SyncReason, reason)) is due


# -- a long list in process: its cost grows with its length, not with its square ----------------------------------


def test_a_list_of_thousands_is_placed_checking_each_entry_against_its_host_and_the_patterns_only(monkeypatch):
    """Each listed entry competes only with the registrations on its host and the patterns that can match it. Checked
    against every registration instead (precedence.clash and taking over the whole table, matching.select over all of
    it per request), 5,000 entries took 46 s to place at `source add`, at every `registry add` and at a `get` that
    missed. The count of candidates handed to them is asserted, not a time (the machine's speed varies)."""
    from docker_credential_idp import precedence
    from docker_credential_idp.model import Registration
    from docker_credential_idp.sources import Source, apply

    entries = 5000
    budget = 40 * (entries + 1000)  # a few candidates per entry; the whole table each time is millions
    examined = [0]

    def counting(function):
        def counted(first, candidates, *rest):
            examined[0] += len(candidates)
            assert examined[0] <= budget, "each entry was checked against far more than its host and the patterns"
            return function(first, candidates, *rest)
        return counted

    for name in ("select", "clash", "taking"):
        monkeypatch.setattr(precedence, name, counting(getattr(precedence, name)))
    listing = ([{"id": f"r{n}", "registry": f"r{n}.example.com/p", "enable_ci": True} for n in range(entries)]
               + [{"id": f"t{n}", "registry": f"shared.example.com/t{n}", "enable_ci": True} for n in range(1000)]
               + [{"id": "acr", "registry": "*.azurecr.io", "enable_ci": True}])
    table = {"beside": Registration("beside", "r7.example.com/mine", "basic", origin="add"),  # r7: ambiguous
             "over": Registration("over", "r8.example.com", "basic", origin="store"),  # r8/p: taken from it
             "ones": Registration("ones", "r1*.example.com", "basic", origin="add"),  # r10, r11, r100..: host-only taken
             "other.acr": Registration("other.acr", "*.azurecr.io", "basic", origin="source:other")}  # equal: clash
    source, report = apply(Source("idp", "https://api.example.com", "acme", "token"), listing, table)
    kept_out = {f"idp.r{n}" for n in range(10, entries) if str(n).startswith("1")} | {"idp.r7", "idp.r8", "idp.acr"}
    assert {c.registration_id for c in source.conflicts} == kept_out
    assert len(report.added) == len(listing) - len(kept_out) and len(table) == 4 + len(report.added)
