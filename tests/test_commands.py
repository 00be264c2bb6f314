"""The administrative commands, through the installed program."""

import json
import os
import stat
import subprocess
from pathlib import Path

import platformdirs
import pytest

from docker_credential_idp.paths import home_dir

from .conftest import add_basic, assert_one_line_error, run_helper

SECRET = "cmd-test-secret-71c2"


def add(*extra, stdin=SECRET):
    return run_helper("registry", "add", *extra, stdin=stdin)


def test_add_list_show_remove():
    add_basic("team-a", "Registry.Example.com/team/", "alice", SECRET)
    listing = run_helper("registry", "list", "--json")
    rows = json.loads(listing.out)
    assert [(r["id"], r["prefix"], r["type"], r["secrets"]) for r in rows] == [
        ("team-a", "registry.example.com/team", "basic", ["password"])]
    shown = run_helper("registry", "show", "team-a")
    assert "username: alice" in shown.out and "prefix: registry.example.com/team" in shown.out
    for result in (listing, shown, run_helper("registry", "list"), run_helper("registry", "show", "team-a", "--json")):
        assert SECRET not in result.out + result.err
    assert run_helper("registry", "remove", "team-a").code == 0
    assert json.loads(run_helper("registry", "list", "--json").out) == []
    assert_one_line_error(run_helper("registry", "remove", "team-a"), "no registration with id 'team-a'")
    assert_one_line_error(run_helper("registry", "show", "nope"), "registry list")


def test_add_existing_id_needs_replace_and_prefixes_are_unique():
    add_basic("team-a", "registry.example.com/team", "alice", "one")
    assert_one_line_error(add("team-a", "--prefix", "registry.example.com/team", "--type", "basic", "--username",
                              "alice", "--password-stdin"), "already exists", "--replace")
    result = add("team-a", "--prefix", "registry.example.com/team", "--type", "basic", "--username", "carol",
                 "--password-stdin", "--replace", stdin="two")
    assert result.code == 0, result
    assert json.loads(run_helper("get", stdin="registry.example.com").out)["Username"] == "carol"
    assert_one_line_error(add("other", "--prefix", "registry.example.com/team/", "--type", "basic", "--username",
                              "x", "--password-stdin"), "already registered as 'team-a'")


def test_password_from_environment_variable():
    result = run_helper("registry", "add", "env", "--prefix", "env.example.com", "--type", "basic", "--username", "u",
                        "--password-env", "MY_REGISTRY_PASSWORD", env={"MY_REGISTRY_PASSWORD": SECRET})
    assert result.code == 0, result
    assert json.loads(run_helper("get", stdin="env.example.com").out)["Secret"] == SECRET
    missing = run_helper("registry", "add", "env2", "--prefix", "env2.example.com", "--type", "basic",
                         "--username", "u", "--password-env", "NOT_SET_ANYWHERE")
    assert_one_line_error(missing, "NOT_SET_ANYWHERE is not set")


def test_password_stdin_keeps_inner_whitespace_and_drops_one_newline():
    add_basic("ws", "ws.example.com", "u", " spaced secret \n")
    assert json.loads(run_helper("get", stdin="ws.example.com").out)["Secret"] == " spaced secret "


