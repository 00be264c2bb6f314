"""`configure-docker`: route registered hosts to this helper in docker's config.json."""

from __future__ import annotations

import argparse
from typing import Any

from .. import dockerconfig
from ..errors import InvalidInput
from ..matching import host_of, is_pattern, parse_prefix
from ..paths import docker_config_path
from .base import PROG, Context


def add_parsers(commands: Any) -> None:
    configure = commands.add_parser("configure-docker", help="route registered hosts to this helper in docker's config")
    configure.add_argument("hosts", nargs="*", metavar="HOST", help="only these hosts (default: every registered host)")
    configure.add_argument("--unset", action="store_true", help="remove the entries instead")
    configure.add_argument("--creds-store", action="store_true", help='also set (or with --unset remove) "credsStore": "idp"')
    configure.set_defaults(func=cmd_configure_docker)


def cmd_configure_docker(ctx: Context, args: argparse.Namespace) -> int:
    table = ctx.vault.registrations().values()
    registered = sorted({host_of(r.prefix) for r in table if not is_pattern(r.prefix)})
    patterns = sorted(r.prefix for r in table if is_pattern(r.prefix))
    hosts = [parse_prefix(h) for h in args.hosts] if args.hosts else registered
    if any(is_pattern(h) for h in hosts):
        raise InvalidInput("docker's credHelpers takes hosts, not patterns; name the hosts a pattern serves "
                           "(configure-docker HOST...), or use --creds-store")
    if patterns and not args.hosts and not args.creds_store and not args.unset:
        ctx.warn(f"{PROG}: note: the pattern{'s' if len(patterns) > 1 else ''} {', '.join(patterns)} cannot go into "
                 "credHelpers, which takes hosts; add --creds-store to route every host here, or name the hosts: "
                 f"{PROG} configure-docker HOST...")
    if not hosts and not args.creds_store:
        if patterns:
            return 0
        ctx.warn(f"No registrations yet, so nothing to configure. Add one with: {PROG} registry add ...")
        return 0
    path = docker_config_path(ctx.env)
    changed = dockerconfig.update(path, hosts, unset=args.unset, lock=ctx.home / "docker-config.lock",
                                  creds_store=args.creds_store)
    verb = "Removed" if args.unset else "Added"
    if changed:
        ctx.print(f"{verb} in {path}: {', '.join(changed)}")
    else:
        ctx.print(f"{path} already {'has none of these entries' if args.unset else 'routes these registries to idp'}")
    return 0
