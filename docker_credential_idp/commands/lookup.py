"""`resolve` and `creds`: which registration serves an image, and its credential for a CI step."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import InvalidInput
from ..matching import host_of, is_pattern, parse_reference
from .base import Context, iso, parse_references


def add_parsers(commands: Any) -> None:
    resolve = commands.add_parser("resolve", help="which registration serves an image reference or host, and why")
    resolve.add_argument("ref", help="an image reference (team/app:1.0, host:5000/app@sha256:...) or a host")
    resolve.add_argument("--json", action="store_true")
    resolve.set_defaults(func=cmd_resolve)
    creds = commands.add_parser("creds", help="print the credential for image references or hosts (for CI steps)",
                                description="Print the credential that serves REF. With --format docker-config, "
                                "a docker config for several REFs, one entry per registry host: write it to a file "
                                "for --authfile / REGISTRY_AUTH_FILE (skopeo, podman, buildah) or put it in "
                                "DOCKER_AUTH_CONFIG (docker CLI 28.3 and later).")
    creds.add_argument("refs", nargs="+", metavar="REF")
    creds.add_argument("--format", choices=("json", "env", "docker-config"), default="json",
                       help="json: an object with username and password; env: shell export lines; docker-config: "
                       '{"auths": {HOST: {"auth": ...}}} for every REF')
    creds.set_defaults(func=cmd_creds)


def cmd_resolve(ctx: Context, args: argparse.Namespace) -> int:
    request = parse_reference(args.ref)
    registration, selection = ctx.table.serving(request)
    result: dict[str, Any] = {"request": request, "id": registration.id, "prefix": registration.prefix,
                              "type": registration.type, "reason": selection.reason}
    token = ctx.table.token_cache().get(registration, host_of(request) if is_pattern(registration.prefix) else "")
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
    if args.format == "docker-config":
        return _docker_config(ctx, args.refs)
    if len(args.refs) > 1:
        raise InvalidInput(f"--format {args.format} prints one credential; give one REF, or use --format docker-config "
                           "for several")
    request = parse_reference(args.refs[0])
    registration, _ = ctx.table.serving(request)
    credential = ctx.table.credential(registration, request)
    registry = host_of(request)
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


def _docker_config(ctx: Context, refs: list[str]) -> int:
    from ..dockerconfig import auths_document

    by_host: dict[str, tuple[str, str, str]] = {}  # host -> (username, password, the registration serving it)
    for request in parse_references(refs):
        registration, _ = ctx.table.serving(request)
        credential = ctx.table.credential(registration, request)
        host = host_of(request)
        earlier = by_host.get(host)
        if earlier is not None and earlier[:2] != (credential.username, credential.secret):
            raise InvalidInput(f"{request} is served by registration {registration.id!r} and an earlier REF on {host} by "
                               f"{earlier[2]!r}, with another credential; a docker config holds one per host, so "
                               "write one config per registration")
        by_host[host] = (credential.username, credential.secret, registration.id)
    ctx.out.write(auths_document({host: (user, password) for host, (user, password, _) in by_host.items()}))
    return 0
