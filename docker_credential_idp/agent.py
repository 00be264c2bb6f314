"""The resident agent (`docker-credential-idp agent start`): a process of the user's that answers `get` for one home
over a unix socket, as ssh-agent and gpg-agent answer theirs, so that a `get` need not start the interpreter's
heavier half, open the vault and load an SDK each time; and that refreshes the short-lived tokens it served before
their refresh point, so that a `get` never waits on a fetch the agent could foresee.

It runs the same pipeline (pipeline.GetPipeline, through cli.answer) for every request, with the caller's
environment, working directory and stdin (agent_client sends them), so no behaviour differs with or without it:
the vault, its serial and the answer cache are read for each request, so any change (a `registry add`, a `vault
accept`, a `cache clear`, another process's fetch) is seen by the next one. The SDKs read the process's own
environment (boto3's AWS_*, google-auth's, azure-identity's): the steps that may fetch or sync run with
`os.environ` and the working directory set to the caller's, under a gate that lets the callers of one environment
fetch together and makes the others wait their turn.

Defences (tests/test_agent.py attacks each): the socket is in a directory of ours that no one else may enter
($XDG_RUNTIME_DIR/idp-agent, else the home), is ours and 0600; every connection's peer is checked to be of our uid
(SO_PEERCRED) before a byte is read; a link, a file or another user's socket where the socket goes is refused, a
socket nobody listens on (a killed agent's) replaced; every read is bounded in size and time; at most
MAX_CONNECTIONS are served at once (more are closed: their callers do the work themselves); the process dumps no
core and is not dumpable (hardening.py, for the key sources it holds in memory while it serves); it exits after
`--idle-timeout` without a request.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Optional

from . import __version__, agent_client, cli, fsutil, hardening
from .agent_client import HEARTBEAT, MAGIC, MAX_ENVIRONMENT, MAX_STDIN, field
from .errors import PROG, ConfigError, IdpError, UnsafePath
from .paths import home_location
from .pipeline import GetPipeline
from .token_cache import CachedToken
from .vault import Vault

DEFAULT_IDLE_TIMEOUT = 3600.0
READ_WITHIN = 5.0  # a caller sends its whole request within this, or the connection is closed
WORKERS = 8  # requests answered at once
MAX_CONNECTIONS = 64  # accepted and not yet answered; beyond, a connection is closed at once
REFRESH_WORKERS = 2  # background refreshes at once
MAX_WATCHED = 256  # served tokens kept for refreshing (the least recently asked are dropped first)
REFRESH_LEAD = 60.0  # a served token is refreshed this long (at most a quarter of its fresh life) before its point
BACKOFF_FIRST, BACKOFF_MAX = 30.0, 900.0  # a failed refresh is tried again after 30 s, 60 s, ... 15 min
POLL = 0.5  # the accept loop's wake-up: idle exit and due refreshes are looked at this often
FIELD_LIMITS = (("verb", 16), ("release", 64), ("home", 4096), ("working directory", 4096),
                ("environment", MAX_ENVIRONMENT), ("stdin", MAX_STDIN))
VERBS = ("get", "status", "stop")


class Declined(Exception):
    """A request the agent will not answer (malformed, too large, too slow, another home or release): it says so
    with b"!" and the caller does the work itself."""


class Request:
    __slots__ = ("verb", "release", "home", "cwd", "env", "stdin")

    def __init__(self, verb: str, release: str, home: str, cwd: str, env: dict[str, str], stdin: bytes) -> None:
        self.verb, self.release, self.home, self.cwd, self.env, self.stdin = verb, release, home, cwd, env, stdin


def _receive(conn: socket.socket, size: int, deadline: float) -> bytes:
    data = bytearray()
    while len(data) < size:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Declined("the request was not sent in time")
        conn.settimeout(left)
        try:
            chunk = conn.recv(min(size - len(data), 65536))
        except OSError:
            raise Declined("the request could not be read") from None
        if not chunk:
            raise Declined("the request ended early")
        data += chunk
    return bytes(data)


def read_request(conn: socket.socket, within: float = READ_WITHIN) -> Request:
    """One request, every field bounded (FIELD_LIMITS) and the whole read within `within` seconds."""
    deadline = time.monotonic() + within
    if _receive(conn, len(MAGIC), deadline) != MAGIC:
        raise Declined("not a request of this agent's protocol")
    values: list[bytes] = []
    for name, limit in FIELD_LIMITS:
        size = int.from_bytes(_receive(conn, 4, deadline), "big")
        if size > limit:
            raise Declined(f"the {name} is larger than {limit} bytes")
        values.append(_receive(conn, size, deadline))
    verb, release, home, cwd = (value.decode("utf-8", "surrogateescape") for value in values[:4])
    env: dict[str, str] = {}
    for entry in values[4].split(b"\0") if values[4] else ():
        name, sep, value = entry.decode("utf-8", "surrogateescape").partition("=")
        if sep:
            env[name] = value
    return Request(verb, release, home, cwd, env, values[5])


def answer_bytes(status: int, out: bytes, err: bytes) -> bytes:
    return b"=" + bytes([status & 0xFF]) + field(out) + field(err)


def declined_bytes(reason: str) -> bytes:
    return b"!" + field(reason.encode("utf-8", "replace")[:200])


class EnvironmentGate:
    """The process environment and working directory the SDKs see, set to a caller's while its fetch runs. Callers of
    one (working directory, environment) hold the gate together; another waits until they are done."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._current: Optional[tuple[str, tuple[tuple[str, str], ...]]] = None
        self._holders = 0

    @contextmanager
    def holding(self, cwd: str, env: Mapping[str, str]) -> Iterator[None]:
        key = (cwd, tuple(sorted(env.items())))
        with self._condition:
            while self._holders and self._current != key:
                self._condition.wait()
            if self._current != key:
                _apply_environment(cwd, env)
                self._current = key
            self._holders += 1
        try:
            yield
        finally:
            with self._condition:
                self._holders -= 1
                self._condition.notify_all()


