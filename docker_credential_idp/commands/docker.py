"""`configure-docker`: route registered hosts to this helper in docker's config.json."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Mapping, Optional

from .. import dockerconfig
from ..doctor import on_path
from ..errors import InvalidInput
from ..jsontext import shown
from ..matching import is_pattern, parse_prefix, registered_hosts
from ..paths import docker_config_path
from .base import PROG, Context


def add_parsers(commands: Any) -> None:
    configure = commands.add_parser("configure-docker", help="route registered hosts to this helper in docker's config")
    configure.add_argument("hosts", nargs="*", metavar="HOST", help="only these hosts (default: every registered host)")
    configure.add_argument("--unset", action="store_true",
                           help="remove the entries instead, giving back the ones --force took over")
    configure.add_argument("--creds-store", action="store_true", help='also set (or with --unset remove) "credsStore": "idp"')
    configure.add_argument("--force", action="store_true",
                           help="also take over hosts (and credsStore) routed to another helper; --unset gives them back")
    configure.set_defaults(func=cmd_configure_docker)


def cmd_configure_docker(ctx: Context, args: argparse.Namespace) -> int:
    table = ctx.table.registrations().values()
    registered = registered_hosts(r.prefix for r in table)
    patterns = sorted(r.prefix for r in table if is_pattern(r.prefix))
    hosts = [parse_prefix(h) for h in args.hosts] if args.hosts else registered
    if any(is_pattern(h) for h in hosts):
        raise InvalidInput("docker's credHelpers takes hosts, not patterns; name the hosts a pattern serves "
                           "(configure-docker HOST...), or use --creds-store")
    if patterns and not args.hosts and not args.creds_store and not args.unset:
        ctx.warn(f"{PROG}: note: the pattern{'s' if len(patterns) > 1 else ''} {', '.join(patterns)} cannot go into "
                 "credHelpers, which takes hosts; add --creds-store to route every host here, or name the hosts: "
                 f"{PROG} configure-docker HOST...")
    every_entry = args.unset and not args.hosts  # routed here, registered or not: nothing else gives them back
    if not hosts and not args.creds_store and not every_entry:
        if patterns:
            return 0
        ctx.warn(f"No registrations yet, so nothing to configure. Add one with: {PROG} registry add ...")
        return 0
    path = docker_config_path(ctx.env)
    done = dockerconfig.update(path, hosts, unset=args.unset, home=ctx.home, creds_store=args.creds_store,
                               force=args.force, every_entry=every_entry)
    report(ctx, path, done, args.unset)
    if not args.unset:
        missing = not_on_path(ctx.env)
        if missing:
            ctx.warn(missing)
    return 0


def report(ctx: Context, path: Path, done: dockerconfig.Update, unset: bool) -> None:
    # Keys may come from config.json itself (--unset takes out every entry routed here): shown escaped.
    added = [shown(key) for key in done.changed] + (['an empty "auths" object'] if done.auths_added else [])
    if added:
        ctx.print(f"{'Removed' if unset else 'Added'} in {path}: {', '.join(added)}")
    if done.taken_over:
        ctx.print(f"Took over in {path} (--unset gives them back): "
                  + ", ".join(f"{shown(key)} from docker-credential-{shown(name)}" for key, name in done.taken_over))
    if done.given_back:
        ctx.print(f"Gave back in {path}: "
                  + ", ".join(f"{shown(key)} to docker-credential-{shown(name)}" for key, name in done.given_back))
    for key, name in done.left:
        hosts = "" if key == dockerconfig.CREDS_STORE else f" {key}"
        ctx.warn(f"{PROG}: note: {key} in {path} names another helper, docker-credential-{shown(name)}, "
                 f"and was left as it is; to route it here instead: {PROG} configure-docker{hosts} --force"
                 f"{' --creds-store' if key == dockerconfig.CREDS_STORE else ''} (--unset gives it back)")
    if not done.wrote and not done.left:
        ctx.print(f"{path} already {'has none of these entries' if unset else 'routes these registries to idp'}")


def not_on_path(env: Mapping[str, str]) -> Optional[str]:
    """The warning for a helper docker cannot run: docker looks `docker-credential-idp` up on PATH, and fails every
    pull and push of a host routed to it when it is not there."""
    if on_path(env)(PROG):
        return None
    program = installed_program()
    if program:
        directory = os.path.dirname(program)
        fix = f'add {directory} to PATH (export PATH="{directory}:$PATH" in your shell profile)'
    else:
        fix = "install it where PATH finds it (python3 -m pip install . from a checkout, or pipx install .)"
    return (f"{PROG}: warning: {PROG} is not on PATH, so docker and the other clients fail every pull and push of "
            f"the hosts routed to it; {fix}")


def installed_program() -> Optional[str]:
    """This program's path: the bundle itself, the launcher it was started as, or the launcher pip put beside this
    Python (a command run in process, or through `python -m`)."""
    if getattr(sys, "frozen", False):
        return sys.executable
    candidates = [sys.argv[0]] if sys.argv and os.path.basename(sys.argv[0]) == PROG else []
    candidates.append(os.path.join(os.path.dirname(sys.executable), PROG))
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    return None
