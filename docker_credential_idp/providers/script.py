"""A user's shell script that prints `<username>:<password>` (seed 003): workload identity federation, a vault CLI,
anything the machine can reach. The script's text lives in the vault, not on disk."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from typing import Any, Mapping

from ..errors import InvalidInput, ProviderError
from ..model import Credential, Registration
from .base import FetchContext, Option, Provider, expire_option

MAX_OUTPUT = 64 * 1024
# The vault's key never reaches a user script; the registration being served does, so one script can serve many.
HIDDEN_VARIABLES = ("DOCKER_CREDENTIAL_IDP_KEY", "DOCKER_CREDENTIAL_IDP_PASSPHRASE")
PREFIX_VARIABLE = "DOCKER_CREDENTIAL_IDP_PREFIX"


class ScriptProvider(Provider):
    type_name = "script"
    summary = "a /bin/sh script kept in the vault that prints <username>:<password>"
    default_timeout = 30.0
    default_expire = 12 * 3600.0
    options = (
        Option("script", "the script's text", secret=True, required=True, from_file=True),
        expire_option("12h"),
    )

    def validate(self, settings: dict[str, Any], secrets: dict[str, str]) -> None:
        if "\0" in secrets["script"]:
            raise InvalidInput("the script contains a NUL byte; give a shell script as text")

    def fetch(self, registration: Registration, context: FetchContext) -> Credential:
        stdout, stderr, status = run_script(registration.secrets["script"], _environment(context.env, registration),
                                            context.timeout)
        if status != 0:
            raise ProviderError(f"the script exited with status {status}{_stderr_tail(stderr)}", retryable=status > 0)
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


def run_script(script: str, env: Mapping[str, str], timeout: float) -> tuple[bytes, bytes, int]:
    """Run the text with /bin/sh: no terminal, stdin from /dev/null, the whole process group killed at the time
    limit. The text goes through a pipe (`sh /dev/fd/N`) so it never shows in argv or a temporary file."""
    read_end, write_end = os.pipe()
    try:
        process = subprocess.Popen(
            ["/bin/sh", f"/dev/fd/{read_end}"], pass_fds=(read_end,), env=dict(env), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )
    except OSError as error:
        os.close(write_end)
        raise ProviderError(f"cannot start /bin/sh: {error.strerror}", retryable=False) from None
    finally:
        os.close(read_end)
    threading.Thread(target=_feed, args=(write_end, script.encode("utf-8")), daemon=True).start()
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        process.communicate()
        raise ProviderError(f"the script did not finish within {timeout:g} s; raise it with --timeout if it is slow") from None
    return stdout, stderr, process.returncode


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
        raise ProviderError(f"the script printed bytes that are not UTF-8{_stderr_tail(stderr)}", retryable=False) from None
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
                        f"{_stderr_tail(stderr)}", retryable=False)


def _stderr_tail(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr[-MAX_OUTPUT:].decode("utf-8", "replace").splitlines() if line.strip()]
    return f"; its stderr ends: {lines[-1][:200]}" if lines else ""


PROVIDER = ScriptProvider()
