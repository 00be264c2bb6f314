"""A real docker daemon (Debian's dockerd 20.10) pulls, pushes and builds against the authenticated registry, the
credential coming only from this helper through credHelpers or credsStore; every case has a wrong-password control
that must fail.

Clients: the docker CLI 28 on PATH (pull, push, login, logout; its `docker build` is the legacy builder, as it has no
buildx), Debian's docker CLI 20.10 for BuildKit (DOCKER_BUILDKIT=1), and docker-py's images.build. The legacy
builder and docker-py send the daemon every key `list` returns with the answer of `get KEY`; the daemon strips the
keys to hosts and takes the first match, which is why `list` must return hosts."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ..conftest import add_basic, run_helper
from .conftest import ALICE_PASSWORD, BOB_PASSWORD, IMAGE, TAG, run_client, write_docker_config

pytestmark = pytest.mark.e2e

DEBIAN_DOCKER = "/usr/bin/docker"  # the CLI of Debian's docker.io, 20.10: BuildKit through its session
ROUTES = ("credHelpers", "credsStore")


@pytest.fixture(autouse=True)
def docker_host(daemon, monkeypatch) -> str:
    monkeypatch.setenv("DOCKER_HOST", daemon.url)
    return daemon.url


def route(registry, how: str) -> None:
    write_docker_config({"credHelpers": {registry.host: "idp"}} if how == "credHelpers" else {"credsStore": "idp"})


def docker(*argv: str, cli: str = "docker", env: dict[str, str] | None = None, stdin: bytes = b""):
    if env:
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
    try:
        return run_client(cli, *argv, stdin=stdin)
    finally:
        for name, value in (saved.items() if env else ()):
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def forget(*images: str) -> None:
    """Drop images from the daemon, so that the next pull or build must ask the registry (and the helper)."""
    subprocess.run(["docker", "rmi", "-f", *images], capture_output=True, check=False, timeout=60)


def build_context(tmp_path: Path, base: str) -> Path:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {base}\nRUN echo built-through-the-helper > /built.txt\n")
    return context


def legacy_build(context: Path, tag: str) -> tuple[bool, str]:
    """docker CLI 28's `docker build`, the legacy builder: list, get of every key, all sent to the daemon."""
    result = docker("build", "--pull", "--network", "none", "-t", tag, str(context), env={"DOCKER_BUILDKIT": "0"})
    return result.returncode == 0, result.stdout + result.stderr


def buildkit_build(context: Path, tag: str) -> tuple[bool, str]:
    """Debian's CLI 20.10 with BuildKit: the daemon asks the CLI's session, which asks the helper per host. BuildKit
    keeps an answer for about five minutes, so its cache is pruned first: each build asks afresh."""
    docker("builder", "prune", "-af", cli=DEBIAN_DOCKER)
    result = docker("build", "--pull", "--network", "none", "--progress", "plain", "-t", tag, str(context),
                    cli=DEBIAN_DOCKER, env={"DOCKER_BUILDKIT": "1"})
    return result.returncode == 0, result.stdout + result.stderr


def docker_py_build(context: Path, tag: str) -> tuple[bool, str]:
    """docker-py's images.build: like the legacy builder, every list key with its get answer."""
    import docker as docker_py

    client = docker_py.DockerClient(base_url=os.environ["DOCKER_HOST"], timeout=120)
    try:
        client.images.build(path=str(context), tag=tag, pull=True, network_mode="none", rm=True)
        return True, ""
    except docker_py.errors.BuildError as error:
        return False, str(error)
    finally:
        client.close()


BUILDERS = {"legacy": legacy_build, "buildkit": buildkit_build, "docker-py": docker_py_build}


# -- pull, push, build: each through credHelpers and credsStore, each with its control -------------------------------


@pytest.mark.parametrize("how", ROUTES)
def test_docker_pull(registry, how):
    image = f"{registry.host}/{IMAGE}:{TAG}"
    add_basic("local", registry.host, "alice", ALICE_PASSWORD)
    route(registry, how)
    forget(image)
    pulled = docker("pull", image)
    assert pulled.returncode == 0, pulled.stderr
    forget(image)
    add_basic("local", registry.host, "alice", "not-alices-password", "--replace")
    refused = docker("pull", image)
    assert refused.returncode != 0, refused.stdout


