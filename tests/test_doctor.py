"""`doctor`: a healthy set-up reports nothing and exits 0; each problem, made on purpose, is one line (and one JSON
object) naming what is wrong, why it matters and the fix, and exits 1."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import add_basic, call_helper, helper_path, run_helper

HOST = "registry.example.com"


def on_path() -> dict[str, str]:
    """The helper on PATH, as docker finds it."""
    return {"PATH": str(Path(helper_path()).parent) + os.pathsep + os.environ["PATH"]}


def doctor(*extra: str, env: dict[str, str] | None = None, process: bool = False) -> tuple[int, list[dict]]:
    """doctor --json in this process, or as a process (a home's permissions are checked once per process)."""
    result = (run_helper if process else call_helper)("doctor", "--json", *extra, env={**on_path(), **(env or {})})
    assert result.code in (0, 1) and "Traceback" not in result.err, result
    problems = json.loads(result.out)
    assert (result.code == 1) is bool(problems)
    return result.code, problems


def docker_config(content: dict) -> None:
    (Path(os.environ["DOCKER_CONFIG"]) / "config.json").write_text(json.dumps(content))


def healthy() -> None:
    add_basic("r", HOST, "robot", "doctor-pw-1")
    assert call_helper("configure-docker").code == 0


def test_a_healthy_set_up_reports_nothing():
    healthy()
    assert doctor() == (0, [])
    result = call_helper("doctor", env=on_path())
    assert result.code == 0 and result.out.startswith("No problems found")


def only(problems: list[dict], check: str) -> dict:
    found = [p for p in problems if p["check"] == check]
    assert len(found) == 1, problems
    return found[0]


def test_a_helper_named_in_the_config_but_not_on_path():
    healthy()
    docker_config({"credHelpers": {HOST: "idp", "quay.io": "nonexistent"}, "credsStore": "desktop"})
    code, problems = doctor()
    named = {p["subject"].split(" ", 1)[1] for p in problems if "not on PATH" in p["problem"]}
    assert code == 1 and named == {"credHelpers[quay.io]", "credsStore"}
    fixes = {p["subject"].split(" ", 1)[1]: p["fix"] for p in problems if "not on PATH" in p["problem"]}
    # configure-docker leaves another helper's entry alone without --force: the fix must take it over.
    assert fixes["credHelpers[quay.io]"].endswith("docker-credential-idp configure-docker --force quay.io"), fixes
    assert fixes["credsStore"].endswith("docker-credential-idp configure-docker --force --creds-store"), fixes


def test_a_registered_host_routed_to_a_missing_helper_is_fixed_with_force():
    add_basic("r", HOST, "robot", "doctor-pw-1")
    docker_config({"credHelpers": {HOST: "nonexistent"}})
    problems = [p for p in doctor()[1] if HOST in p["subject"]]
    assert len(problems) == 2, problems  # the missing helper, and the registered host routed to it
    assert all(p["fix"].endswith(f"docker-credential-idp configure-docker --force {HOST}") for p in problems), problems


def test_a_host_routed_here_that_nothing_serves():
    healthy()
    docker_config({"credHelpers": {HOST: "idp", "ghost.example.com": "idp"}})
    problem = only(doctor()[1], "docker-config")
    assert problem["subject"] == "ghost.example.com" and "no registration serves it" in problem["problem"]
    assert "--unset" in problem["fix"]


@pytest.mark.parametrize("config, fragment", [
    ({}, "neither credHelpers nor credsStore routes it here"),
    ({"credsStore": "idp"}, "skopeo, podman and buildah read credHelpers but not credsStore"),
    ({"credHelpers": {HOST: "pass"}}, "routes it to docker-credential-pass"),
])
def test_a_registered_host_not_routed_here(config, fragment):
    add_basic("r", HOST, "robot", "doctor-pw-1")
    docker_config(config)
    problems = [p for p in doctor()[1] if p["subject"] == HOST]
    assert len(problems) == 1 and fragment in problems[0]["problem"] + problems[0]["why"], problems
    force = "--force " if "credHelpers" in config else ""  # another helper's entry is taken over only with --force
    assert problems[0]["fix"] == f"docker-credential-idp configure-docker {force}{HOST}"


def test_an_ambiguous_host_names_the_scope_variable():
    add_basic("a", f"{HOST}/team-a", "robot", "pw")
    add_basic("b", f"{HOST}/team-b", "robot", "pw")
    assert call_helper("configure-docker").code == 0
    problem = only(doctor()[1], "ambiguity")
    assert problem["subject"] == HOST and "DOCKER_CREDENTIAL_IDP_SCOPE" in problem["fix"]
    assert doctor(env={"DOCKER_CREDENTIAL_IDP_SCOPE": "a"}) == (0, [])


def test_a_containers_auth_file_that_shadows_the_helper(tmp_path):
    healthy()
    runtime = tmp_path / "run"
    (runtime / "containers").mkdir(parents=True)
    (runtime / "containers" / "auth.json").write_text(json.dumps({"auths": {HOST: {"auth": "eDp5"}, "quay.io": {}}}))
    problem = only(doctor(env={"XDG_RUNTIME_DIR": str(runtime)})[1], "containers-auth")
    assert problem["subject"] == f"{runtime}/containers/auth.json auths[{HOST}]"
    assert problem["fix"].startswith(f"podman logout {HOST}")
    other = tmp_path / "auth.json"
    other.write_text(json.dumps({"auths": {f"https://{HOST}/v2/": {"auth": "eDp5"}}}))
    assert only(doctor(env={"REGISTRY_AUTH_FILE": str(other)})[1], "containers-auth")["subject"].startswith(str(other))


def test_a_vault_home_others_can_write():
    healthy()
    home = Path(os.environ["DOCKER_CREDENTIAL_IDP_HOME"])
    home.chmod(0o777)
    try:
        problem = only(doctor(process=True)[1], "vault")
        assert "writable by group or others" in problem["problem"] and f"chmod 700 {home}" in problem["problem"]
    finally:
        home.chmod(0o700)


def test_registrations_whose_identity_cannot_be_found(tmp_path):
    healthy()
    assert call_helper("registry", "add", "ecr", "--prefix", "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "--type",
                      "ecr", "--profile", "ghost").code == 0
    token_file = tmp_path / "federated"
    token_file.write_text("t")
    assert call_helper("registry", "add", "acr", "--prefix", "x.azurecr.io", "--type", "acr", "--tenant", "t",
                      "--client-id", "c", "--federated-token-file", str(token_file)).code == 0
    token_file.unlink()
    assert call_helper("registry", "add", "gcr", "--prefix", "gcr.io/p", "--type", "gcr").code == 0
    assert call_helper("configure-docker").code == 0
    env = {"AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "CLOUDSDK_CONFIG": str(tmp_path / "gcloud")}
    problems = {p["subject"]: p for p in doctor(env=env)[1] if p["check"] == "identity"}
    assert set(problems) == {"registration ecr (ecr)", "registration acr (acr)", "registration gcr (gcr)"}
    assert "profile 'ghost'" in problems["registration ecr (ecr)"]["problem"]
    assert str(token_file) in problems["registration acr (acr)"]["problem"]
    assert "Application Default Credentials" in problems["registration gcr (gcr)"]["problem"]
    (tmp_path / "gcloud").mkdir()
    (tmp_path / "gcloud" / "application_default_credentials.json").write_text("{}")
    assert "registration gcr (gcr)" not in {p["subject"] for p in doctor(env=env)[1]}


def test_running_under_sudo():
    if os.geteuid() != 0:
        pytest.skip("needs root: sudo is only a problem for a root process")  # never skipped in CI, which runs as root
    healthy()
    problem = only(doctor(env={"SUDO_USER": "alice"})[1], "sudo")
    assert "root's docker config" in problem["why"]


def test_problems_are_one_line_each_in_text():
    add_basic("r", HOST, "robot", "doctor-pw-1")
    docker_config({"credHelpers": {"ghost.example.com": "idp"}})
    result = call_helper("doctor", env=on_path())
    assert result.code == 1 and len(result.out.splitlines()) == 2, result
    assert all("; fix: " in line for line in result.out.splitlines())
    assert "doctor-pw-1" not in result.out + result.err


# -- every problem in one run: a refused vault is reported, and every check that needs no secret still runs -------


def vault_problem(problems: list[dict]) -> dict:
    return only(problems, "vault")


def test_a_refused_home_is_reported_and_routing_is_still_checked_from_the_file():
    healthy()
    docker_config({"credHelpers": {HOST: "idp", "ghost.example.com": "idp", "quay.io": "nonexistent"}})
    home = Path(os.environ["DOCKER_CREDENTIAL_IDP_HOME"])
    home.chmod(0o777)
    try:
        code, problems = doctor(process=True)
    finally:
        home.chmod(0o700)
    assert "writable by group or others" in vault_problem(problems)["problem"]
    assert "skipped the identity checks" in vault_problem(problems)["why"]
    # The registered host is still served by the table the file holds: no false "served by nothing" for it.
    assert {p["subject"] for p in problems if p["check"] == "docker-config"} == {
        "ghost.example.com", f"{os.environ['DOCKER_CONFIG']}/config.json credHelpers[quay.io]"}, problems


def test_a_rolled_back_vault_is_reported_without_false_findings():
    healthy()
    vault_file = Path(os.environ["DOCKER_CREDENTIAL_IDP_HOME"]) / "vault.bin"
    backup = vault_file.read_bytes()
    add_basic("later", "later.example.com", "robot", "doctor-pw-2")
    vault_file.write_bytes(backup)
    code, problems = doctor()
    assert "went back" in vault_problem(problems)["problem"] and len(problems) == 1, problems


def test_a_vault_that_cannot_be_decrypted_skips_what_needs_its_registrations():
    healthy()
    docker_config({"credHelpers": {HOST: "idp", "quay.io": "nonexistent"}})
    code, problems = doctor(env={"DOCKER_CREDENTIAL_IDP_KEY": "A" * 43 + "="})
    assert "does not open" in vault_problem(problems)["problem"]
    assert "skipped the checks that need them" in vault_problem(problems)["why"]
    # Checks that need no registration still run; none that needs one reports a guess.
    assert [p["subject"] for p in problems if p["check"] != "vault"] == [
        f"{os.environ['DOCKER_CONFIG']}/config.json credHelpers[quay.io]"], problems


# -- docker's config.json --------------------------------------------------------------------------------------------


def test_an_invalid_credhelpers_key_routed_here_is_its_own_finding():
    healthy()
    docker_config({"credHelpers": {HOST: "idp", f"{HOST}:0": "idp"}})
    problem = only(doctor()[1], "docker-config")
    assert problem["subject"] == f"{HOST}:0" and "not a registry host" in problem["problem"], problem
    assert "credHelpers" in problem["fix"]


@pytest.mark.parametrize("config, where, fragment, containers_fail", [
    ({"credHelpers": {HOST: "idp", "quay.io": 5}}, "credHelpers[quay.io]", "not a helper name", True),
    ({"credHelpers": {HOST: "idp"}, "auths": {"quay.io": "x"}}, "auths[quay.io]", "not a JSON object", True),
    ({"credHelpers": {HOST: "idp"}, "auths": []}, "auths", "not a JSON object", True),
    ({"credHelpers": {HOST: "idp"}, "credsStore": 5}, "credsStore", "not a JSON string", False),
])
def test_an_entry_docker_cannot_read(config, where, fragment, containers_fail):
    healthy()
    docker_config(config)
    problem = only(doctor()[1], "docker-config")
    assert problem["subject"] == f"{os.environ['DOCKER_CONFIG']}/config.json {where}", problem
    assert fragment in problem["problem"] and ("skopeo" in problem["why"]) is containers_fail


def docker_hub_keys() -> list[str]:
    from docker_credential_idp.dockerconfig import keys_for_host

    return keys_for_host("docker.io")


@pytest.mark.parametrize("missing", docker_hub_keys())
def test_docker_hub_routed_here_under_some_keys_only(missing):
    add_basic("hub", "docker.io", "robot", "doctor-pw-1")
    docker_config({"credHelpers": {key: "idp" for key in docker_hub_keys() if key != missing}})
    problem = only(doctor()[1], "docker-config")
    assert problem["subject"] == "docker.io" and f"not under {missing}" in problem["problem"], problem
    assert problem["fix"] == "docker-credential-idp configure-docker docker.io"
    docker_config({"credHelpers": {key: "idp" for key in docker_hub_keys()}})
    assert doctor() == (0, [])


@pytest.mark.parametrize("field", ["auth", "password", "identitytoken"])
def test_an_auths_entry_holding_a_password_for_a_host_served_here(field):
    healthy()
    value = "cm9ib3Q6YXV0aHMtcHctMQ==" if field == "auth" else "auths-pw-1-secret"
    docker_config({"credHelpers": {HOST: "idp"},
                   "auths": {f"https://{HOST}": {field: value}, "quay.io": {field: value}, HOST: {}}})
    result = call_helper("doctor", env=on_path())
    assert value not in result.out + result.err
    problem = only(doctor()[1], "docker-config")
    assert problem["subject"] == f"{os.environ['DOCKER_CONFIG']}/config.json auths[https://{HOST}]", problem
    assert field in problem["problem"] and f"docker logout https://{HOST}" in problem["fix"]


def test_text_from_the_config_is_shown_escaped():
    healthy()
    docker_config({"credHelpers": {HOST: "idp", "evil\x1b[2J.example.com": "idp"}})
    result = call_helper("doctor", env=on_path())
    assert result.code == 1 and "\x1b" not in result.out and "\\x1b[2J" in result.out, result


# -- files that are not what a config should be: never a hang, never unbounded ----------------------------------------


def run_doctor_bounded(env: dict[str, str] | None = None) -> tuple[int, list[dict]]:
    """doctor under a memory limit and a timeout: a regression that reads /dev/zero or waits on a FIFO fails
    here rather than taking the machine's memory or the suite's time."""
    import resource
    import subprocess

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    completed = subprocess.run([helper_path(), "doctor", "--json"], capture_output=True, timeout=30, check=False,
                               env={**os.environ, **on_path(), **(env or {})}, preexec_fn=limit_memory)
    assert completed.returncode in (0, 1) and b"Traceback" not in completed.stderr, completed
    return completed.returncode, json.loads(completed.stdout)


def make_unusual(path: Path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "FIFO":
        os.mkfifo(path)
    elif kind == "character device":
        path.symlink_to("/dev/zero")  # a link is followed, as docker follows a dotfile manager's link
    else:
        with open(path, "wb") as sparse:
            sparse.truncate(17 * 1024 * 1024)


@pytest.mark.parametrize("kind, said", [("FIFO", "is a FIFO, not a regular file"),
                                        ("character device", "is a character device, not a regular file"),
                                        ("huge", "larger than")])
@pytest.mark.parametrize("where", ["docker-config", "containers-auth"])
def test_a_fifo_device_or_huge_file_where_a_config_should_be(where, kind, said):
    healthy()
    if where == "docker-config":
        path = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
        path.unlink()
    else:
        path = Path(os.environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"
    make_unusual(path, kind)
    code, problems = run_doctor_bounded()
    found = only(problems, where)
    assert found["subject"] == str(path) and said in found["problem"], found
    assert "rm " not in found["fix"], found  # never advice to remove what may be a device


def test_dev_null_as_docker_config_reads_as_empty():
    """docker reads an empty config.json as no settings (measured: `docker context ls` says nothing of it)."""
    add_basic("r", HOST, "robot", "doctor-pw-1")
    path = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    path.symlink_to("/dev/null")
    problems = doctor()[1]
    assert [p["subject"] for p in problems] == [HOST] and "neither credHelpers" in problems[0]["problem"], problems


def test_a_device_as_registry_auth_file_is_fixed_by_pointing_the_variable_elsewhere():
    """skopeo 1.9, podman 4.3 and buildah 1.28 fail every registry with REGISTRY_AUTH_FILE=/dev/null (measured:
    "unmarshaling JSON at /dev/null: unexpected end of JSON input"), so it is a finding; the fix never removes it."""
    healthy()
    for device in ("/dev/null", "/dev/zero"):
        problem = only(run_doctor_bounded(env={"REGISTRY_AUTH_FILE": device})[1], "containers-auth")
        assert problem["subject"] == device and "rm " not in problem["fix"], problem
        assert "point REGISTRY_AUTH_FILE at a regular file" in problem["fix"], problem


@pytest.mark.parametrize("content", ["not json", "", "[]"])
def test_a_containers_auth_file_that_is_not_json(content):
    healthy()
    path = Path(os.environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"
    path.parent.mkdir()
    path.write_text(content)
    problem = only(doctor()[1], "containers-auth")
    assert problem["subject"] == str(path) and "fail for every registry" in problem["why"], problem


def test_registry_auth_file_is_the_only_containers_auth_file_read(tmp_path):
    healthy()
    shadowing = Path(os.environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"
    shadowing.parent.mkdir()
    shadowing.write_text(json.dumps({"auths": {HOST: {"auth": "eDp5"}}}))
    assert only(doctor()[1], "containers-auth")["subject"].startswith(str(shadowing))
    alone = tmp_path / "alone.json"
    alone.write_text(json.dumps({"auths": {}}))
    assert doctor(env={"REGISTRY_AUTH_FILE": str(alone)}) == (0, [])


def test_the_containers_auth_file_under_xdg_config_home():
    healthy()
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "containers" / "auth.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"auths": {HOST: {"auth": "eDp5"}}}))
    assert only(doctor()[1], "containers-auth")["subject"] == f"{path} auths[{HOST}]"


# -- doctor --online: progress on stderr once the run takes more than a second ----------------------------------------


@pytest.mark.parametrize("seconds_each, timer_fires, shown", [
    (0.0, False, []),  # a quick run prints nothing
    (0.7, False, ["c"]),  # steps that start after the first second are shown
    (0.0, True, ["a", "b", "c"]),  # a first step still running when the second passes is shown, then every step
])
def test_online_progress_once_the_run_takes_more_than_a_second(monkeypatch, seconds_each, timer_fires, shown):
    from types import SimpleNamespace

    from docker_credential_idp import doctor as checks
    from docker_credential_idp import progress
    from docker_credential_idp.table import RegistryTable
    from docker_credential_idp.vault import Vault

    for name in ("a", "b", "c"):
        add_basic(name, f"{name}.example.com", "robot", "doctor-pw-1")
    assert call_helper("configure-docker").code == 0
    clock = [1000.0]
    timers: list = []
    monkeypatch.setattr(progress, "daemon_timer", lambda seconds, callback: timers.append(callback) or (lambda: None))

    class Handshakes(RegistryTable):
        def test_registration(self, registration, request):
            if timer_fires and registration.id == "a":
                timers[0]()
            clock[0] += seconds_each
            return SimpleNamespace(ok=True, verdict=None)

    env = {**os.environ, **on_path()}
    lines: list[str] = []
    table = Handshakes(Vault(env["DOCKER_CREDENTIAL_IDP_HOME"], env), env, now=lambda: clock[0])
    assert checks.run(table, online=True, progress=lines.append) == []
    assert lines == [f"doctor: registry test {n} ({'abc'.index(n) + 1}/3): {n}.example.com" for n in shown]
