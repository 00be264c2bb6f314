"""The protocol: the pure handler against an in-memory service, then the program in this process (call_helper: cli.main
with its streams), and the installed program end to end for what only a process shows (usage, streams)."""

import json
import os
from pathlib import Path

import pytest

from docker_credential_idp import protocol
from docker_credential_idp.errors import CredentialsNotFound
from docker_credential_idp.model import Credential

from .conftest import add_basic, assert_one_line_error, call_helper, run_helper


class MemoryService:
    def __init__(self):
        self.stored = {}

    def get(self, server):
        if server not in self.stored:
            raise CredentialsNotFound()
        return Credential(*self.stored[server])

    def store(self, server, username, secret):
        self.stored[server] = (username, secret)

    def erase(self, server):
        if self.stored.pop(server, None) is None:
            raise CredentialsNotFound()

    def list_servers(self):
        return {server: username for server, (username, _) in self.stored.items()}


def call(verb, stdin, service):
    out, status = protocol.handle(verb, stdin if isinstance(stdin, bytes) else stdin.encode(), lambda: service)
    return out.decode(), status


def test_store_get_list_erase_round_trip():
    service = MemoryService()
    assert call("store", '{"ServerURL":"reg.io","Username":"u","Secret":"s"}', service) == ("", 0)
    out, status = call("get", "reg.io\n", service)
    assert status == 0 and json.loads(out) == {"ServerURL": "reg.io", "Username": "u", "Secret": "s"}
    assert out.endswith("\n")
    assert json.loads(call("list", "unused", service)[0]) == {"reg.io": "u"}
    assert call("erase", "reg.io", service) == ("", 0)
    assert call("get", "reg.io", service) == ("credentials not found in native keychain\n", 1)


def test_identity_token_round_trips_as_username_token():
    service = MemoryService()
    call("store", '{"ServerURL":"reg.io","Username":"<token>","Secret":"refresh"}', service)
    assert json.loads(call("get", "reg.io", service)[0])["Username"] == "<token>"


@pytest.mark.parametrize(
    "stdin, message",
    [
        (b"", "store expects a JSON object"),
        (b"not json", "store expects a JSON object"),
        (b"[1,2]", "store expects a JSON object"),
        (b'{"ServerURL":"","Username":"u","Secret":"s"}', "no credentials server URL"),
        (b'{"ServerURL":"reg.io","Username":"","Secret":"s"}', "no credentials username"),
        (b'{"ServerURL":"reg.io","Username":5,"Secret":"s"}', "must be strings"),
        (b"\xff\xfe", "not UTF-8"),
        (b"x" * (protocol.MAX_INPUT_BYTES + 1), "larger than"),
    ],
)
def test_store_bad_input_is_one_clear_line(stdin, message):
    service = MemoryService()
    out, status = call("store", stdin, service)
    assert status == 1 and message in out and out.count("\n") == 1
    assert service.stored == {}


@pytest.mark.parametrize("verb", ["get", "erase"])
@pytest.mark.parametrize("stdin, message", [(b"", "no credentials server URL"), (b"  \n", "no credentials server URL"),
                                            (b"\xc3\x28", "not UTF-8")])
def test_get_erase_bad_input(verb, stdin, message):
    out, status = call(verb, stdin, MemoryService())
    assert status == 1 and message in out


def test_version_and_unknown_verb_need_no_service():
    def no_service():
        raise AssertionError("version must not open the vault")

    out, status = protocol.handle("version", b"", no_service)
    assert status == 0 and out.decode().startswith("docker-credential-idp (docker_credential_idp) ")
    out, status = protocol.handle("frobnicate", b"", no_service)
    assert (out, status) == (b"docker-credential-idp: unknown action: frobnicate\n", 1)


# -- the installed program ---------------------------------------------------------------------------------------


def test_program_usage_unknown_and_version():
    result = run_helper()
    assert result.code == 1 and result.out == "Usage: docker-credential-idp <store|get|erase|list|version>\n"
    result = run_helper("bogus")
    assert result.code == 1 and result.out == "docker-credential-idp: unknown action: bogus\n"
    for flag in ("version", "--version", "-v"):
        result = run_helper(flag)
        assert result.code == 0 and "docker-credential-idp" in result.out and result.err == ""
    for flag in ("--help", "-h"):
        result = run_helper(flag)
        assert result.code == 0 and "registry" in result.out


def test_program_get_not_found_prints_exactly_the_docker_text():
    result = run_helper("get", stdin="registry.example.com\n")
    assert (result.code, result.out) == (1, "credentials not found in native keychain\n")


def test_program_get_serves_registration_and_stdout_is_only_protocol():
    add_basic("team-a", "registry.example.com/team", "alice", "pa55-word")
    result = run_helper("get", stdin="registry.example.com")
    assert result.code == 0, result
    assert json.loads(result.out) == {"ServerURL": "registry.example.com", "Username": "alice", "Secret": "pa55-word"}
    assert result.err == ""


