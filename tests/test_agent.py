"""The resident agent (agent.py, agent_client.py): a `get` through it is the `get` without it, byte for byte; a
change of the vault is seen by the next request; and it is attacked as the defences suite attacks the files —
another uid, a planted socket, a stale one, a hung agent, an agent killed mid-request. Background refresh and the
idle exit run on an injected clock."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from docker_credential_idp import __version__, agent, agent_client
from docker_credential_idp.agent import Agent, Request
from docker_credential_idp.cache_policy import DEFAULT_REFRESH_MARGIN, refresh_at
from docker_credential_idp.commands.agent import unit_texts
from docker_credential_idp.paths import home_location

from .conftest import Clock, add_basic, assert_one_line_error, call_helper, run_helper

OFF = {agent_client.DISABLE_VARIABLE: "off"}


class Served:
    """An agent of this test's home, serving in a thread of this process on the test's clock."""

    def __init__(self, clock: Clock, idle_timeout: float = 3600) -> None:
        self.home = home_location(os.environ)
        listener, self.path, self.lock = agent.bind(self.home, os.environ)
        self.agent = Agent(self.home, listener, self.path, idle_timeout, now=clock)
        self.thread = threading.Thread(target=self.agent.serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.agent.stop()
        self.thread.join(10)
        os.close(self.lock)


@pytest.fixture
def served(isolated_env) -> Iterator[Served]:
    running = Served(Clock())
    try:
        yield running
    finally:
        running.close()


def both_ways(*args: str, stdin: str = "", env: dict[str, str] | None = None):
    """The call through the agent, and the same call with the agent turned off."""
    return call_helper(*args, stdin=stdin, env=env), call_helper(*args, stdin=stdin, env={**(env or {}), **OFF})


def script_registration(registration_id: str, prefix: str, script: str, *extra: str) -> None:
    result = call_helper("registry", "add", registration_id, "--prefix", prefix, "--type", "script", "--script-stdin",
                         *extra, stdin=script)
    assert result.code == 0, result


def counting_script(counter: Path, fail_flag: Path | None = None) -> str:
    """A token source that counts its calls in a file, and fails while `fail_flag` exists."""
    failing = f'[ -e {fail_flag} ] && {{ echo "source down" >&2; exit 1; }}\n' if fail_flag else ""
    return f'{failing}echo x >> {counter}\necho "robot:token-$(wc -l < {counter} | tr -d " ")"\n'


# -- the same answers ------------------------------------------------------------------------------------------


def test_a_get_through_the_agent_is_the_get_without_it(served, tmp_path):
    add_basic("team", "registry.example.com/team", "alice", "alice-secret-1234")
    add_basic("other", "registry.example.com/other", "bob", "bob-secret-5678")
    script_registration("scripted", "scripted.example.com", 'echo "robot:scripted-secret-42"\n', "--expire", "1h")
    script_registration("broken", "broken.example.com", 'echo "no" >&2; exit 3\n')
    cases = [("registry.example.com/team/app", None), ("https://registry.example.com/other", None),
             ("scripted.example.com", None), ("unknown.example.com", None), ("broken.example.com", None),
             ("", None), ("registry.example.com", None),  # ambiguous: two registrations on the host
             ("registry.example.com", {"DOCKER_CREDENTIAL_IDP_SCOPE": "registry.example.com/team"})]
    before = served.agent.requests
    for server, env in cases:
        through, without = both_ways("get", stdin=server, env=env)
        assert (through.code, through.out, through.err) == (without.code, without.out, without.err), server
    assert served.agent.requests - before == len(cases)  # every one of them went through the agent
    assert served.agent.refused == 0


def test_the_agent_sees_each_change_of_the_vault_at_the_next_request(served):
    assert call_helper("get", stdin="registry.example.com").out.strip() == "credentials not found in native keychain"
    add_basic("team", "registry.example.com", "alice", "first-secret-1234")
    assert "first-secret-1234" in call_helper("get", stdin="registry.example.com").out
    add_basic("team", "registry.example.com", "alice", "second-secret-5678", "--replace")
    assert "second-secret-5678" in call_helper("get", stdin="registry.example.com").out
    assert call_helper("registry", "remove", "team").code == 0
    result = call_helper("get", stdin="registry.example.com")
    assert (result.code, result.out) == (1, "credentials not found in native keychain\n")
    assert served.agent.requests == 4


def test_a_caller_of_another_home_does_it_itself(served, tmp_path):
    add_basic("team", "registry.example.com", "alice", "alice-secret-1234")
    other = tmp_path / "other-home"
    before = served.agent.requests
    result = call_helper("get", stdin="registry.example.com", env={"DOCKER_CREDENTIAL_IDP_HOME": str(other)})
    assert (result.code, result.out) == (1, "credentials not found in native keychain\n")
    assert served.agent.requests == before  # its socket is another one: this agent was not asked
    # Sent to this agent all the same (the socket name is only a locator), it declines and the caller does the work.
    message = agent_client.request("get", __version__, str(other), "/",
                                   agent_client.encode_environment({**os.environ, "DOCKER_CREDENTIAL_IDP_HOME":
                                                                    str(other)}), b"registry.example.com")
    with pytest.raises(agent_client.NoAgent, match="another home"):
        agent_client.exchange(served.path, message)
    with pytest.raises(agent_client.NoAgent, match="release"):
        agent_client.exchange(served.path, agent_client.request("get", "0.0.1", served.home, "/", b"", b"x"))


def test_the_agent_runs_the_fetch_in_the_callers_environment_and_directory(served, tmp_path):
    """A script (like an SDK) sees the caller's variables and working directory, not the agent's; never the key."""
    script_registration("env", "env.example.com", 'echo "robot:$TEAM_TOKEN_HINT-$(basename "$PWD")"\n', "--expire", "1h")
    work = tmp_path / "workdir"
    work.mkdir()
    here = os.getcwd()
    os.chdir(work)
    try:
        result = call_helper("get", stdin="env.example.com", env={"TEAM_TOKEN_HINT": "from-caller"})
    finally:
        os.chdir(here)
    assert result.code == 0, result
    assert '"Secret": "from-caller-workdir"' in result.out
    assert served.agent.requests == 1


# -- refreshing ahead ------------------------------------------------------------------------------------------


def ask(running: Agent, server: str) -> bytes:
    """One get answered by the agent in this process (no socket): its stdout."""
    request = Request("get", __version__, running.home, os.getcwd(), dict(os.environ), server.encode())
    reply = running.answer(request)
    assert reply[:1] == b"=", reply
    return reply


def test_a_served_token_is_refreshed_before_its_refresh_point_so_no_get_waits(isolated_env, tmp_path):
    counter = tmp_path / "calls"
    script_registration("short", "short.example.com", counting_script(counter), "--expire", "1h")
    clock = Clock()
    running = Agent(home_location(os.environ), None, idle_timeout=3600, now=clock)
    assert b"token-1" in ask(running, "short.example.com")
    assert running.refresh_due(wait=True) == 0  # nothing is due yet
    # The agent refreshes a minute before the token's refresh point (cache_policy's one rule).
    refresh_point = refresh_at(0, 3600, DEFAULT_REFRESH_MARGIN)
    assert refresh_point is not None
    clock.now += refresh_point - 61
    assert running.refresh_due(wait=True) == 0
    clock.now += 2
    assert running.refresh_due(wait=True) == 1
    assert counter.read_text().count("x") == 2
    clock.now += 60  # past the old token's refresh point: a get would have fetched; it is answered from the cache
    assert b"token-2" in ask(running, "short.example.com")
    assert counter.read_text().count("x") == 2
    assert running.refreshes == 1


def test_nothing_is_refreshed_that_nobody_asked_for_within_the_idle_period(isolated_env, tmp_path):
    counter = tmp_path / "calls"
    script_registration("short", "short.example.com", counting_script(counter), "--expire", "1h")
    clock = Clock()
    running = Agent(home_location(os.environ), None, idle_timeout=1800, now=clock)
    ask(running, "short.example.com")
    clock.now += 3300  # due, but nobody asked for it for 55 minutes: more than the idle period
    assert running.refresh_due(wait=True) == 0
    assert counter.read_text().count("x") == 1
    assert not running.due()


def test_a_failed_refresh_backs_off(isolated_env, tmp_path):
    counter, down = tmp_path / "calls", tmp_path / "down"
    script_registration("short", "short.example.com", counting_script(counter, down), "--expire", "1h")
    clock = Clock()
    running = Agent(home_location(os.environ), None, idle_timeout=7200, now=clock)
    ask(running, "short.example.com")
    down.touch()
    clock.now += 3260
    assert running.refresh_due(wait=True) == 1  # fails: the source is down
    assert running.refreshes == 0
    clock.now += 29  # the first back-off is 30 s (and the pipeline holds the source back as long)
    assert running.refresh_due(wait=True) == 0
    down.unlink()
    clock.now += 2
    assert running.refresh_due(wait=True) == 1
    assert running.refreshes == 1
    assert counter.read_text().count("x") == 2  # the failed try ran the script, which failed before counting


# -- the idle exit -----------------------------------------------------------------------------------------------


def test_the_agent_exits_after_the_idle_timeout_without_a_request(isolated_env):
    clock = Clock()
    running = Served(clock, idle_timeout=600)
    try:
        clock.now += 599
        assert running.thread.is_alive()
        assert call_helper("agent", "status").code == 0  # a request: the idle time starts again
        clock.now += 599
        time.sleep(agent.POLL * 2)
        assert running.thread.is_alive()
        clock.now += 2
        running.thread.join(agent.POLL * 10)
        assert not running.thread.is_alive()
        assert not os.path.exists(running.path)  # its socket is gone with it
    finally:
        running.close()


# -- attacks -----------------------------------------------------------------------------------------------------


RAW_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
data = b""
try:
    s.sendall(sys.stdin.buffer.read())
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
except (BrokenPipeError, ConnectionResetError):  # closed on us
    pass
sys.stdout.write(repr(data))
"""