def _apply_environment(cwd: str, env: Mapping[str, str]) -> None:
    """os.environ as a direct `get` of this caller would have it after hardening: its variables, the key sources
    taken out (a child the SDK starts must not inherit them)."""
    wanted = {name: value for name, value in env.items() if name not in hardening.SECRET_VARIABLES}
    for name in [name for name in os.environ if name not in wanted]:
        del os.environ[name]
    for name, value in wanted.items():
        if os.environ.get(name) != value:
            try:
                os.environ[name] = value
            except (ValueError, OSError):  # a name putenv refuses ("A=B" cannot be one); the caller had it all the same
                pass
    try:
        os.chdir(cwd)
    except OSError:
        os.chdir("/")


class Watch:
    """A short-lived token the agent served, to refresh before its refresh point while someone still asks for it."""

    __slots__ = ("server", "cwd", "env", "fetched_at", "refresh_at", "expires_at", "asked_at", "next_try", "failures",
                 "running")

    def __init__(self, server: str, cwd: str, env: dict[str, str], token: CachedToken, asked_at: float) -> None:
        self.server, self.cwd, self.env, self.asked_at = server, cwd, env, asked_at
        self.failures, self.running = 0, False
        self.fetched_at = self.refresh_at = self.expires_at = self.next_try = 0.0
        self.served(token)

    def served(self, token: CachedToken) -> None:
        assert token.refresh_at is not None and token.expires_at is not None
        if token.fetched_at < self.fetched_at:
            return
        self.fetched_at, self.refresh_at, self.expires_at = token.fetched_at, token.refresh_at, token.expires_at
        self.next_try = self.refresh_at - min(REFRESH_LEAD, max(0.0, self.refresh_at - self.fetched_at) / 4)
        self.failures = 0


