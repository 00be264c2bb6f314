"""`vault status | accept` and `cache clear`: the files behind the table."""

from __future__ import annotations

import argparse
from typing import Any

from .base import Context


def add_parsers(commands: Any) -> None:
    vault = commands.add_parser("vault", help="the encrypted vault")
    vault_commands = vault.add_subparsers(dest="vault_command", metavar="COMMAND")
    status = vault_commands.add_parser("status", help="where the vault is, its key source, how many registrations")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_vault_status)
    accept = vault_commands.add_parser("accept", help="take the vault as it is as the newest (after restoring an older "
                                       "one on purpose)")
    accept.set_defaults(func=cmd_vault_accept)
    cache = commands.add_parser("cache", help="the token cache")
    cache_commands = cache.add_subparsers(dest="cache_command", metavar="COMMAND")
    clear = cache_commands.add_parser("clear", help="forget cached tokens (of one registration, or all)")
    clear.add_argument("id", nargs="?")
    clear.set_defaults(func=cmd_cache_clear)


def cmd_vault_status(ctx: Context, args: argparse.Namespace) -> int:
    """Exit 1 when `get` would refuse the vault (an older one replaced a newer): the status is shown all the same,
    with the warning on stderr, so that a person can decide before `vault accept`."""
    rolled_back = ctx.table.rolled_back()
    if rolled_back:
        ctx.warn(rolled_back)
    status = ctx.table.status()
    if args.json:
        ctx.print_json(status)
        return 1 if rolled_back else 0
    ctx.print(f"vault: {status['path']}{'' if status['exists'] else ' (not created yet)'}")
    ctx.print(f"key source: {status['key_source']}")
    ctx.print(f"registrations: {status['registrations']} (serial {status['serial']}"
              f"{'; get refuses it until vault accept' if rolled_back else ''})")
    ctx.print(f"cached tokens: {status['cached_tokens']}")
    return 1 if rolled_back else 0


def cmd_vault_accept(ctx: Context, args: argparse.Namespace) -> int:
    serial, seen = ctx.table.accept()
    was = f"the last seen was {seen}" if seen is not None else "no serial was on record for it"
    ctx.print(f"Accepted the vault at serial {serial} ({was}); it is the newest from now on")
    return 0


def cmd_cache_clear(ctx: Context, args: argparse.Namespace) -> int:
    answers, failures = ctx.table.forget_tokens(args.id)
    held = f" and {failures} held-back failure{'s' if failures != 1 else ''}" if failures else ""
    ctx.print(f"Dropped {answers} cached token{'s' if answers != 1 else ''}{held}")
    return 0