def test_a_process_of_another_uid_gets_not_a_byte(served):
    """Another user's process that can reach the socket (here: through CAP_DAC_OVERRIDE, which passes the 0700
    directory) is refused on its uid alone (SO_PEERCRED), before the agent reads its request."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run a client as another uid")
    add_basic("team", "registry.example.com", "alice", "alice-secret-1234")
    message = agent_client.request("get", __version__, served.home, "/", agent_client.encode_environment(os.environ),
                                   b"registry.example.com")
    completed = subprocess.run(
        ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps", "+dac_override",
         "--ambient-caps", "+dac_override", sys.executable, "-I", "-c", RAW_CLIENT, served.path],
        input=message, capture_output=True, timeout=30, check=False)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == b"b''"  # closed without a byte
    assert served.agent.refused == 1
    assert served.agent.requests == 0
    # The same bytes from our uid are answered.
    assert "alice-secret-1234" in call_helper("get", stdin="registry.example.com").out


def test_a_planted_socket_is_neither_used_nor_replaced(isolated_env, tmp_path):
    add_basic("team", "registry.example.com", "alice", "alice-secret-1234")
    home = home_location(os.environ)
    path = agent.socket_path(home, os.environ)
    agent.prepare_directory(home, path)
    elsewhere = tmp_path / "elsewhere.sock"
    planted = socket.socket(socket.AF_UNIX)
    planted.bind(str(elsewhere))
    planted.listen(1)
    try:
        os.symlink(elsewhere, path)  # a link to someone's socket
        assert agent_client.our_socket(path) == "it is not a socket"
        result = call_helper("get", stdin="registry.example.com")
        assert "alice-secret-1234" in result.out  # answered here, not by whatever listens there
        failed = call_helper("agent", "start", "--foreground")
        assert_one_line_error(failed, "is not a socket an agent of ours left", "rm ")
        assert os.path.islink(path)
        os.unlink(path)
        # Another user's socket in its place.
        planted_path = Path(path)
        other = socket.socket(socket.AF_UNIX)
        other.bind(path)
        os.chown(path, 65534, 65534)
        assert agent_client.our_socket(path) == "it belongs to uid 65534"
        assert "alice-secret-1234" in call_helper("get", stdin="registry.example.com").out
        assert_one_line_error(call_helper("agent", "start", "--foreground"), "belongs to uid 65534")
        other.close()
        planted_path.unlink()
        # A directory others may enter: its socket is not used.
        directory = os.path.dirname(path)
        os.chmod(directory, 0o755)
        assert agent_client.our_socket(path) == "its directory is not private (its mode is 755, not 700)"
        assert_one_line_error(call_helper("agent", "start", "--foreground"), "is not private", "chmod 700")
    finally:
        planted.close()


def test_a_stale_socket_costs_nothing_and_is_replaced_by_start(isolated_env):
    add_basic("team", "registry.example.com", "alice", "alice-secret-1234")
    home = home_location(os.environ)
    path = agent.socket_path(home, os.environ)
    agent.prepare_directory(home, path)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(path)  # bound, never listening: what a killed agent leaves
    dead.close()
    started = time.monotonic()
    result = call_helper("get", stdin="registry.example.com")
    assert "alice-secret-1234" in result.out
    assert time.monotonic() - started < 5  # refused at once (the bound is checked by the hung-agent test)
    running = Served(Clock())
    try:
        assert "alice-secret-1234" in call_helper("get", stdin="registry.example.com").out
        assert running.agent.requests == 1
    finally:
        running.close()


def test_a_hung_agent_costs_a_get_at_most_the_bound(isolated_env):
    add_basic("team", "registry.example.com", "alice", "alice-secret-1234")
    home = home_location(os.environ)
    path = agent.socket_path(home, os.environ)
    agent.prepare_directory(home, path)
    hung = socket.socket(socket.AF_UNIX)
    hung.bind(path)
    hung.listen(8)  # connections queue; nobody accepts or answers (a stopped or deadlocked agent)
    try:
        message = agent_client.request("get", __version__, home, "/", b"", b"registry.example.com")
        started = time.monotonic()
        with pytest.raises(agent_client.NoAgent):
            agent_client.exchange(path, message)
        assert time.monotonic() - started < agent_client.FIRST_BYTE_WITHIN + 0.5
        result = call_helper("get", stdin="registry.example.com")
        assert "alice-secret-1234" in result.out
        # An agent that said it works, then fell silent: given up after the silence bound (shortened here).
        hung.close()
        os.unlink(path)
        hung = socket.socket(socket.AF_UNIX)
        hung.bind(path)
        hung.listen(8)
        conn_ready = threading.Event()

        def accept_and_hang() -> None:
            conn, _ = hung.accept()
            conn.sendall(b".")
            conn_ready.wait(5)
            conn.close()

        thread = threading.Thread(target=accept_and_hang, daemon=True)
        thread.start()
        started = time.monotonic()
        with pytest.raises(agent_client.NoAgent):
            agent_client.exchange(path, message, silence_within=0.3)
        assert time.monotonic() - started < 0.3 + 0.5
        conn_ready.set()
        thread.join(5)
    finally:
        hung.close()


def test_an_agent_killed_mid_request_leaves_the_caller_a_correct_answer(isolated_env, tmp_path):
    """The agent process is killed while it runs a slow fetch: the caller does the fetch itself."""
    marker = tmp_path / "fetching"
    # The marker names the script's parent and grandparent: the process that ran the fetch is one of them.
    script = (f'echo "$PPID $(cut -d" " -f4 /proc/$PPID/stat)" >> {marker}\nsleep 1\n'
              'echo "robot:slow-secret-4321"\n')
    script_registration("slow", "slow.example.com", script, "--expire", "1h")
    started = run_helper("agent", "start", "--idle-timeout", "5m")
    assert started.code == 0, started
    status = agent.status(home_location(os.environ), os.environ)
    assert status["running"], status
    request = tmp_path / "request"
    request.write_bytes(b"slow.example.com")
    with request.open("rb") as given:
        caller = subprocess.Popen([run_helper_path(), "get"], stdin=given, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists()
        os.kill(int(status["pid"]), signal.SIGKILL)
        out, err = caller.communicate(timeout=30)
    finally:
        if caller.poll() is None:
            caller.kill()
    assert caller.returncode == 0, err
    assert b'"Username": "robot", "Secret": "slow-secret-4321"' in out
    # The fetch was the agent's when it was killed; then the caller's own.
    first, second = (line.split() for line in marker.read_text().splitlines())
    assert str(status["pid"]) in first and str(caller.pid) in second
    # Its socket is left behind, stale: the next get does the work itself, and the next start replaces it.
    assert "slow-secret-4321" in run_helper("get", stdin="slow.example.com").out
    assert run_helper("agent", "start").code == 0
    assert run_helper("agent", "stop").code == 0


def run_helper_path() -> str:
    from .conftest import helper_path

    return helper_path()


# -- the commands ------------------------------------------------------------------------------------------------


def test_start_status_stop_as_processes(isolated_env):
    add_basic("team", "registry.example.com", "alice", "alice-secret-1234")
    assert run_helper("agent", "status").code == 1
    started = run_helper("agent", "start", "--idle-timeout", "10m")
    assert started.code == 0, started
    assert "agent started (pid" in started.out
    again = run_helper("agent", "start")
    assert_one_line_error(again, "an agent already serves this home", "agent stop")
    for _ in range(2):
        assert "alice-secret-1234" in run_helper("get", stdin="registry.example.com").out
    status = run_helper("agent", "status", "--json")
    assert status.code == 0, status
    import json

    shown = json.loads(status.out)
    assert shown["running"] and shown["idle_timeout"] == 600 and shown["requests"] >= 2
    limits = Path(f"/proc/{shown['pid']}/limits").read_text()
    assert [line.split()[4:6] for line in limits.splitlines() if line.startswith("Max core file size")] == [["0", "0"]]
    socket_dir = Path(shown["socket"]).parent
    assert socket_dir.stat().st_mode & 0o777 == 0o700
    assert Path(shown["socket"]).stat().st_mode & 0o777 == 0o600
    stopped = run_helper("agent", "stop")
    assert stopped.code == 0 and "stopped" in stopped.out, stopped
    assert not Path(shown["socket"]).exists()
    assert run_helper("agent", "status").code == 1
    assert "no agent was running" in run_helper("agent", "stop").out


def test_install_writes_the_systemd_user_units(isolated_env):
    result = call_helper("agent", "install", "--idle-timeout", "30m")
    assert result.code == 0, result
    units = Path(isolated_env["XDG_CONFIG_HOME"]) / "systemd" / "user"
    socket_unit = (units / "docker-credential-idp-agent.socket").read_text()
    service = (units / "docker-credential-idp-agent.service").read_text()
    path = agent.socket_path(home_location(os.environ), os.environ)
    assert f"ListenStream={path}\n" in socket_unit and "SocketMode=0600" in socket_unit
    assert "agent start --foreground --idle-timeout 1800" in service
    assert "systemctl --user enable --now docker-credential-idp-agent.socket" in result.out


def test_install_writes_percent_and_dollar_as_systemd_reads_them(isolated_env, tmp_path, monkeypatch):
    """systemd expands %-specifiers in ListenStream=, Environment= and ExecStart= (and $NAME in ExecStart=): a home
    named /x/100%h would become the user's home directory, and the agent would serve another home than get's."""
    home = tmp_path / "100%h $HOME"
    monkeypatch.setenv("DOCKER_CREDENTIAL_IDP_HOME", str(home))
    monkeypatch.delenv("XDG_RUNTIME_DIR")  # the socket in the home itself, its path in ListenStream=
    texts = unit_texts(str(home), os.environ, 60)
    socket_unit, service = texts["docker-credential-idp-agent.socket"], texts["docker-credential-idp-agent.service"]
    assert f"ListenStream={tmp_path}/100%%h $HOME/agent.sock\n" in socket_unit
    assert f"Environment='DOCKER_CREDENTIAL_IDP_HOME={tmp_path}/100%%h $HOME'\n" in service
    monkeypatch.setattr(agent, "program", lambda: ["/opt/a%i$b/python"])
    assert "ExecStart='/opt/a%%i$$b/python' agent start" in unit_texts(str(home), os.environ, 60)[
        "docker-credential-idp-agent.service"]


def test_a_bad_idle_timeout_is_one_line(isolated_env):
    assert_one_line_error(call_helper("agent", "start", "--idle-timeout", "soon"), "--idle-timeout", "1h")


def test_a_get_through_the_agent_imports_almost_nothing(isolated_env):
    """The client side of a hit: `_socket`, not `socket.py` (17 ms more); no ctypes, vault or crypto module (read
    from the interpreter's import profile, as tests/test_pipeline.py reads a hit's)."""
    from .test_token_cache import HEAVY_MODULES, imports_of_get

    add_basic("team", "registry.example.com", "alice", "alice-secret-1234")
    assert run_helper("agent", "start").code == 0
    try:
        imported = imports_of_get("registry.example.com")
        gets = agent.status(home_location(os.environ), os.environ)["gets"]
    finally:
        run_helper("agent", "stop")
    assert gets == 1
    assert {"_socket", "docker_credential_idp.agent_client"} <= imported
    assert imported & (HEAVY_MODULES | {"socket", "ctypes", "select", "selectors", "docker_credential_idp.vault",
                                        "docker_credential_idp.crypto", "docker_credential_idp.pipeline"}) == set()


def test_a_refresh_runs_in_its_callers_directory_and_environment_not_the_last_callers(isolated_env, tmp_path):
    """The refresh ahead runs the fetch as the get of the caller it serves would: in that caller's working directory
    and process environment (the SDKs' and the proxy's variables), not those another caller's fetch left set."""
    counter = tmp_path / "calls"
    script_registration("short", "short.example.com",
                        f'echo x >> {counter}\necho "robot:$(basename "$PWD")-$(wc -l < {counter} | tr -d " ")"\n',
                        "--expire", "1h")
    add_basic("other", "other.example.com", "robot", "other-secret-1234")
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir()
    theirs.mkdir()
    clock = Clock()
    running = Agent(home_location(os.environ), None, idle_timeout=7200, now=clock)
    here = os.getcwd()

    def get(server: str, cwd: Path, **extra: str) -> bytes:
        reply = running.answer(Request("get", __version__, running.home, str(cwd), {**os.environ, **extra},
                                       server.encode()))
        assert reply[:1] == b"=", reply
        return reply

    try:
        assert b"mine-1" in get("short.example.com", mine)
        # Another caller, in another directory with another environment, fetches: the gate sets the process's.
        assert b"robot" in get("other.example.com", theirs, https_proxy="http://127.0.0.1:9")
        clock.now += 3260
        assert running.refresh_due(wait=True) == 1
        assert running.refreshes == 1
        assert b"mine-2" in get("short.example.com", mine)
    finally:
        os.chdir(here)
