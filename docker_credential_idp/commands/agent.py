"""`agent start | stop | status | install`: the resident agent (agent.py) that answers `get` for this home."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..errors import InvalidInput
from .base import PROG, Context

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
UNIT_NAME = "docker-credential-idp-agent"


def duration(text: str) -> float:
    """90, 90s, 30m, 1h, 1d: seconds, at least one and at most thirty days."""
    value = text.strip().lower()
    scale = UNITS.get(value[-1:], 0)
    number = value[:-1] if scale else value
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        raise InvalidInput("--idle-timeout takes a duration such as 90s, 30m or 1h") from None
    if not 1 <= seconds <= 30 * 86400:
        raise InvalidInput("--idle-timeout must be between 1 s and 30 days")
    return seconds


def add_parsers(commands: Any) -> None:
    agent = commands.add_parser("agent", help="a resident process that answers get from memory, and refreshes tokens "
                                "before they are due")
    agent_commands = agent.add_subparsers(dest="agent_command", metavar="COMMAND")
    start = agent_commands.add_parser("start", help="start the agent for this home; returns once it answers")
    start.add_argument("--idle-timeout", default="1h", help="exit after this long without a request (default 1h)")
    start.add_argument("--foreground", action="store_true", help="serve in this process (systemd, a CI step)")
    start.add_argument("--detach-stdio", action="store_true", help=argparse.SUPPRESS)
    start.set_defaults(func=cmd_agent_start)
    stop = agent_commands.add_parser("stop", help="stop this home's agent")
    stop.set_defaults(func=cmd_agent_stop)
    status = agent_commands.add_parser("status", help="whether an agent serves this home, and what it did")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_agent_status)
    install = agent_commands.add_parser("install", help="write systemd user units that start the agent on the first "
                                        "get (socket activation)")
    install.add_argument("--idle-timeout", default="1h", help="as for start")
    install.set_defaults(func=cmd_agent_install)


def _home(ctx: Context) -> str:
    from ..paths import home_location

    return home_location(ctx.env)


def cmd_agent_start(ctx: Context, args: argparse.Namespace) -> int:
    from .. import agent

    idle = duration(args.idle_timeout)
    home = _home(ctx)
    if args.foreground:
        served = agent.run_foreground(home, ctx.env, idle, args.detach_stdio, log=ctx.warn)
        ctx.print(f"agent stopped after {served.requests} request{'s' if served.requests != 1 else ''}")
        return 0
    running = agent.start_detached(home, ctx.env, idle)
    ctx.print(f"agent started (pid {running.get('pid')}) on {running.get('socket')}; it exits after "
              f"{idle:g} s without a request")
    return 0


def cmd_agent_stop(ctx: Context, args: argparse.Namespace) -> int:
    from .. import agent

    pid = agent.stop(_home(ctx), ctx.env)
    ctx.print(f"agent (pid {pid}) stopped" if pid is not None else "no agent was running for this home")
    return 0


def cmd_agent_status(ctx: Context, args: argparse.Namespace) -> int:
    """Exit 0 when an agent answers for this home, 1 when none does (the status is printed either way)."""
    from .. import agent

    status = agent.status(_home(ctx), ctx.env)
    if args.json:
        ctx.print_json(status)
    elif status.get("running"):
        ctx.print(f"agent: running (pid {status.get('pid')}) on {status.get('socket')}")
        ctx.print(f"requests: {status.get('requests')}, refreshed ahead: {status.get('refreshes')}, tokens watched: "
                  f"{status.get('watched')}, peers refused: {status.get('refused')}")
        ctx.print(f"idle timeout: {status.get('idle_timeout'):g} s")
    else:
        ctx.print(f"agent: not running (socket {status.get('socket')})")
    return 0 if status.get("running") else 1


def unit_texts(home: str, env: Any, idle: float) -> dict[str, str]:
    """The systemd user units: a socket unit listening where `get` looks (agent_client.socket_path) and the service
    it starts on the first connection."""
    import shlex

    from .. import agent

    def literal(text: str) -> str:  # systemd expands %-specifiers in these settings: %% is a percent sign
        return text.replace("%", "%%")

    path = literal(agent.socket_path(home, env))
    # ExecStart also substitutes $NAME: $$ is a dollar sign.
    command = " ".join(literal(shlex.quote(part)).replace("$", "$$") for part in agent.program())
    return {
        f"{UNIT_NAME}.socket": (
            "[Unit]\nDescription=docker-credential-idp agent socket\n\n"
            f"[Socket]\nListenStream={path}\nSocketMode=0600\nDirectoryMode=0700\n\n"
            "[Install]\nWantedBy=sockets.target\n"),
        f"{UNIT_NAME}.service": (
            "[Unit]\nDescription=docker-credential-idp agent\n"
            f"Requires={UNIT_NAME}.socket\n\n"
            f"[Service]\nEnvironment={literal(shlex.quote('DOCKER_CREDENTIAL_IDP_HOME=' + home))}\n"
            f"ExecStart={command} agent start --foreground --idle-timeout {idle:g}\n"
            "LimitCORE=0\nNoNewPrivileges=yes\n"),
    }


def cmd_agent_install(ctx: Context, args: argparse.Namespace) -> int:
    from .. import fsutil

    idle = duration(args.idle_timeout)
    config = ctx.env.get("XDG_CONFIG_HOME") or os.path.join(ctx.env.get("HOME") or os.path.expanduser("~"), ".config")
    directory = os.path.join(config, "systemd", "user")
    os.makedirs(directory, exist_ok=True)
    for name, text in unit_texts(_home(ctx), ctx.env, idle).items():
        path = os.path.join(directory, name)
        fsutil.atomic_write(path, text.encode(), mode=0o644)
        ctx.print(f"wrote {path}")
    ctx.print(f"enable it with: systemctl --user daemon-reload && systemctl --user enable --now {UNIT_NAME}.socket")
    ctx.print(f"(the agent starts on the first get and exits after {idle:g} s without one; {PROG} agent status "
              "shows it)")
    return 0
