"""The administrative commands (everything but the protocol verbs): one module per command group, each command's
parser beside its handler. Handlers parse and print; what they do to the table is the rooms' (table.py,
sources.SourceTable, doctor.run), which they reach through the Context (base.py)."""

from __future__ import annotations

from typing import IO, Callable, Mapping, Optional, Sequence

from .. import __version__, protocol, streams
from ..errors import InvalidInput
from . import agent, checkup, cluster, docker, lookup, registry, sources, upkeep
from .base import PROG, Context, Handler, Parser, unknown_command

GROUPS = (registry, sources, lookup, cluster, docker, upkeep, checkup, agent)


def build_parser(out: Optional[IO[str]] = None) -> Parser:
    class CommandParser(Parser):  # subcommands' parsers are of the parent's class, so help goes to `out` throughout
        output = out

    parser = CommandParser(prog=PROG, description="A Docker credential helper for an internal developer platform. "
                    f"Docker calls it with one of the protocol verbs: {', '.join(protocol.VERBS)}.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.add_parsers(commands)
    return parser


def run(argv: Sequence[str], env: Mapping[str, str], out: IO[str], warn: Callable[[str], None] = streams.warn,
        read_stdin: Callable[[int], bytes] = streams.read_stdin,
        stdin_is_terminal: Callable[[], bool] = streams.stdin_is_terminal) -> int:
    """Run one command, writing its output to `out` and its warnings through `warn`; errors are IdpErrors."""
    parser = build_parser(out)
    if argv and not argv[0].startswith("-") and argv[0] not in parser.commands():
        # The protocol's own answer on stdout (docker-credential-helpers' text), the hint for people on stderr.
        out.write(f"{PROG}: unknown action: {argv[0][:64]}\n")
        warn(f"{PROG}: {unknown_command(argv[0], [*parser.command_names(), *protocol.VERBS], PROG)}")
        return 1
    args = parser.parse_args(argv)
    handler: Optional[Handler] = getattr(args, "func", None)
    if handler is None:
        group = argv[0] if argv else ""
        names = parser.commands()[group].command_names() if group in parser.commands() else []
        raise InvalidInput(f"{group} needs a command: {', '.join(names)} (see: {PROG} {group} --help)")
    return handler(Context(env, out, warn, read_stdin, stdin_is_terminal), args)