@pytest.mark.parametrize("how", ROUTES)
def test_docker_push(registry, daemon, how, tmp_path):
    target = f"{registry.host}/pushed/{how.lower()}:{TAG}"
    daemon.import_image(target, busybox_rootfs(tmp_path))
    add_basic("local", registry.host, "alice", ALICE_PASSWORD)
    route(registry, how)
    pushed = docker("push", target)
    assert pushed.returncode == 0, pushed.stderr
    add_basic("local", registry.host, "alice", "not-alices-password", "--replace")
    refused = docker("push", target)
    assert refused.returncode != 0, refused.stdout


@pytest.mark.parametrize("how", ROUTES)
@pytest.mark.parametrize("builder", BUILDERS)
def test_build_pulls_its_base(registry, how, builder, tmp_path):
    base = f"{registry.host}/team/base:{TAG}"
    context = build_context(tmp_path, base)
    add_basic("local", registry.host, "alice", ALICE_PASSWORD)
    route(registry, how)
    forget(base)
    built, why = BUILDERS[builder](context, f"{builder}-{how.lower()}:1")
    assert built, why
    forget(base)
    add_basic("local", registry.host, "alice", "not-alices-password", "--replace")
    refused, why = BUILDERS[builder](context, f"{builder}-{how.lower()}:2")
    assert not refused, why


# -- two teams on one host: the daemon must be handed the scoped team's credential, never the other's -----------------


def two_teams(registry) -> None:
    """team-a's registration holds a wrong password: a build that is sent team-a's credential fails."""
    add_basic("team-a", f"{registry.host}/team-a", "alice", "team-a-wrong-password")
    add_basic("team-b", f"{registry.host}/team-b", "alice", ALICE_PASSWORD)
    write_docker_config({"credsStore": "idp"})


def test_credsstore_legacy_build_gets_the_scoped_teams_credential(registry, monkeypatch, tmp_path):
    base = f"{registry.host}/team-b/base:{TAG}"
    context = build_context(tmp_path, base)
    two_teams(registry)
    monkeypatch.setenv("DOCKER_CREDENTIAL_IDP_SCOPE", "team-b")
    for attempt in range(4):  # the daemon's choice among list keys was random: 6 of 8 runs took team-a's
        forget(base)
        built, why = legacy_build(context, f"two-teams:{attempt}")
        assert built, why
    monkeypatch.setenv("DOCKER_CREDENTIAL_IDP_SCOPE", "team-a")  # control: team-a's (wrong) credential fails
    forget(base)
    assert not legacy_build(context, "two-teams:wrong")[0]


def test_credsstore_docker_py_build_gets_the_scoped_teams_credential(registry, monkeypatch, tmp_path):
    base = f"{registry.host}/team-b/base:{TAG}"
    context = build_context(tmp_path, base)
    two_teams(registry)
    monkeypatch.setenv("DOCKER_CREDENTIAL_IDP_SCOPE", f"{registry.host}/team-b")
    for attempt in range(3):
        forget(base)
        built, why = docker_py_build(context, f"two-teams-py:{attempt}")
        assert built, why
    monkeypatch.setenv("DOCKER_CREDENTIAL_IDP_SCOPE", "team-a")
    forget(base)
    assert not docker_py_build(context, "two-teams-py:wrong")[0]


def test_credsstore_build_without_a_scope_names_the_ambiguity(registry, tmp_path):
    base = f"{registry.host}/team-b/base:{TAG}"
    context = build_context(tmp_path, base)
    two_teams(registry)
    forget(base)
    built, output = legacy_build(context, "two-teams:unscoped")
    assert not built  # no key for the host: the daemon goes anonymous, and the registry refuses
    assert "DOCKER_CREDENTIAL_IDP_SCOPE" in output, output


# -- what the user reads when the helper fails ----------------------------------------------------------------------


