"""The program's entry point: argv glue, stream handling and the mapping of errors to output and exit status.

Protocol verbs take a short path (no argparse) because docker calls `get` on every pull, push and build step, and
`get` goes to the pipeline alone (pipeline.py), which loads nothing heavy until it must fetch.
Every byte goes out through streams.py, so a closed or full stdout is one line on stderr, never a traceback.
"""

from __future__ import annotations

import os

from . import hardening, protocol, streams
from .errors import NOT_FOUND_MESSAGE, PROG

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Mapping, Optional, Sequence

    from .pipeline import GetPipeline
    from .service import CredsStore
    from .token_cache import CachedToken

DEBUG_VARIABLE = "DOCKER_CREDENTIAL_IDP_DEBUG"
warn = streams.warn


class ProtocolVerbs:
    """The credential store the protocol verbs use: `get` through the pipeline alone, the other verbs through the
    service (which loads the providers' table); one vault, read once, for either."""

    def __init__(self, env: Mapping[str, str], warn: Callable[[str], None] = warn,
                 pipeline: Optional[type[GetPipeline]] = None) -> None:
        from .paths import home_location
        from .vault import Vault

        self.env, self.warn, self.pipeline = env, warn, pipeline
        self.vault = Vault(home_location(env), env)
        self.debug: Optional[Callable[[str], None]] = warn if env.get(DEBUG_VARIABLE) else None

    def get(self, server: str) -> CachedToken:
        from .pipeline import GetPipeline

        return (self.pipeline or GetPipeline)(self.vault, self.env, self.warn, debug=self.debug).get(server)

    def _service(self) -> CredsStore:
        from .service import CredsStore
        from .table import RegistryTable

        return CredsStore(RegistryTable(self.vault, self.env, warn=self.warn, debug=self.debug))

    def store(self, server: str, username: str, secret: str) -> None:
        self._service().store(server, username, secret)

    def erase(self, server: str) -> None:
        self._service().erase(server)

    def list_servers(self) -> dict[str, str]:
        return self._service().list_servers()


def unexpected(error: BaseException, env: Optional[Mapping[str, str]] = None) -> str:
    """A one-line message for a bug or an OS fault; the traceback only on request, as it may quote input."""
    if (os.environ if env is None else env).get(DEBUG_VARIABLE):
        import traceback

        traceback.print_exception(error)
    detail = getattr(error, "strerror", None) or type(error).__name__
    return f"{PROG}: unexpected error ({detail}); rerun with {DEBUG_VARIABLE}=1 for details and report it"


def emit(out: bytes, status: int) -> int:
    """Write a verb's or command's stdout; when stdout cannot take it, say so on stderr and fail."""
    try:
        streams.write_stdout(out)
    except streams.OutputFailed as failure:
        streams.silence_stdout()
        warn(f"{PROG}: cannot write to stdout ({failure.reason}); give it a writable stdout (a pipe, a file or a terminal)")
        return 1
    return status


def answer(verb: str, stdin: bytes, env: Mapping[str, str], warn: Callable[[str], None] = warn,
           verbs: Optional[Callable[[], protocol.CredentialStore]] = None) -> tuple[bytes, int]:
    """A protocol call's stdout and exit status, its stderr lines said through `warn`: what the process (and the
    agent, for its callers) answers."""
    try:
        out, status = protocol.handle(verb, stdin, verbs or (lambda: ProtocolVerbs(env, warn)))
    except Exception as error:  # noqa: BLE001 - the protocol answers on stdout whatever happens
        out, status = (unexpected(error, env) + "\n").encode(), 1
    # Docker CLI drops a failing helper's stdout on pull and push but shows its stderr: say it there too. Not-found
    # is no failure to the user (docker goes on anonymously), so it stays quiet.
    if status != 0 and out.strip() != NOT_FOUND_MESSAGE.encode():
        warn(out.decode("utf-8", "replace").strip())
    return out, status


def run_protocol(verb: str, env: Mapping[str, str], stdin: Optional[bytes] = None) -> int:
    if stdin is None:
        stdin = b"" if verb == "version" else streams.read_stdin(protocol.MAX_INPUT_BYTES + 1)
    return emit(*answer(verb, stdin, env))


def ask_agent(verb: str, env: Mapping[str, str]) -> tuple[Optional[int], bytes]:
    """`get` through the resident agent (agent.py) when one of ours answers: its stderr and stdout written here, and
    the exit status; else (None, the stdin read) for the call to do the work itself, as it would with no agent."""
    from . import agent_client

    stdin = streams.read_stdin(protocol.MAX_INPUT_BYTES + 1)
    reply = agent_client.ask(verb, stdin, env)
    if reply is None:
        return None, stdin
    status, out, err = reply
    if err:
        try:
            streams.write_all(streams.STDERR, err)
        except streams.OutputFailed:
            pass
    return emit(out, status), stdin


def verb_with_arguments(verb: str, extra: Sequence[str]) -> int:
    """`get --help` and `get ARG`: protocol verbs read their input from stdin, never from argv."""
    if extra[0] in ("--help", "-h"):
        return emit(f"usage: {PROG} {verb} < INPUT\n\n{protocol.VERB_HELP[verb]}\n".encode(), 0)
    line = f"{PROG}: {verb} takes no arguments; {protocol.VERB_HELP[verb]}"
    warn(line)
    return emit((line + "\n").encode(), 1)


def main(argv: Optional[Sequence[str]] = None) -> int:
    import sys

    env: Mapping[str, str] = os.environ
    args = list(sys.argv[1:] if argv is None else argv)
    if argv is None:  # the real program, not a test calling in process
        streams.guard_standard_descriptors()
    stdin: Optional[bytes] = None
    if args == ["get"]:
        # The agent first, before hardening: the caller's environment as it is (its key source too) goes to the
        # agent's answer. This process holds no key: no core dumps is all it needs (resource, not ctypes).
        if argv is None:
            hardening.no_core_dumps()
        status, stdin = ask_agent("get", env)
        if status is not None:
            return status
    if argv is None:
        env = hardening.harden()
    if not args:
        return emit((protocol.usage() + "\n").encode(), 1)
    if args[0] in protocol.VERBS:
        return run_protocol(args[0], env, stdin) if len(args) == 1 else verb_with_arguments(args[0], args[1:])
    if args[0] in ("--version", "-v"):
        return run_protocol("version", env)
    return run_command(args, env)


def run_command(args: list[str], env: Mapping[str, str]) -> int:
    """The administrative commands. Their stdout is collected and written at the end, through emit."""
    import io

    from . import commands
    from .errors import IdpError

    buffer = io.StringIO()
    failure: Optional[str] = None
    try:
        status = commands.run(args, env, out=buffer, warn=warn)
    except IdpError as error:
        status, failure = error.exit_code, f"{PROG}: {error.message}"
    except SystemExit as exit_:  # argparse's --help and --version
        status = exit_.code if isinstance(exit_.code, int) else 1
    except KeyboardInterrupt:
        status, failure = 1, f"{PROG}: interrupted"
    except Exception as error:  # noqa: BLE001
        status, failure = 1, unexpected(error)
    status = emit(buffer.getvalue().encode("utf-8", "replace"), status)
    if failure:
        warn(failure)
    return status