@pytest.mark.parametrize(
    "args, stdin, fragments",
    [
        (["BadID", "--prefix", "r.io", "--type", "basic", "--username", "u", "--password-stdin"], "p",
         ["invalid registration id"]),
        (["-x", "--prefix", "r.io", "--type", "basic"], "p", []),
        (["a" * 254, "--prefix", "r.io", "--type", "basic", "--username", "u", "--password-stdin"], "p", ["at most 253"]),
        (["ok", "--prefix", "my-org", "--type", "basic", "--username", "u", "--password-stdin"], "p", ["docker.io/my-org"]),
        (["ok", "--prefix", "r.io/app:1", "--type", "basic", "--username", "u", "--password-stdin"], "p", ["tag or digest"]),
        (["ok", "--prefix", "r.io", "--type", "nope", "--username", "u", "--password-stdin"], "p", ["unknown registry type"]),
        (["ok", "--prefix", "r.io", "--type", "basic", "--password-stdin"], "p", ["needs --username"]),
        (["ok", "--prefix", "r.io", "--type", "basic", "--username", "u"], "", ["--password-stdin or --password-env"]),
        (["ok", "--prefix", "r.io", "--type", "basic", "--username", "u", "--password-stdin"], "", ["stdin was empty"]),
        (["ok", "--prefix", "r.io", "--type", "basic", "--username", "u", "--password-stdin", "--password-env", "X"], "p",
         ["one way only"]),
        (["ok", "--prefix", "r.io", "--type", "basic", "--username", "u", "--password-stdin"], b"\xff\xfe", ["not UTF-8"]),
        (["ok", "--prefix", "r.io", "--type", "basic", "--username", "u", "--password-stdin", "--timeout", "-3"], "p",
         ["--timeout"]),
    ],
)
def test_add_bad_input_is_one_line_and_changes_nothing(args, stdin, fragments):
    add_basic("keep", "keep.example.com", "u", "kept")
    before = run_helper("registry", "list", "--json").out
    assert_one_line_error(add(*args, stdin=stdin), *fragments)
    assert run_helper("registry", "list", "--json").out == before


def test_secret_on_the_command_line_is_refused_without_echoing_it():
    result = add("ok", "--prefix", "r.io", "--type", "basic", "--username", "u", "--password", "hunter2-argv")
    line = assert_one_line_error(result, "unknown option --password", "never from the command line")
    assert "hunter2-argv" not in line
    assert_one_line_error(add("ok", "--prefix", "r.io", "--type", "basic", "--username", "u", "--password=hunter2-eq"),
                          "--password")
    assert "hunter2-eq" not in run_helper("registry", "add", "--password=hunter2-eq").err


def test_resolve_explains_and_fails_clearly():
    add_basic("team-a", "registry.example.com/team", "alice", SECRET)
    add_basic("team-b", "registry.example.com/teammates", "bob", SECRET)
    result = run_helper("resolve", "registry.example.com/teammates/app:1.0@sha256:" + "a" * 64, "--json")
    assert json.loads(result.out) == {
        "request": "registry.example.com/teammates/app", "id": "team-b", "prefix": "registry.example.com/teammates",
        "type": "basic", "reason": "longest prefix covering registry.example.com/teammates/app"}
    human = run_helper("resolve", "registry.example.com/team/app")
    assert "team-a" in human.out and SECRET not in human.out
    assert_one_line_error(run_helper("resolve", "registry.example.com"), "DOCKER_CREDENTIAL_IDP_SCOPE")
    assert_one_line_error(run_helper("resolve", "quay.io/x/y"), "no registration serves quay.io/x/y", "registry add")


def test_creds_json_and_env():
    add_basic("team-a", "registry.example.com/team", "alice", "it's $ecret")
    as_json = json.loads(run_helper("creds", "registry.example.com/team/app:1").out)
    assert as_json["username"] == "alice" and as_json["password"] == "it's $ecret"
    assert as_json["registry"] == "registry.example.com" and as_json["registration"] == "team-a"
    as_env = run_helper("creds", "registry.example.com/team/app", "--format", "env").out
    shell = subprocess.run(["sh", "-c", as_env + 'printf %s "$REGISTRY_PASSWORD"'], capture_output=True, text=True)
    assert shell.stdout == "it's $ecret"