class Agent:
    """The agent of one home, on `listener`. `now` is its clock (the pipeline's too): tests move it by hand."""

    def __init__(self, home: str, listener: Optional[socket.socket], path: str = "",
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT, now: Callable[[], float] = time.time,
                 log: Callable[[str], None] = lambda line: None, remove_on_exit: bool = True) -> None:
        self.home, self.listener, self.path, self.idle_timeout = home, listener, path, idle_timeout
        # The socket file this agent made, removed when it exits (not systemd's, which outlives it).
        self._made = _inode(path) if path and remove_on_exit else None
        self.now, self.log = now, log
        self.gate = EnvironmentGate()
        self.started_at = self.last_request_at = now()
        self.requests = self.gets = self.refreshes = self.refused = 0
        self._lock = threading.Lock()
        self._watches: dict[tuple[str, str, tuple[tuple[str, str], ...]], Watch] = {}
        self._in_flight: dict[socket.socket, threading.Lock] = {}
        self._stopping = threading.Event()
        self._wake_read, self._wake_write = os.pipe()  # stop() wakes the accept loop at once
        self._workers = ThreadPoolExecutor(WORKERS, thread_name_prefix="idp-agent")
        self._refreshers = ThreadPoolExecutor(REFRESH_WORKERS, thread_name_prefix="idp-agent-refresh")

    # -- answering ---------------------------------------------------------------------------------------------

    def pipeline_class(self, cwd: str, served: Optional[list[tuple[str, CachedToken]]] = None) -> type[GetPipeline]:
        """The get pipeline on the agent's clock, its steps that may fetch or sync in the caller's environment, and
        what it served noted in `served`."""
        agent = self

        class AgentPipeline(GetPipeline):
            def __init__(self, vault: Vault, env: Mapping[str, str], warn: Callable[[str], None] = lambda m: None,
                         now: Callable[[], float] = agent.now, debug: Optional[Callable[[str], None]] = None,
                         **rest: Any) -> None:
                super().__init__(vault, env, warn, now=agent.now, debug=debug, **rest)

            def get(self, server: str) -> CachedToken:
                token = super().get(server)
                if served is not None:
                    served.append((server, token))
                return token

            def sync_sources(self, reason: Any, synced: Optional[set[str]] = None) -> bool:
                with agent.gate.holding(cwd, self.env):
                    return super().sync_sources(reason, synced)

            def _under_fetch_lock(self, *args: Any, **options: Any) -> CachedToken:
                with agent.gate.holding(cwd, self.env):
                    return super()._under_fetch_lock(*args, **options)

            def refresh(self, server: str, served_fetched_at: float) -> Optional[CachedToken]:
                # It fetches without _under_fetch_lock: the gate around all of it (before the fetch lock, as above).
                with agent.gate.holding(cwd, self.env):
                    return super().refresh(server, served_fetched_at)

        return AgentPipeline

    def answer(self, request: Request) -> bytes:
        """The bytes that answer one request (after the peer and the sizes were checked)."""
        if request.release != __version__:
            return declined_bytes(f"the agent runs release {__version__}, the caller {request.release[:40]}")
        if request.verb not in VERBS:
            return declined_bytes("the agent answers get only")
        now = self.now()
        with self._lock:
            self.last_request_at = max(self.last_request_at, now)
            self.requests += 1
        if request.verb == "status":
            return answer_bytes(0, self.status_json().encode(), b"")
        if request.verb == "stop":
            self.stop()
            return answer_bytes(0, b"stopping\n", b"")
        try:
            home = home_location(request.env)
        except IdpError:
            home = ""
        if home != self.home or request.home != self.home:
            return declined_bytes("the agent serves another home")
        with self._lock:
            self.gets += 1
        lines: list[str] = []
        served: list[tuple[str, CachedToken]] = []
        pipeline = self.pipeline_class(request.cwd, served)
        out, status = cli.answer("get", request.stdin, request.env, lines.append,
                                 lambda: cli.ProtocolVerbs(request.env, lines.append, pipeline))
        for server, token in served:
            if token.expires_at is not None and token.refresh_at is not None:
                self.watch(server, request.cwd, request.env, token, now)
        err = "".join(line + "\n" for line in lines).encode("utf-8", "replace")
        return answer_bytes(status, out, err)

    def status_json(self) -> str:
        import json

        with self._lock:
            return json.dumps({"running": True, "pid": os.getpid(), "release": __version__, "home": self.home,
                               "socket": self.path, "idle_timeout": self.idle_timeout,
                               "started_at": self.started_at, "last_request_at": self.last_request_at,
                               "requests": self.requests, "gets": self.gets, "refreshes": self.refreshes, "refused": self.refused,
                               "watched": len(self._watches)}) + "\n"

    # -- refreshing ahead --------------------------------------------------------------------------------------

    def watch(self, server: str, cwd: str, env: dict[str, str], token: CachedToken, now: float) -> None:
        key = (server.strip(), cwd, tuple(sorted(env.items())))
        with self._lock:
            watched = self._watches.get(key)
            if watched is None:
                if len(self._watches) >= MAX_WATCHED:
                    oldest = min(self._watches, key=lambda k: self._watches[k].asked_at)
                    del self._watches[oldest]
                self._watches[key] = Watch(server, cwd, env, token, now)
            else:
                watched.asked_at = max(watched.asked_at, now)
                watched.served(token)

    def due(self) -> list[Watch]:
        """The watched tokens to refresh now; those nobody asked for within the idle timeout, or expired, are
        forgotten."""
        now = self.now()
        chosen = []
        with self._lock:
            for key, watched in list(self._watches.items()):
                if now - watched.asked_at >= self.idle_timeout or now >= watched.expires_at:
                    del self._watches[key]
                elif not watched.running and now >= watched.next_try:
                    watched.running = True
                    chosen.append(watched)
        return chosen

    def refresh_due(self, wait: bool = False) -> int:
        """Start the due refreshes (REFRESH_WORKERS at a time); with `wait`, until they are done. How many."""
        futures = [self._refreshers.submit(self.refresh, watched) for watched in self.due()]
        if wait:
            for future in futures:
                future.result()
        return len(futures)

    def refresh(self, watched: Watch) -> None:
        token: Optional[CachedToken] = None
        try:
            env = watched.env
            pipeline = self.pipeline_class(watched.cwd)(Vault(home_location(env), env), env, self.log)
            token = pipeline.refresh(watched.server, watched.fetched_at)
        except IdpError as error:
            self.log(f"{PROG} agent: refreshing a token failed: {error.message}")
        except Exception as error:  # noqa: BLE001 - a refresh must not end the agent
            self.log(cli.unexpected(error, {}))
        now = self.now()
        with self._lock:
            watched.running = False
            if token is not None and token.fetched_at > watched.fetched_at and token.refresh_at is not None \
                    and token.expires_at is not None:
                watched.served(token)
                self.refreshes += 1
            else:
                watched.failures += 1
                watched.next_try = now + min(BACKOFF_FIRST * 2 ** (watched.failures - 1), BACKOFF_MAX)

    # -- serving -----------------------------------------------------------------------------------------------

    def idle(self) -> bool:
        return self.now() - self.last_request_at >= self.idle_timeout

    def stop(self) -> None:
        self._stopping.set()
        try:
            os.write(self._wake_write, b"x")
        except OSError:
            pass

    def serve(self) -> None:
        """Accept and answer until stopped or idle; then close the socket (and remove it, if it made it)."""
        assert self.listener is not None
        beat = threading.Thread(target=self._heartbeats, name="idp-agent-heartbeat", daemon=True)
        beat.start()
        import select

        self.listener.settimeout(POLL)
        try:
            while not self._stopping.is_set() and not self.idle():
                self.refresh_due()
                ready = select.select([self.listener.fileno(), self._wake_read], [], [], POLL)[0]
                if self.listener.fileno() not in ready:
                    continue
                try:
                    conn, _ = self.listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    time.sleep(0.05)  # EMFILE and the like: let answers finish
                    continue
                self.take(conn)
        finally:
            self._stopping.set()
            self.close()

    def close(self) -> None:
        self._workers.shutdown(wait=True, cancel_futures=False)
        self._refreshers.shutdown(wait=False, cancel_futures=True)
        if self.listener is not None:
            try:
                if self._made is not None and _inode(self.path) == self._made:
                    os.unlink(self.path)
            except OSError:
                pass
            self.listener.close()
        for descriptor in (self._wake_read, self._wake_write):
            try:
                os.close(descriptor)
            except OSError:
                pass

    def take(self, conn: socket.socket) -> None:
        """Check the peer, say we are here, and hand the connection to a worker."""
        try:
            if agent_client.peer_uid(conn) != os.geteuid():
                with self._lock:
                    self.refused += 1
                conn.close()
                return
            with self._lock:
                if len(self._in_flight) >= MAX_CONNECTIONS:
                    conn.close()
                    return
                conn.settimeout(READ_WITHIN)
                conn.sendall(b".")
                self._in_flight[conn] = threading.Lock()
        except OSError:
            conn.close()
            return
        self._workers.submit(self._handle, conn)

    def _handle(self, conn: socket.socket) -> None:
        try:
            try:
                reply = self.answer(read_request(conn))
            except Declined as declined:
                reply = declined_bytes(str(declined))
            except Exception as error:  # noqa: BLE001 - one connection's bug must not end the agent
                reply = declined_bytes(cli.unexpected(error, {}))
            with self._lock:
                sending = self._in_flight.pop(conn)
            with sending:
                conn.settimeout(READ_WITHIN)
                conn.sendall(reply)
        except OSError:
            pass  # the caller went away: it does the work itself
        finally:
            with self._lock:
                self._in_flight.pop(conn, None)
            conn.close()

    def _heartbeats(self) -> None:
        """A byte to every caller still waiting, every HEARTBEAT: it is alive and working (agent_client)."""
        while not self._stopping.wait(HEARTBEAT):
            with self._lock:
                waiting = list(self._in_flight.items())
            for conn, sending in waiting:
                if sending.acquire(blocking=False):
                    try:
                        with self._lock:
                            still = conn in self._in_flight
                        if still:
                            conn.send(b".", socket.MSG_DONTWAIT)
                    except OSError:
                        pass
                    finally:
                        sending.release()


