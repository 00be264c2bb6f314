"""The client side of the resident agent (agent.py), on `get`'s path: find the agent's socket, check that it is
ours, send the request and take the answer — or say there is none, within a tight bound, so that `get` does the
work itself as it would without an agent. It imports `_socket` (not `socket.py`, 17 ms more) and only once a
socket of ours is there: with no agent, a `get` pays two `lstat`s.

The wire format (version 1), both ways a sequence of fields, each a 4-byte big-endian length and its bytes:
  request: b"idp-agent 1\\n", then the fields verb, release, home, working directory, environment (NUL-separated
           NAME=VALUE, every variable of the caller's), stdin;
  answer:  any number of b"." (the agent is alive and working: the first within FIRST_BYTE_WITHIN, then at least
           one every HEARTBEAT while the pipeline runs), then b"=" with one byte of exit status and the fields
           stdout and stderr; or b"!" and a field saying why the agent will not answer (another home, another
           release): the caller does the work itself.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing itself is not imported: this module is on the cache-hit path
if TYPE_CHECKING:
    from typing import Mapping, Optional

MAGIC = b"idp-agent 1\n"
DISABLE_VARIABLE = "DOCKER_CREDENTIAL_IDP_AGENT"  # "off": never ask the agent
# Connect, send and the agent's first byte: a hung or stopped agent costs a `get` at most this much. An agent that
# answers takes about 1 ms to say it is there (docs/performance.md).
FIRST_BYTE_WITHIN = 0.1
HEARTBEAT = 0.25  # the agent's "still working" byte while a fetch runs
SILENCE_WITHIN = 2.0  # once the agent works, longer than this without a byte: it hung; do the work here
MAX_ENVIRONMENT = 256 * 1024  # a larger environment is not sent: that `get` does the work itself
MAX_STDIN = 1024 * 1024 + 1  # protocol.MAX_INPUT_BYTES + 1, as cli reads it
MAX_ANSWER = 2 * 1024 * 1024
SOCKET_PATH_LIMIT = 107  # sun_path's 108 bytes, with its NUL
AGENT_DIRECTORY = "idp-agent"


def _digest(text: str) -> str:
    """FNV-1a (32 bits) of the home's path: which agent serves it. Only a locator — the agent compares the home
    itself — so no hashlib (about 1 ms)."""
    value = 0x811C9DC5
    for byte in text.encode("utf-8", "surrogateescape"):
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{value:08x}"


def socket_path(home: str, env: Mapping[str, str]) -> Optional[str]:
    """Where the agent of `home` listens: $XDG_RUNTIME_DIR/idp-agent/HASH.sock (one per home), else
    HOME/agent.sock in the home itself; None when neither fits in a socket address."""
    runtime = env.get("XDG_RUNTIME_DIR", "")
    candidates = []
    if os.path.isabs(runtime):
        candidates.append(os.path.join(runtime, AGENT_DIRECTORY, _digest(home) + ".sock"))
    candidates.append(os.path.join(home, "agent.sock"))
    for path in candidates:
        if len(path.encode("utf-8", "surrogateescape")) <= SOCKET_PATH_LIMIT:
            return path
    return None


def private_directory(path: str) -> Optional[str]:
    """Why `path` is not a directory of ours that no one else may enter (None when it is one)."""
    try:
        info = os.lstat(path)
    except OSError:
        return "it does not exist"
    if info.st_mode & 0o170000 != 0o040000:
        return "it is not a directory (a link or a file)"
    if info.st_uid != os.geteuid():
        return f"it belongs to uid {info.st_uid}"
    if info.st_mode & 0o077:
        return f"its mode is {info.st_mode & 0o777:o}, not 700"
    return None


def our_socket(path: str) -> Optional[str]:
    """Why `path` is not a socket of ours in a private directory (None when it is)."""
    why = private_directory(os.path.dirname(path))
    if why is not None:
        return f"its directory is not private ({why})"
    try:
        info = os.lstat(path)
    except OSError:
        return "there is none"
    if info.st_mode & 0o170000 != 0o140000:
        return "it is not a socket"
    if info.st_uid != os.geteuid():
        return f"it belongs to uid {info.st_uid}"
    return None


def field(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def encode_environment(env: Mapping[str, str]) -> bytes:
    return b"\0".join(f"{name}={value}".encode("utf-8", "surrogateescape") for name, value in env.items())


def request(verb: str, release: str, home: str, cwd: str, environment: bytes, stdin: bytes) -> bytes:
    text = [value.encode("utf-8", "surrogateescape") for value in (verb, release, home, cwd)]
    return MAGIC + b"".join(field(value) for value in (*text, environment, stdin))


def peer_uid(sock: object) -> int:
    """The uid of the process at the other end of a connected unix socket (SO_PEERCRED: pid, uid, gid)."""
    import _socket
    import sys

    credentials = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)  # type: ignore[attr-defined]
    return int.from_bytes(credentials[4:8], sys.byteorder)


def peer_pid(sock: object) -> int:
    import _socket
    import sys

    credentials = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)  # type: ignore[attr-defined]
    return int.from_bytes(credentials[0:4], sys.byteorder)


class NoAgent(Exception):
    """No agent answered (none, not ours, hung, gone, or it declined): the caller does the work itself."""


def exchange(path: str, message: bytes, first_byte_within: float = FIRST_BYTE_WITHIN,
             silence_within: float = SILENCE_WITHIN) -> tuple[int, bytes, bytes]:
    """Send `message` to the agent at `path` and return (status, stdout, stderr); NoAgent otherwise. The socket and
    its directory are checked first, and the process answering must be of our uid."""
    why = our_socket(path)
    if why is not None:
        raise NoAgent(why)
    import _socket
    import time

    deadline = time.monotonic() + first_byte_within
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(first_byte_within)
        sock.connect(path)
        if peer_uid(sock) != os.geteuid():
            raise NoAgent("the socket's process is of another user")
        sock.sendall(message)
        received = bytearray()
        working = False
        while True:
            if working:
                sock.settimeout(silence_within)
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NoAgent("the agent did not answer in time")
                sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                raise NoAgent("the agent closed the connection before answering")
            received += chunk
            if len(received) > MAX_ANSWER:
                raise NoAgent("the agent's answer is too large")
            working = True
            answer = _parse_answer(received)
            if answer is not None:
                return answer
    except OSError as error:  # refused, reset, timed out (TimeoutError is an OSError)
        raise NoAgent(error.strerror or type(error).__name__) from None
    finally:
        sock.close()


def _parse_answer(data: bytearray) -> Optional[tuple[int, bytes, bytes]]:
    """The answer once complete (None until then); NoAgent for a refusal or a malformed one."""
    start = 0
    while start < len(data) and data[start] == 0x2E:  # "."
        start += 1
    if start == len(data):
        return None
    kind = data[start]
    if kind == 0x21:  # "!": the agent declines
        raise NoAgent("the agent declined: " + bytes(data[start + 5:start + 205]).decode("utf-8", "replace"))
    if kind != 0x3D:  # "="
        raise NoAgent("the agent's answer is malformed")
    if len(data) < start + 2:
        return None
    status = data[start + 1]
    fields: list[bytes] = []
    offset = start + 2
    for _ in range(2):
        if len(data) < offset + 4:
            return None
        size = int.from_bytes(data[offset:offset + 4], "big")
        if len(data) < offset + 4 + size:
            return None
        fields.append(bytes(data[offset + 4:offset + 4 + size]))
        offset += 4 + size
    return status, fields[0], fields[1]


def ask(verb: str, stdin: bytes, env: Mapping[str, str]) -> Optional[tuple[int, bytes, bytes]]:
    """The agent's answer to a protocol call — (exit status, stdout, stderr) exactly as the call would have made
    them — or None: no agent of ours answered, and the caller does the work itself."""
    if env.get(DISABLE_VARIABLE) == "off":
        return None
    from . import __version__
    from .paths import home_location

    try:
        home = home_location(env)
        cwd = os.getcwd()
    except Exception:  # noqa: BLE001 - no home, no cwd: the call itself says what is wrong
        return None
    path = socket_path(home, env)
    if path is None:
        return None
    environment = encode_environment(env)
    if len(environment) > MAX_ENVIRONMENT:
        return None
    try:
        return exchange(path, request(verb, __version__, home, cwd, environment, stdin))
    except NoAgent:
        return None