def test_program_ambiguous_host_is_one_line_on_stdout():
    add_basic("team-a", "registry.example.com/team", "alice", "a-secret")
    add_basic("team-b", "registry.example.com/teammates", "bob", "b-secret")
    result = call_helper("get", stdin="registry.example.com")
    line = assert_one_line_error(result, "team-a", "team-b", "DOCKER_CREDENTIAL_IDP_SCOPE", stream="out")
    assert "a-secret" not in line and "b-secret" not in line
    scoped = call_helper("get", stdin="registry.example.com", env={"DOCKER_CREDENTIAL_IDP_SCOPE": "team-b"})
    assert json.loads(scoped.out)["Username"] == "bob"


def test_program_store_creates_then_erase_removes():
    result = call_helper("store", stdin='{"ServerURL":"127.0.0.1:5000","Username":"u1","Secret":"first-secret"}')
    assert result.code == 0 and result.out == "", result
    assert json.loads(call_helper("list", stdin="unused").out) == {"127.0.0.1:5000": "u1"}
    call_helper("store", stdin='{"ServerURL":"127.0.0.1:5000","Username":"u2","Secret":"second-secret"}')
    got = json.loads(call_helper("get", stdin="127.0.0.1:5000").out)
    assert (got["Username"], got["Secret"]) == ("u2", "second-secret")
    assert call_helper("erase", stdin="127.0.0.1:5000").code == 0
    assert call_helper("get", stdin="127.0.0.1:5000").out == "credentials not found in native keychain\n"
    assert call_helper("vault", "status", "--json").out.count('"cached_tokens": 0') == 1  # nothing lingers
    erase_again = call_helper("erase", stdin="127.0.0.1:5000")
    assert (erase_again.code, erase_again.out) == (1, "credentials not found in native keychain\n")


def test_program_store_for_docker_hub_and_list_key():
    call_helper("store", stdin='{"ServerURL":"https://index.docker.io/v1/","Username":"hubuser","Secret":"hub-token"}')
    assert json.loads(call_helper("list").out) == {"https://index.docker.io/v1/": "hubuser"}
    for name in ("docker.io", "https://index.docker.io/v1/", "registry-1.docker.io"):
        assert json.loads(call_helper("get", stdin=name).out)["Secret"] == "hub-token"


def test_program_erase_keeps_registrations_added_by_hand_succeeds_and_says_so_once():
    # trivy and Helm treat a failing logout as fatal: a host a registration serves logs out, with a note, and the
    # registration stays.
    add_basic("corp", "registry.example.com", "alice", "hand-added")
    notes = []
    for _ in range(4):  # docker logout with credsStore erases up to four times per host
        result = call_helper("erase", stdin="registry.example.com")
        assert (result.code, result.out) == (0, ""), result
        notes += [line for line in result.err.splitlines() if "registry remove corp" in line]
    assert len(notes) == 1, notes
    assert json.loads(call_helper("get", stdin="registry.example.com").out)["Secret"] == "hand-added"


def test_program_erase_of_a_host_a_path_scoped_or_pattern_registration_serves_succeeds():
    add_basic("team-a", "registry.example.com/team-a", "alice", "team-a-password")
    add_basic("any-local", "local*.example.com", "dev", "pattern-password")
    for host, served_by in (("registry.example.com", "team-a"), ("local1.example.com", "any-local")):
        result = call_helper("erase", stdin=host)
        assert (result.code, result.out) == (0, ""), result
        assert [line for line in result.err.splitlines() if line] == [
            line for line in result.err.splitlines() if f"registry remove {served_by}" in line] != [], result
    add_basic("team-b", "registry.example.com/team-b", "bob", "team-b-password")  # now ambiguous for the host alone
    result = call_helper("erase", stdin="https://registry.example.com")
    assert (result.code, result.out) == (0, ""), result
    assert "team-a" in result.err and "team-b" in result.err
    assert [json.loads(call_helper("get", stdin=f"registry.example.com/{team}/app").out)["Username"]
            for team in ("team-a", "team-b")] == ["alice", "bob"]


def test_program_erase_of_a_host_nobody_serves_is_not_found():
    add_basic("corp", "registry.example.com/team", "alice", "hand-added")
    for host in ("other.example.com", "registry.example.com:5000", "https://index.docker.io/v1/"):
        result = call_helper("erase", stdin=host)
        assert (result.code, result.out, result.err) == (1, "credentials not found in native keychain\n", ""), result