def _inode(path: str) -> Optional[tuple[int, int]]:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


# -- the socket ----------------------------------------------------------------------------------------------------


class AlreadyRunning(IdpError):
    def __init__(self, path: str) -> None:
        super().__init__(f"an agent already serves this home on {path}; stop it first with: {PROG} agent stop")


def socket_path(home: str, env: Mapping[str, str]) -> str:
    path = agent_client.socket_path(home, env)
    if path is None:
        raise ConfigError(f"no socket path for the agent fits in {agent_client.SOCKET_PATH_LIMIT} bytes; set "
                          "XDG_RUNTIME_DIR (or DOCKER_CREDENTIAL_IDP_HOME) to a shorter directory")
    return path


def prepare_directory(home: str, path: str) -> None:
    """The socket's directory: made 0700 when missing; refused unless a directory of ours no one else may enter."""
    directory = os.path.dirname(path)
    if directory == home:
        fsutil.check_home(home)
    fsutil.ensure_private_dir(directory, link_ok=False)
    why = agent_client.private_directory(directory)
    if why is not None:
        raise UnsafePath(f"the agent's directory {directory} is not private ({why}); remove it, or chmod 700 it if "
                         "it is yours")


def take_lock(path: str) -> int:
    """The agent's lock (beside its socket), held for its life: another agent of the home is refused, and a socket
    left by a killed one is known as stale."""
    try:
        return fsutil.acquire_lock(path + ".lock", wait=0)
    except fsutil.LockTimeout:
        raise AlreadyRunning(path) from None


