"""`source add | sync | list | remove`: the registry table synced from a platform's list of registries."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import IdpError, InvalidInput
from ..model import DEFAULT_FETCH_TIMEOUT
from ..progress import Progress
from ..providers.base import Option, format_duration, parse_duration
from ..sources import DEFAULT_REFRESH, TYPES, new_source
from ..table import common_settings
from .base import PROG, Context, iso
from .registry import secret_option

TOKEN = Option("token", "the platform API token (a service user's bearer token)", secret=True)


def add_parsers(commands: Any) -> None:
    source = commands.add_parser("source", help="registries synced from the platform's list",
                                 description="A source keeps one platform token and makes a registration for every "
                                 "registry the platform lists with enable_ci true, re-reading the list when it is "
                                 "older than --refresh or a request finds no registration.")
    source_commands = source.add_subparsers(dest="source_command", metavar="COMMAND")
    add = source_commands.add_parser("add", help="keep a platform source and sync it at once")
    add.add_argument("id", help="lowercase letters, digits, '-' and '.'; its registrations are named ID.REGISTRY")
    add.add_argument("--type", required=True, choices=TYPES)
    add.add_argument("--url", required=True, metavar="API_BASE", help="the platform API base, e.g. "
                     "https://api.humanitec.io")
    add.add_argument("--org", required=True, help="the platform organisation")
    add.add_argument("--token-stdin", action="store_true", help="read the platform API token from stdin")
    add.add_argument("--token-env", metavar="VAR", help="read it from variable VAR")
    add.add_argument("--ca-file", metavar="PATH", help="a PEM CA bundle to trust for the platform API")
    add.add_argument("--refresh", metavar="DURATION", help=f"re-read the list when it is older than this (default "
                     f"{format_duration(DEFAULT_REFRESH)}; 30m, 1h style)")
    add.add_argument("--timeout", metavar="SECONDS", help=f"seconds one call to the platform may take (default "
                     f"{DEFAULT_FETCH_TIMEOUT:g})")
    add.add_argument("--replace", action="store_true", help="overwrite a source with this id (a new token)")
    add.set_defaults(func=cmd_add)
    sync = source_commands.add_parser("sync", help="re-read the platform's list now (every source, or one)")
    sync.add_argument("id", nargs="?")
    sync.set_defaults(func=cmd_sync)
    listing = source_commands.add_parser("list", help="the sources, when each was synced, its registrations")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    remove = source_commands.add_parser("remove", help="remove a source and the registrations synced from it")
    remove.add_argument("id")
    remove.set_defaults(func=cmd_remove)


def cmd_add(ctx: Context, args: argparse.Namespace) -> int:
    token = secret_option(ctx, TOKEN, args)
    if token is None:
        raise InvalidInput("source add needs the platform token: --token-stdin or --token-env VAR")
    common = common_settings({"timeout": args.timeout, "ca_file": args.ca_file})
    refresh = parse_duration(args.refresh) if args.refresh else None
    source = new_source(args.id, args.url, args.org, token, refresh, common.get("timeout"), common.get("ca_file"))
    progress = Progress(ctx.warn, PROG)
    try:
        report = ctx.sources.add(source, args.replace, progress.step)
        progress.finish(f"source {source.id!r}: synced")
    finally:
        progress.close()
    for line in report.lines(source.id):
        ctx.print(line)
    return 0


def cmd_sync(ctx: Context, args: argparse.Namespace) -> int:
    table = ctx.sources
    ids = [args.id] if args.id else table.ids()
    if not ids:
        ctx.print(f"No sources. Add one with: {PROG} source add ID --type platform --url URL --org ORG --token-stdin")
        return 0
    failed = 0
    progress = Progress(ctx.warn, PROG)
    try:
        for source_id in ids:
            try:
                report = table.sync(source_id, progress.step)
            except IdpError as error:
                if len(ids) == 1:
                    raise
                ctx.warn(f"{PROG}: {error.message}")
                failed += 1
                continue
            for line in report.lines(source_id):
                ctx.print(line)
        progress.finish("source sync: finished")
    finally:
        progress.close()
    return 1 if failed else 0


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    rows = ctx.sources.rows()
    if args.json:
        ctx.print_json(rows)
        return 0
    if not rows:
        ctx.print(f"No sources. Add one with: {PROG} source add ID --type platform --url URL --org ORG --token-stdin")
        return 0
    for row in rows:
        synced = iso(row["synced_at"]) if row["synced_at"] else "never"
        ctx.print(f"{row['id']}: {row['type']} {row['url']} org {row['org']}, every {format_duration(row['refresh'])}, "
                  f"synced {synced}, {len(row['registrations'])} registrations, {len(row['shadowed'])} shadowed"
                  + (f"; last sync failed: {row['last_error']}" if row["last_error"] else ""))
        for shadowed in row["shadowed"]:
            ctx.print(f"  shadowed {shadowed['id']}: {shadowed['why']}")
    return 0


def cmd_remove(ctx: Context, args: argparse.Namespace) -> int:
    removed = ctx.sources.remove(args.id)
    ctx.print(f"Removed source {args.id} and {len(removed)} registration{'s' if len(removed) != 1 else ''}")
    return 0