def test_configure_docker_adds_and_removes_keeping_other_keys(isolated_env):
    config_path = Path(isolated_env["DOCKER_CONFIG"]) / "config.json"
    config_path.write_text(json.dumps({"auths": {"x.io": {"auth": "eA=="}}, "credHelpers": {"gcr.io": "gcloud"},
                                       "psFormat": "table"}))
    config_path.chmod(0o600)
    add_basic("team-a", "registry.example.com/team", "alice", SECRET)
    add_basic("hub", "docker.io/my-org", "hubuser", SECRET)
    add_basic("local", "127.0.0.1:5000", "u", SECRET)
    assert run_helper("configure-docker").code == 0
    config = json.loads(config_path.read_text())
    assert config["credHelpers"] == {"gcr.io": "gcloud", "registry.example.com": "idp", "docker.io": "idp",
                                     "https://index.docker.io/v1/": "idp", "127.0.0.1:5000": "idp"}
    assert config["auths"] == {"x.io": {"auth": "eA=="}} and config["psFormat"] == "table"
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    assert "already" in run_helper("configure-docker").out
    assert run_helper("configure-docker", "--unset").code == 0
    config = json.loads(config_path.read_text())
    assert config["credHelpers"] == {"gcr.io": "gcloud"} and config["psFormat"] == "table"


def test_configure_docker_creates_private_config_and_refuses_broken_json(isolated_env):
    docker_dir = Path(isolated_env["DOCKER_CONFIG"])
    docker_dir.rmdir()
    add_basic("local", "127.0.0.1:5000", "u", SECRET)
    assert run_helper("configure-docker", "--creds-store").code == 0
    assert stat.S_IMODE(docker_dir.stat().st_mode) == 0o700
    config = json.loads((docker_dir / "config.json").read_text())
    assert config == {"credHelpers": {"127.0.0.1:5000": "idp"}, "credsStore": "idp"}
    (docker_dir / "config.json").write_text("{not json")
    assert_one_line_error(run_helper("configure-docker"), "not valid JSON", "not changed")
    assert (docker_dir / "config.json").read_text() == "{not json"


def test_configure_docker_without_docker_config_uses_home(isolated_env):
    add_basic("local", "127.0.0.1:5000", "u", SECRET)
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_CONFIG"}
    result = run_helper("configure-docker", env={"DOCKER_CONFIG": ""} | {"HOME": env["HOME"]})
    assert result.code == 0, result
    assert json.loads((Path(isolated_env["HOME"]) / ".docker" / "config.json").read_text())["credHelpers"] == {
        "127.0.0.1:5000": "idp"}


def test_vault_status(isolated_env):
    before = run_helper("vault", "status", "--json")
    assert json.loads(before.out)["exists"] is False
    add_basic("local", "127.0.0.1:5000", "u", SECRET)
    status = json.loads(run_helper("vault", "status", "--json").out)
    assert status["registrations"] == 1 and status["path"].startswith(isolated_env["DOCKER_CREDENTIAL_IDP_HOME"])
    assert "key file" in status["key_source"]
    assert "registrations: 1" in run_helper("vault", "status").out


@pytest.mark.parametrize("argv", [["registry", "--help"], ["registry", "add", "--help"], ["resolve", "--help"],
                                  ["creds", "--help"], ["configure-docker", "--help"], ["vault", "status", "--help"],
                                  ["registry", "list", "--help"], ["registry", "show", "--help"],
                                  ["registry", "remove", "--help"], ["vault", "--help"]])
def test_every_command_has_help(argv):
    result = run_helper(*argv)
    assert result.code == 0 and "usage:" in result.out


def test_default_home_follows_platformdirs(monkeypatch, tmp_path):
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert home_dir(env) == Path(platformdirs.user_data_dir("docker-credential-idp", appauthor=False))
    monkeypatch.delenv("XDG_DATA_HOME")
    assert home_dir({"HOME": str(tmp_path)}) == Path(platformdirs.user_data_dir("docker-credential-idp", appauthor=False))
    assert home_dir({"DOCKER_CREDENTIAL_IDP_HOME": "/x/y", "HOME": "/h"}) == Path("/x/y")