def bind(home: str, env: Mapping[str, str]) -> tuple[socket.socket, str, int]:
    """(the listening socket, its path, the agent's lock). A socket left by an agent that is gone is replaced; a link,
    a file or another user's socket in its place is refused, naming it."""
    path = socket_path(home, env)
    prepare_directory(home, path)
    lock = take_lock(path)
    try:
        listener = inherited_listener(env)
        if listener is None:
            if os.path.lexists(path):
                why = agent_client.our_socket(path)
                if why is not None:
                    raise UnsafePath(f"{path} is not a socket an agent of ours left ({why}); find out who put it "
                                     f"there, then remove it: rm {path}")
                os.unlink(path)  # ours, and no agent holds the lock: a killed agent's
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            previous = os.umask(0o177)
            try:
                listener.bind(path)
            finally:
                os.umask(previous)
            listener.listen(MAX_CONNECTIONS)
        return listener, path, lock
    except BaseException:
        os.close(lock)
        raise


def activated(env: Mapping[str, str]) -> bool:
    """Started by systemd's socket activation (LISTEN_PID, LISTEN_FDS), which passed the listening socket as
    descriptor 3."""
    return env.get("LISTEN_PID") == str(os.getpid()) and env.get("LISTEN_FDS") == "1"


def inherited_listener(env: Mapping[str, str]) -> Optional[socket.socket]:
    return socket.socket(fileno=3) if activated(env) else None


# -- the commands' side ----------------------------------------------------------------------------------------------


def control(home: str, env: Mapping[str, str], verb: str, within: float = 2.0) -> Optional[bytes]:
    """A status or stop request to the home's agent: its stdout, or None when none answers."""
    path = agent_client.socket_path(home, env)
    if path is None:
        return None
    message = agent_client.request(verb, __version__, home, "/", b"", b"")
    try:
        status, out, _ = agent_client.exchange(path, message, first_byte_within=within)
    except agent_client.NoAgent:
        return None
    return out if status == 0 else None