def test_docker_pull_shows_why_the_helper_failed(registry):
    """Docker CLI 28 drops a failing helper's stdout on pull ("no basic auth credentials"); stderr reaches the user."""
    add_basic("team-a", f"{registry.host}/team-a", "alice", ALICE_PASSWORD)
    add_basic("team-b", f"{registry.host}/team-b", "alice", ALICE_PASSWORD)
    route(registry, "credHelpers")
    forget(f"{registry.host}/team-a/base:{TAG}")
    pulled = docker("pull", f"{registry.host}/team-a/base:{TAG}")
    assert pulled.returncode != 0
    output = pulled.stdout + pulled.stderr
    assert "DOCKER_CREDENTIAL_IDP_SCOPE" in output and "team-a" in output, output
    assert output.count("set DOCKER_CREDENTIAL_IDP_SCOPE") == 1, output


# -- docker login / logout ---------------------------------------------------------------------------------------------


def registrations() -> list[dict]:
    from docker_credential_idp.paths import home_dir
    from docker_credential_idp.vault import Vault

    return [r.to_record() for r in Vault(home_dir(os.environ), os.environ).registrations().values()]


def test_docker_login_then_logout_leaves_the_table_as_it_was(registry):
    add_basic("corp", registry.host, "alice", ALICE_PASSWORD)
    before = registrations()
    write_docker_config({"credsStore": "idp"})
    login = docker("login", "-u", "bob", "--password-stdin", registry.host, stdin=BOB_PASSWORD.encode())
    assert login.returncode == 0, login.stderr
    assert json.loads(run_helper("get", stdin=registry.host).out)["Username"] == "bob"
    image = f"{registry.host}/{IMAGE}:{TAG}"
    forget(image)
    assert docker("pull", image).returncode == 0
    logout = docker("logout", registry.host)
    assert logout.returncode == 0, logout.stderr
    assert registrations() == before
    answer = json.loads(run_helper("get", stdin=registry.host).out)
    assert (answer["Username"], answer["Secret"]) == ("alice", ALICE_PASSWORD)
    notes = [line for line in (logout.stdout + logout.stderr).splitlines() if line.startswith("docker-credential-idp:")]
    assert len(notes) <= 1, logout  # docker logout erases up to four times per host


def test_docker_logout_of_an_administrators_registration_says_so_once(registry):
    add_basic("corp", registry.host, "alice", ALICE_PASSWORD)
    write_docker_config({"credsStore": "idp", "auths": {registry.host: {}}})
    logout = docker("logout", registry.host)
    notes = [line for line in (logout.stdout + logout.stderr).splitlines() if "registry remove corp" in line]
    assert len(notes) == 1, logout
    assert json.loads(run_helper("get", stdin=registry.host).out)["Secret"] == ALICE_PASSWORD


# -- a home that cannot be written -------------------------------------------------------------------------------------


def test_docker_pull_with_a_read_only_home(registry):
    """A Kubernetes Secret volume or a read-only image layer: the vault is there, nothing can be written."""
    add_basic("local", registry.host, "alice", ALICE_PASSWORD)
    route(registry, "credHelpers")
    image = f"{registry.host}/{IMAGE}:{TAG}"
    forget(image)
    home = os.environ["DOCKER_CREDENTIAL_IDP_HOME"]
    # The home is read-only in this mount namespace only. A resident agent (IDP_TEST_AGENT runs) lives outside it and
    # would see a writable home, which no real deployment has (an agent shares its callers' mounts): the helper
    # answers alone here, with or without an agent started.
    pulled = run_client("unshare", "-m", "sh", "-c", 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && '
                        'DOCKER_CREDENTIAL_IDP_AGENT=off exec docker pull "$2"', "sh", home, image)
    assert pulled.returncode == 0, pulled.stderr
    assert "unexpected error" not in pulled.stdout + pulled.stderr
    assert not (Path(home) / "tokens.bin").exists()


def busybox_rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "busybox").write_bytes(Path("/bin/busybox").read_bytes())
    (root / "bin" / "busybox").chmod(0o755)
    (root / "bin" / "sh").symlink_to("busybox")
    return root
