"""Every test runs in its own homes: DOCKER_CREDENTIAL_IDP_HOME, HOME, DOCKER_CONFIG and XDG dirs in tmp_path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Mapping, Optional

import pytest

# Variables from the developer's or CI's shell that would change what the helper or the clients do.
LEAKY_PREFIXES = ("DOCKER_CREDENTIAL_IDP_", "AWS_", "GOOGLE_", "GCE_", "AZURE_", "REGISTRY_AUTH_FILE", "CLOUDSDK_")


def helper_path() -> str:
    """The helper under test: $IDP_TEST_HELPER (e.g. the PyInstaller bundle), else the installed entry point."""
    explicit = os.environ.get("IDP_TEST_HELPER")
    if explicit:
        return explicit
    beside_python = Path(sys.executable).parent / "docker-credential-idp"
    found = str(beside_python) if beside_python.exists() else shutil.which("docker-credential-idp")
    if not found:
        pytest.fail("docker-credential-idp is not installed; run the tests with `make test`")
    return found


def pytest_sessionstart(session: pytest.Session) -> None:
    """Most tests run the installed program; some import the source tree. After an edit without `make setup`,
    the two differ and a run would test yesterday's code for the most part: refuse to start instead."""
    stale = stale_install()
    if stale:
        pytest.exit(f"the installed docker-credential-idp differs from the source tree ({stale}); run `make setup` "
                    "(make test and make test-fast do it first)", returncode=2)


def stale_install() -> Optional[str]:
    import sysconfig
    from importlib.metadata import distributions

    # Looked up in site-packages only: the source tree's own egg-info (from building the wheel) would match itself.
    site_packages = sysconfig.get_paths()["purelib"]
    found = [d for d in distributions(path=[site_packages]) if d.metadata["Name"] == "docker-credential-idp"]
    if not found:
        return f"it is not installed in {site_packages}"
    installed = found[0]
    source = Path(__file__).resolve().parents[1] / "docker_credential_idp"
    for path in sorted(source.rglob("*.py")):
        relative = path.relative_to(source.parent)
        copy = Path(str(installed.locate_file(relative)))
        if not copy.is_file() or copy.read_bytes() != path.read_bytes():
            return f"{relative} changed"
    return None


# -- the spawn count (opt-in): IDP_COUNT_SPAWNS=1 pytest ... reports the tests that start a process -------------

SPAWN_COUNT_VARIABLE = "IDP_COUNT_SPAWNS"


class SpawnCount:
    """Which tests start a process (any subprocess.Popen during setup, call or teardown), and which of them start
    the helper itself; written at the end of the run, and to $IDP_COUNT_SPAWNS when that names a file."""

    def __init__(self) -> None:
        self.current: Optional[str] = None
        self.tests: list[str] = []
        self.any: set[str] = set()
        self.helper: set[str] = set()

    def saw(self, args: object) -> None:
        if self.current is None:
            return
        self.any.add(self.current)
        argv = [str(a) for a in args] if isinstance(args, (list, tuple)) else [str(args)]
        if argv and (Path(argv[0]).name.startswith("docker-credential-idp") or "docker_credential_idp" in argv[1:3]):
            self.helper.add(self.current)

    def summary(self) -> str:
        return (f"spawn count: {len(self.tests)} tests; {len(self.any)} start a process, "
                f"{len(self.helper)} of them the helper")


SPAWNS = SpawnCount()


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get(SPAWN_COUNT_VARIABLE):
        return
    original = subprocess.Popen.__init__

    def counting_init(self: subprocess.Popen[bytes], args: object, *rest: object, **options: object) -> None:
        SPAWNS.saw(args)
        original(self, args, *rest, **options)  # type: ignore[arg-type]

    subprocess.Popen.__init__ = counting_init  # type: ignore[assignment, method-assign]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Optional[pytest.Item]) -> Iterator[object]:
    SPAWNS.current = item.nodeid
    SPAWNS.tests.append(item.nodeid)
    try:
        return (yield)
    finally:
        SPAWNS.current = None


def pytest_terminal_summary(terminalreporter: object, exitstatus: int, config: pytest.Config) -> None:
    if os.environ.get(AGENT_VARIABLE):
        terminalreporter.write_line(  # type: ignore[attr-defined]
            f"agent: {len(AGENT_GETS)} tests ran with an agent; it answered {sum(AGENT_GETS)} gets, "
            f"in {sum(1 for gets in AGENT_GETS if gets)} of them")
    target = os.environ.get(SPAWN_COUNT_VARIABLE)
    if not target:
        return
    terminalreporter.write_line(SPAWNS.summary())  # type: ignore[attr-defined]
    if target not in ("1", "yes", "true"):
        lines = [SPAWNS.summary()] + [f"{'helper' if t in SPAWNS.helper else 'process' if t in SPAWNS.any else '-'}"
                                      f" {t}" for t in SPAWNS.tests]
        Path(target).write_text("\n".join(lines) + "\n")