def status(home: str, env: Mapping[str, str]) -> dict[str, Any]:
    from .jsontext import loads

    out = control(home, env, "status")
    if out is None:
        path = agent_client.socket_path(home, env)
        return {"running": False, "home": home, "socket": path}
    found = loads(out.decode("utf-8", "replace"))
    return found if isinstance(found, dict) else {"running": False, "home": home}


def program() -> list[str]:
    """The command that runs this program: the bundle itself, else this interpreter on the package."""
    import sys

    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "docker_credential_idp"]


def start_detached(home: str, env: Mapping[str, str], idle_timeout: float, within: float = 15.0) -> dict[str, Any]:
    """Start an agent in its own session and return its status once it answers; one line naming the cause when it
    could not start."""
    import subprocess

    running = status(home, env)
    if running.get("running"):
        raise AlreadyRunning(str(running.get("socket")))
    child_env = {name: value for name, value in env.items() if name not in hardening.SECRET_VARIABLES}
    argv = [*program(), "agent", "start", "--foreground", "--idle-timeout", f"{idle_timeout:g}", "--detach-stdio"]
    child = subprocess.Popen(argv, env=child_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, start_new_session=True, cwd="/")
    assert child.stderr is not None
    said = _read_until_closed(child.stderr, within)  # the agent closes it once it listens
    child.stderr.close()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if child.poll() is not None:
            line = said.decode("utf-8", "replace").strip().splitlines()
            reason = line[-1] if line else f"it exited with status {child.returncode}"
            raise IdpError(f"the agent did not start: {reason.removeprefix(PROG + ': ')}")
        running = status(home, env)
        if running.get("running"):
            return running
        time.sleep(0.05)
    raise IdpError(f"the agent (pid {child.pid}) did not answer within {within:g} s; see {PROG} agent status")


def _read_until_closed(stream: Any, within: float) -> bytes:
    import select

    data = b""
    deadline = time.monotonic() + within
    while len(data) < 65536:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([stream], [], [], left)[0]:
            break
        chunk = os.read(stream.fileno(), 4096)
        if not chunk:
            break
        data += chunk
    return data


def run_foreground(home: str, env: Mapping[str, str], idle_timeout: float, detach_stdio: bool = False,
                   log: Callable[[str], None] = lambda line: None) -> Agent:
    """Bind and serve in this process until stopped or idle (`agent start --foreground`, systemd's service)."""
    import signal

    listener, path, lock = bind(home, env)
    try:
        agent = Agent(home, listener, path, idle_timeout, log=log, remove_on_exit=not activated(env))
        if detach_stdio:  # started by start_detached, which waits for stderr to close, and ends before it
            hardening.outlive_parent()
            devnull = os.open(os.devnull, os.O_RDWR)
            for descriptor in (0, 1, 2):
                os.dup2(devnull, descriptor)
            os.close(devnull)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: agent.stop())
            signal.signal(signal.SIGINT, lambda *_: agent.stop())
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        agent.serve()
        return agent
    finally:
        os.close(lock)


def stop(home: str, env: Mapping[str, str], within: float = 10.0) -> Optional[int]:
    """Ask the home's agent to stop and wait until it has (its lock is free); the pid it had, None when none ran.
    An agent that does not answer is sent SIGTERM (its pid from SO_PEERCRED, our uid's process only)."""
    import signal

    path = agent_client.socket_path(home, env)
    if path is None or agent_client.our_socket(path) is not None:
        return None
    pid = _peer_pid(path)
    if pid is None:
        return None
    if control(home, env, "stop") is None and _is_agent(pid):
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            lock = fsutil.acquire_lock(path + ".lock", wait=0)
        except fsutil.LockTimeout:
            time.sleep(0.05)
            continue
        os.close(lock)
        return pid
    raise IdpError(f"the agent (pid {pid}) did not stop within {within:g} s; kill it: kill {pid}")


def _is_agent(pid: int) -> bool:
    """Whether `pid` runs `agent start` (under socket activation the socket's process is systemd, never signalled)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            words = cmdline.read(65536).split(b"\0")
    except OSError:
        return False
    return b"agent" in words and b"start" in words


def _peer_pid(path: str) -> Optional[int]:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
        if agent_client.peer_uid(probe) != os.geteuid():
            return None
        return agent_client.peer_pid(probe)
    except OSError:
        return None
    finally:
        probe.close()
