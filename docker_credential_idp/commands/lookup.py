"""`resolve` and `creds`: which registration serves an image, and its credential for a CI step."""

from __future__ import annotations

import argparse
from typing import Any

from ..matching import host_of, parse_reference
from .base import Context, iso


def add_parsers(commands: Any) -> None:
    resolve = commands.add_parser("resolve", help="which registration serves an image reference or host, and why")
    resolve.add_argument("ref", help="an image reference (team/app:1.0, host:5000/app@sha256:...) or a host")
    resolve.add_argument("--json", action="store_true")
    resolve.set_defaults(func=cmd_resolve)
    creds = commands.add_parser("creds", help="print the credential for an image reference or host (for CI steps)")
    creds.add_argument("ref")
    creds.add_argument("--format", choices=("json", "env"), default="json",
                       help="json: an object with username and password; env: shell export lines")
    creds.set_defaults(func=cmd_creds)


def cmd_resolve(ctx: Context, args: argparse.Namespace) -> int:
    request = parse_reference(args.ref)
    registration, selection = ctx.service.serving(request)
    result: dict[str, Any] = {"request": request, "id": registration.id, "prefix": registration.prefix,
                              "type": registration.type, "reason": selection.reason}
    token = ctx.service.token_cache().get(registration)
    if token and token.expires_at is not None:
        result["token_expires_at"] = token.expires_at
    if args.json:
        ctx.print_json(result)
        return 0
    ctx.print(f"{request} -> {registration.id} ({registration.type}, prefix {registration.prefix}): {selection.reason}")
    if token and token.expires_at is not None:
        ctx.print(f"cached token valid until {iso(token.expires_at)}")
    return 0


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def cmd_creds(ctx: Context, args: argparse.Namespace) -> int:
    registration, _ = ctx.service.serving(parse_reference(args.ref))
    credential = ctx.service.credential(registration)
    registry = host_of(registration.prefix)
    if args.format == "env":
        for name, value in (("REGISTRY_SERVER", registry), ("REGISTRY_USERNAME", credential.username),
                            ("REGISTRY_PASSWORD", credential.secret)):
            ctx.print(f"export {name}={_shell_quote(value)}")
        if credential.expires_at:
            ctx.print(f"export REGISTRY_EXPIRES_AT={iso(credential.expires_at)}")
        return 0
    ctx.print_json({"registry": registry, "registration": registration.id, "username": credential.username,
                    "password": credential.secret,
                    "expires_at": iso(credential.expires_at) if credential.expires_at else None})
    return 0
