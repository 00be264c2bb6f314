"""A user's shell script that prints `<username>:<password>` (seed 003): workload identity federation, a vault CLI,
anything the machine can reach. The script's text lives in the vault, not on disk."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

from ..errors import PROG, InvalidInput, ProviderError
from ..model import Credential, Registration
from .base import FetchContext, Option, Provider, expire_option

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping

# What is read of a script's output: an answer is one short line; chatter on stderr (progress, warnings) may run
# longer, but a script that prints without end (`yes`) must not fill this process's memory.
MAX_OUTPUT = {"stdout": 64 * 1024, "stderr": 1024 * 1024}
# The vault's key never reaches a user script; the registration being served does, so one script can serve many.
HIDDEN_VARIABLES = ("DOCKER_CREDENTIAL_IDP_KEY", "DOCKER_CREDENTIAL_IDP_PASSPHRASE")
PREFIX_VARIABLE = "DOCKER_CREDENTIAL_IDP_PREFIX"


class ScriptProvider(Provider):
    type_name = "script"
    summary = "a /bin/sh script kept in the vault that prints <username>:<password>"
    default_expire = 12 * 3600.0
    options = (
        Option("script", "the script's text", secret=True, required=True, from_file=True),
        expire_option(default_expire),
    )

    def validate(self, settings: dict[str, Any], secrets: dict[str, str]) -> None:
        if "\0" in secrets["script"]:
            raise InvalidInput("the script contains a NUL byte; give a shell script as text")

    def fetch(self, registration: Registration, context: FetchContext) -> Credential:
        stdout, stderr, status = run_script(registration.secrets["script"], _environment(context.env, registration),
                                            context.timeout)
        if status != 0:
            raise ProviderError(f"the script exited with status {status}{_stderr_tail(stderr)}")
        username, password = parse_answer(stdout, stderr)
        return Credential(username, password, context.now() + self.lifetime(registration))

    def describe(self, registration: Registration) -> dict[str, Any]:
        described = super().describe(registration)
        described["script_lines"] = len(registration.secrets["script"].splitlines())
        return described


def _environment(env: Mapping[str, str], registration: Registration) -> dict[str, str]:
    variables = {k: v for k, v in env.items() if k not in HIDDEN_VARIABLES}
    variables[PREFIX_VARIABLE] = registration.prefix
    return variables


# The script runs under this sh supervisor, in a process group of its own. A watcher in the group reads the lifeline,
# a pipe whose only writer is this process: when this process ends, however it ends (SIGKILL included), or once it
# has the script's answer, the read returns and the watcher kills the whole group, so nothing the script started
# outlives the call.
SUPERVISOR = '( read _ < "/dev/fd/$2"; kill -KILL 0 ) </dev/null >/dev/null 2>&1 & /bin/sh "/dev/fd/$1"'


def run_script(script: str, env: Mapping[str, str], timeout: float) -> tuple[bytes, bytes, int]:
    """Run the text with /bin/sh: no terminal, stdin from /dev/null, at most MAX_OUTPUT bytes read from stdout and
    from stderr, the whole process group killed at the time limit or when this process dies. The text goes
    through a pipe (`sh /dev/fd/N`) so it never shows in argv or a temporary file."""
    script_read, script_write = os.pipe()
    lifeline_read, lifeline_write = os.pipe()
    try:
        process = subprocess.Popen(
            ["/bin/sh", "-c", SUPERVISOR, f"{PROG}-script", str(script_read), str(lifeline_read)],
            pass_fds=(script_read, lifeline_read), env=dict(env), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )
    except OSError as error:
        os.close(script_write)
        os.close(lifeline_write)
        raise ProviderError(f"cannot start /bin/sh: {error.strerror}") from None
    finally:
        os.close(script_read)
        os.close(lifeline_read)
    threading.Thread(target=_feed, args=(script_write, script.encode("utf-8")), daemon=True).start()
    try:
        stdout, stderr = _collect(process, timeout)
    finally:
        os.close(lifeline_write)
    return stdout, stderr, process.returncode


def _collect(process: subprocess.Popen[bytes], timeout: float) -> tuple[bytes, bytes]:
    """The script's stdout and stderr, each bounded; the group killed on overflow or at the deadline."""
    import selectors

    assert process.stdout is not None and process.stderr is not None
    deadline = time.monotonic() + timeout
    out, err = process.stdout.fileno(), process.stderr.fileno()
    outputs = {out: bytearray(), err: bytearray()}
    names = {out: "stdout", err: "stderr"}
    try:
        with selectors.DefaultSelector() as selector:
            for descriptor in outputs:
                selector.register(descriptor, selectors.EVENT_READ)
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _stop(process, f"the script did not finish within {timeout:g} s; raise it with --timeout "
                                         "if it is slow", transient=True)
                for key, _ in selector.select(left):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fd)
                        continue
                    outputs[key.fd] += chunk
                    limit = MAX_OUTPUT[names[key.fd]]
                    if len(outputs[key.fd]) > limit:
                        raise _stop(process, f"the script printed more than {limit // 1024} KiB on {names[key.fd]}; it "
                                             "must print one line <username>:<password>")
        try:
            process.wait(max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            raise _stop(process, f"the script did not finish within {timeout:g} s; raise it with --timeout if it "
                                 "is slow", transient=True) from None
    finally:
        process.stdout.close()
        process.stderr.close()
    return bytes(outputs[out]), bytes(outputs[err])


def _stop(process: subprocess.Popen[bytes], message: str, transient: bool = False) -> ProviderError:
    _kill_group(process)
    process.wait()
    return ProviderError(message, transient=transient)


def _feed(descriptor: int, data: bytes) -> None:
    try:
        with os.fdopen(descriptor, "wb") as pipe:
            pipe.write(data)
    except OSError:  # the script finished (or exited) without reading all of itself
        pass


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        process.kill()


def parse_answer(stdout: bytes, stderr: bytes) -> tuple[str, str]:
    """One line `<username>:<password>`. A wrong answer is described by its shape; what it printed is never echoed,
    since it may be the password."""
    try:
        text = stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise ProviderError(f"the script printed bytes that are not UTF-8{_stderr_tail(stderr)}") from None
    line = text.removesuffix("\n").removesuffix("\r")
    if "\n" in line or "\r" in line:
        shape = f"{len(text.splitlines())} lines"
    elif not line.strip():
        shape = "nothing"
    elif ":" not in line:
        shape = "a line without ':'"
    elif not line.partition(":")[0] or not line.partition(":")[2]:
        shape = "an empty username or password"
    else:
        return line.partition(":")[0], line.partition(":")[2]
    raise ProviderError(f"the script must print one line <username>:<password> but printed {shape}"
                        f"{_stderr_tail(stderr)}")


def _stderr_tail(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr[-4096:].decode("utf-8", "replace").splitlines() if line.strip()]
    return f"; its stderr ends: {lines[-1][:200]}" if lines else ""


PROVIDER = ScriptProvider()