# -- the leak watch: every secret a test hands the helper is looked for everywhere it must not be -------------------

# Verbs whose stdout is a credential: a secret may appear there, and nowhere else.
ANSWER_VERBS = ("get", "creds", "pull-secret", "kubelet")
MIN_WATCHED_LENGTH = 8  # shorter test secrets ("pw") occur by chance in ordinary output


class LeakWatch:
    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self.outputs: list[tuple[str, str]] = []  # (what produced it, text that must hold no secret)

    def watch(self, value: Optional[str]) -> None:
        if value and len(value) >= MIN_WATCHED_LENGTH:
            self.secrets.add(value)

    def saw(self, label: str, text: str) -> None:
        self.outputs.append((label, text))

    def check(self, directories: list[Path]) -> None:
        found = [(label, secret) for label, text in self.outputs for secret in self.secrets if secret in text]
        for directory in directories:
            for path in directory.rglob("*") if directory.is_dir() else ():
                if path.is_file() and not path.is_symlink():
                    content = path.read_bytes()
                    found += [(str(path), s) for s in self.secrets if s.encode() in content]
        assert not found, f"secrets leaked into: {sorted({label for label, _ in found})}"


LEAKS = LeakWatch()


def watch_helper_call(args: tuple[str, ...], data: bytes, env: Mapping[str, str], result: Result) -> None:
    """Learn the secrets a call hands over (stdin and --X-env of `registry add`, store's Secret) and record where
    its output may not show them."""
    text = data.decode("utf-8", "replace")
    if args[:2] == ("registry", "add"):
        if any(a.endswith("-stdin") for a in args):
            LEAKS.watch(text.removesuffix("\n"))
        for flag, value in zip(args, args[1:], strict=False):
            if flag.endswith("-env") and flag.startswith("--"):
                LEAKS.watch(env.get(value))
    if args[:1] == ("store",):
        try:
            LEAKS.watch(json.loads(text).get("Secret"))
        except (ValueError, AttributeError, RecursionError):
            pass
    label = "docker-credential-idp " + " ".join(args[:2])
    LEAKS.saw(label + " (stderr)", result.err)
    if args[:1] and args[0] not in ANSWER_VERBS:
        LEAKS.saw(label, result.out)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    for name in list(os.environ):
        if name.startswith(LEAKY_PREFIXES):
            monkeypatch.delenv(name)
    homes = {
        "DOCKER_CREDENTIAL_IDP_HOME": tmp_path / "idp-home",
        "HOME": tmp_path / "home",
        "DOCKER_CONFIG": tmp_path / "docker-config",
        "XDG_RUNTIME_DIR": tmp_path / "xdg-runtime",
        "XDG_CONFIG_HOME": tmp_path / "xdg-config",
        "XDG_DATA_HOME": tmp_path / "xdg-data",
    }
    for name, path in homes.items():
        path.mkdir(mode=0o700, exist_ok=True)
        monkeypatch.setenv(name, str(path))
    # The idp home must not pre-exist: the helper creates it 0700 itself.
    homes["DOCKER_CREDENTIAL_IDP_HOME"].rmdir()
    # No test may reach a real cloud: point the SDKs' discovery at nothing.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    LEAKS.__init__()
    yield {name: str(path) for name, path in homes.items()}
    # After the test: no secret it used (a password, an identity token, an exchanged token: tests/oidc.py watches
    # those it mints) in any output but an answer, nor in any file of the helper's, docker's or the user's home.
    LEAKS.check(leak_directories(homes))


def leak_directories(homes: Mapping[str, str | Path]) -> list[Path]:
    """Where the leak watch looks for secrets in files after every test."""
    return [Path(homes[name]) for name in ("DOCKER_CREDENTIAL_IDP_HOME", "DOCKER_CONFIG", "HOME")]


# -- the agent (opt-in): IDP_TEST_AGENT=1 pytest ... starts `agent start` for every test's home, so that the same tests
# pass with `get` answered by the resident agent (make test runs the protocol, provider and client suites so once).

AGENT_VARIABLE = "IDP_TEST_AGENT"
AGENT_GETS: list[int] = []  # per test that ran with an agent: the gets it answered