def test_program_scope_naming_two_teams_of_the_host_is_one_line_naming_both():
    add_basic("team-a", "registry.example.com/team-a", "alice", "secret-a")
    add_basic("team-b", "registry.example.com/team-b", "bob", "secret-b")
    for scope in ("team-a,team-b", "team-b,team-a"):
        result = call_helper("get", stdin="registry.example.com", env={"DOCKER_CREDENTIAL_IDP_SCOPE": scope})
        line = assert_one_line_error(result, "team-a (registry.example.com/team-a)",
                                     "team-b (registry.example.com/team-b)", "DOCKER_CREDENTIAL_IDP_SCOPE", stream="out")
        assert "secret-" not in line
    # a path still takes its own team's registration, whatever the scope says
    answer = call_helper("get", stdin="registry.example.com/team-b/app", env={"DOCKER_CREDENTIAL_IDP_SCOPE": "team-a,team-b"})
    assert json.loads(answer.out)["Username"] == "bob"


def registrations_as_stored() -> list[dict]:
    from docker_credential_idp.paths import home_dir
    from docker_credential_idp.vault import Vault

    return [r.to_record() for r in Vault(home_dir(os.environ), os.environ).registrations().values()]


def test_login_over_a_hand_added_registration_is_served_until_logout_restores_it():
    add_basic("corp", "registry.example.com", "admin", "admin-password")
    before = registrations_as_stored()
    login = call_helper("store", stdin=json.dumps({"ServerURL": "registry.example.com", "Username": "bob",
                                                  "Secret": "bobs-own-password"}))
    assert login.code == 0, login
    got = json.loads(call_helper("get", stdin="registry.example.com").out)
    assert (got["Username"], got["Secret"]) == ("bob", "bobs-own-password")
    assert json.loads(call_helper("list").out) == {"registry.example.com": "bob"}
    shown = call_helper("registry", "show", "corp")
    assert "login: bob" in shown.out and "username: admin" in shown.out
    for server in ("registry.example.com", "registry.example.com", "http://registry.example.com",
                   "https://registry.example.com"):  # what docker logout sends with credsStore
        call_helper("erase", stdin=server)
    assert registrations_as_stored() == before
    got = json.loads(call_helper("get", stdin="registry.example.com").out)
    assert (got["Username"], got["Secret"]) == ("admin", "admin-password")


def test_program_store_updates_its_own_login():
    call_helper("store", stdin='{"ServerURL":"registry.example.com","Username":"alice","Secret":"old-password"}')
    call_helper("store", stdin='{"ServerURL":"registry.example.com","Username":"alice","Secret":"new-password"}')
    assert json.loads(call_helper("get", stdin="registry.example.com").out)["Secret"] == "new-password"
    assert json.loads(call_helper("list").out) == {"registry.example.com": "alice"}
    assert len(registrations_as_stored()) == 1


def test_list_keys_are_what_the_daemon_looks_up_and_get_answers_them_as_a_host():
    add_basic("team-a", "registry.example.com/team-a", "alice", "secret-a")
    add_basic("team-b", "registry.example.com/team-b", "bob", "secret-b")
    add_basic("acme", "docker.io/acme", "hubuser", "hub-secret")
    add_basic("plain", "other.example.com:5000", "carol", "secret-c")
    listed = call_helper("list")
    # the daemon strips keys to hosts and takes the first match: a path-keyed list hands team-a's password to team-b
    assert json.loads(listed.out) == {"https://index.docker.io/v1/": "hubuser", "other.example.com:5000": "carol"}
    assert [line for line in listed.err.splitlines() if "registry.example.com" in line] == [
        line for line in listed.err.splitlines() if line.strip()] and len(listed.err.splitlines()) == 1
    scoped = {"DOCKER_CREDENTIAL_IDP_SCOPE": "team-b"}
    keys = json.loads(call_helper("list", env=scoped).out)
    assert keys == {"https://index.docker.io/v1/": "hubuser", "other.example.com:5000": "carol",
                    "registry.example.com": "bob"}
    for key, username in keys.items():
        host_only = json.loads(call_helper("get", stdin=key, env=scoped).out)
        assert host_only["Username"] == username


def test_list_fetches_nothing():
    script = "echo called >> \"$MARK\"; echo u:p"
    result = call_helper("registry", "add", "s", "--prefix", "script.example.com", "--type", "script", "--script-stdin",
                        stdin=script)
    assert result.code == 0, result
    mark = Path(os.environ["HOME"]) / "mark"
    assert json.loads(call_helper("list", env={"MARK": str(mark)}).out) == {"script.example.com": ""}
    assert not mark.exists()


def test_failures_other_than_not_found_say_the_same_line_on_stderr_once():
    add_basic("team-a", "registry.example.com/team-a", "alice", "secret-a")
    add_basic("team-b", "registry.example.com/team-b", "bob", "secret-b")
    for verb, stdin in (("get", "registry.example.com"), ("get", ""), ("store", "{}"), ("erase", "")):
        result = run_helper(verb, stdin=stdin)
        assert result.code == 1 and result.out.strip(), result
        assert result.err.splitlines() == [result.out.strip()], result
    not_found = run_helper("get", stdin="nowhere.example.com")
    assert (not_found.out, not_found.err) == ("credentials not found in native keychain\n", "")
