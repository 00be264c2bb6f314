"""The program's entry point: argv glue, stream handling and the mapping of errors to output and exit status.

Protocol verbs take a short path (no argparse) because docker calls `get` on every pull, push and build step; a
`get` the answer cache can serve takes a shorter one still (fastpath.py), before the protocol module loads.
"""

from __future__ import annotations

import os
import sys

from . import protocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Sequence

    from .fastpath import Handover

DEBUG_VARIABLE = "DOCKER_CREDENTIAL_IDP_DEBUG"


def warn(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def make_service(handover: Optional[Handover] = None):  # type: ignore[no-untyped-def]
    from .paths import home_dir
    from .service import CredentialService
    from .vault import Vault

    env = os.environ
    return CredentialService(Vault(home_dir(env), env), env, warn=warn, handover=handover)


def unexpected(error: BaseException) -> str:
    """A one-line message for a bug or an OS fault; the traceback only on request, as it may quote input."""
    if os.environ.get(DEBUG_VARIABLE):
        import traceback

        traceback.print_exception(error)
    detail = getattr(error, "strerror", None) or type(error).__name__
    return f"docker-credential-idp: unexpected error ({detail}); rerun with {DEBUG_VARIABLE}=1 for details and report it"


def run_protocol(verb: str) -> int:
    try:
        stdin = b"" if verb == "version" else sys.stdin.buffer.read(protocol.MAX_INPUT_BYTES + 1)
        out, handover = _cached_answer(stdin) if verb == "get" else (None, None)
        status = 0
        if out is None:
            out, status = protocol.handle(verb, stdin, lambda: make_service(handover))
    except Exception as error:  # noqa: BLE001 - the protocol answers on stdout whatever happens
        out, status = (unexpected(error) + "\n").encode(), 1
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    return status


def _cached_answer(stdin: bytes) -> tuple[Optional[bytes], Optional[Handover]]:
    from . import fastpath

    try:
        return fastpath.lookup(stdin, os.environ)
    except Exception:  # noqa: BLE001 - the full path answers, and reports, whatever went wrong here
        return None, None


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        sys.stdout.write(protocol.usage() + "\n")
        return 1
    if args[0] in protocol.VERBS and len(args) == 1:
        return run_protocol(args[0])
    if args[0] in ("--version", "-v"):
        return run_protocol("version")
    from . import commands
    from .errors import IdpError

    try:
        return commands.run(args)
    except IdpError as error:
        warn(f"docker-credential-idp: {error.message}")
        return error.exit_code
    except KeyboardInterrupt:
        warn("docker-credential-idp: interrupted")
        return 1
    except Exception as error:  # noqa: BLE001
        warn(unexpected(error))
        return 1