@pytest.fixture(autouse=True)
def agent_for_test(isolated_env: dict[str, str]) -> Iterator[None]:
    if not os.environ.get(AGENT_VARIABLE):
        yield
        return
    started = run_helper("agent", "start", "--idle-timeout", "15m")
    assert started.code == 0, started
    from docker_credential_idp import agent

    env = {**os.environ, **isolated_env}  # the test's home, whatever the test set since
    try:
        yield
    finally:
        status = agent.status(isolated_env["DOCKER_CREDENTIAL_IDP_HOME"], env)
        if status.get("running"):
            AGENT_GETS.append(int(status.get("gets", 0)))
        agent.stop(isolated_env["DOCKER_CREDENTIAL_IDP_HOME"], env)


class Result:
    def __init__(self, completed: subprocess.CompletedProcess[bytes]) -> None:
        self.code = completed.returncode
        self.out = completed.stdout.decode("utf-8", "replace")
        self.err = completed.stderr.decode("utf-8", "replace")

    @classmethod
    def of(cls, code: int, out: bytes, err: bytes) -> Result:
        return cls(subprocess.CompletedProcess([], code, out, err))

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out!r}, err={self.err!r})"


def run_helper(
    *args: str, stdin: bytes | str = b"", env: Optional[Mapping[str, str]] = None, timeout: float = 60
) -> Result:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    full_env = dict(os.environ)
    full_env.update(env or {})
    completed = subprocess.run(
        [helper_path(), *args], input=data, capture_output=True, env=full_env, timeout=timeout, check=False
    )
    result = Result(completed)
    watch_helper_call(args, data, full_env, result)
    return result


def call_main(*argv: str, stdin: bytes = b"") -> tuple[int, bytes, bytes]:
    """cli.main in this process, its stdin, stdout and stderr files: the whole program but the interpreter start
    (and what only a process shows: hardening, the standard descriptors, imports, the bundle)."""
    import tempfile

    from docker_credential_idp import cli, streams

    with tempfile.TemporaryFile() as given, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        given.write(stdin)
        given.seek(0)
        previous = streams.use(given.fileno(), out.fileno(), err.fileno())
        try:
            status = cli.main(list(argv))
        finally:
            streams.use(*previous)
        out.seek(0)
        err.seek(0)
        return status, out.read(), err.read()


def call_helper(*args: str, stdin: bytes | str = b"", env: Optional[Mapping[str, str]] = None) -> Result:
    """run_helper's call and Result, in this process (call_main), for tests of policy rather than of the process.
    Against the bundle (make test-binary sets IDP_TEST_HELPER) the bundle is what is tested: it runs there."""
    if os.environ.get("IDP_TEST_HELPER"):
        return run_helper(*args, stdin=stdin, env=env)
    data = stdin.encode() if isinstance(stdin, str) else stdin
    saved = {name: os.environ.get(name) for name in env or {}}
    os.environ.update(env or {})
    try:
        full_env = dict(os.environ)
        result = Result.of(*call_main(*args, stdin=data))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    watch_helper_call(args, data, full_env, result)
    return result


class Clock:
    """Real time at the start (so that stand-ins, which date their tokens by it, and helper processes the test also
    runs see the same moment), then moved by hand: a test's time passes without waiting for it."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def get_at(clock: Clock, server: str, warnings: list[str]) -> str:
    """One `get` as a new process makes it (a new vault and pipeline), at the clock's time; its secret. The entry
    point for tests of token life (fresh, stale, expired) without waiting for it."""
    from docker_credential_idp.paths import home_dir
    from docker_credential_idp.pipeline import GetPipeline
    from docker_credential_idp.vault import Vault

    pipeline = GetPipeline(Vault(home_dir(os.environ), os.environ), os.environ, warn=warnings.append, now=clock)
    return pipeline.get(server).secret


def add_basic(registration_id: str, prefix: str, username: str, password: str, *extra: str) -> Result:
    """A basic registration, made in process: a set-up, not what the test shows."""
    result = call_helper(
        "registry", "add", registration_id, "--prefix", prefix, "--type", "basic", "--username", username,
        "--password-stdin", *extra, stdin=password,
    )
    assert result.code == 0, result
    return result


def assert_one_line_error(result: Result, *fragments: str, stream: str = "err") -> str:
    """A failure: exit 1, one line naming the cause, no traceback anywhere."""
    text = result.err if stream == "err" else result.out
    assert result.code == 1, result
    assert "Traceback" not in result.out + result.err, result
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, result
    for fragment in fragments:
        assert fragment in lines[0], (fragment, result)
    return lines[0]


# -- cloud stand-ins shared by the provider, cache and end-to-end tests ----------------------------------------


@pytest.fixture(scope="session")
def moto_url():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def service_account_key(tmp_path_factory):
    """A real RSA service-account key; token_uri is filled in per test."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {"type": "service_account", "project_id": "idp-test", "private_key_id": "k1", "private_key": pem,
            "client_email": "ci@idp-test.iam.gserviceaccount.com", "client_id": "1"}
