"""`kubelet`, `kubelet-config` and `pull-secret`: credentials for Kubernetes nodes and namespaces."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .. import kubernetes
from ..errors import InvalidInput
from ..matching import concrete, host_of, parse_reference
from .base import PROG, Context, iso, parse_references


def add_parsers(commands: Any) -> None:
    kubelet = commands.add_parser("kubelet", help="the kubelet image credential provider (request on stdin)",
                                  description="Speaks credentialprovider.kubelet.k8s.io/v1 on stdin/stdout; "
                                  f"install it with the config `{PROG} kubelet-config` prints.")
    kubelet.set_defaults(func=cmd_kubelet)
    kubelet_config = commands.add_parser("kubelet-config", help="print a kubelet CredentialProviderConfig (YAML)")
    kubelet_config.add_argument("--home", help="DOCKER_CREDENTIAL_IDP_HOME on the node (default: this one)")
    kubelet_config.add_argument("--no-home", action="store_true", help="leave the node's default home")
    kubelet_config.add_argument("--default-cache-duration", default="1h",
                                help="how long kubelet keeps a static password (default %(default)s); tokens say their own")
    kubelet_config.set_defaults(func=cmd_kubelet_config)
    pull_secret = commands.add_parser("pull-secret", help="print a kubernetes.io/dockerconfigjson Secret for images")
    pull_secret.add_argument("refs", nargs="+", metavar="REF", help="image references (or hosts) to cover")
    pull_secret.add_argument("--name", default="idp-registry-credentials", help="the Secret's name")
    pull_secret.add_argument("--namespace", help="the Secret's namespace (default: none, kubectl's)")
    pull_secret.add_argument("--format", choices=("yaml", "json"), default="yaml")
    pull_secret.set_defaults(func=cmd_pull_secret)


def cmd_kubelet(ctx: Context, args: argparse.Namespace) -> int:
    """The kubelet image credential provider: CredentialProviderRequest on stdin, response on stdout."""
    request = kubernetes.parse_request(ctx.read_stdin(kubernetes.MAX_REQUEST_BYTES + 1))
    try:
        match = ctx.table.kubelet_match(parse_reference(request.image), request.service_account_token,
                                        request.annotations)
    except kubernetes.NoServiceAccountToken:
        # "No credentials", not to be cached, on stdout; the line on stderr is what the kubelet logs (exit 1).
        ctx.print(json.dumps(kubernetes.response(request.api_version, None, ctx.table.now())))
        raise
    ctx.print(json.dumps(kubernetes.response(request.api_version, match, ctx.table.now())))
    return 0


def cmd_kubelet_config(ctx: Context, args: argparse.Namespace) -> int:
    if not kubernetes.is_duration(args.default_cache_duration):
        raise InvalidInput(f"--default-cache-duration {args.default_cache_duration[:40]!r} is not a duration the "
                           "kubelet reads; write it like 30s, 10m, 1h or 1h30m")
    if args.home and not args.home.startswith("/"):  # the kubelet starts the helper from a directory of its own
        raise InvalidInput(f"--home {args.home[:80]!r} is a relative path, which the kubelet would resolve against a "
                           "directory of its own; give it absolute, e.g. /var/lib/docker-credential-idp")
    entries, note = ctx.table.kubelet_entries()
    home = None if args.no_home else (args.home or str(ctx.home))
    ctx.out.write(kubernetes.provider_config(entries, home, args.default_cache_duration))
    if note:
        ctx.warn(note)
    return 0


def cmd_pull_secret(ctx: Context, args: argparse.Namespace) -> int:
    auths: dict[str, tuple[str, str]] = {}
    now = ctx.table.now()
    for request in parse_references(args.refs):
        registration, _ = ctx.table.serving(request)
        credential = ctx.table.credential(registration, request)
        served = concrete(registration.prefix, host_of(request))  # a pattern's entry names the host it served
        auths[served] = (credential.username, credential.secret)
        if credential.expires_at is not None:
            hours, minutes = divmod(max(0, int(credential.expires_at - now)) // 60, 60)
            ctx.warn(f"{PROG}: warning: the credential for {served} expires at {iso(credential.expires_at)} "
                     f"(in {hours}h{minutes:02d}m) and a pull secret does not refresh itself; regenerate it before then, "
                     f"or let the kubelet ask this helper (see: {PROG} kubelet-config)")
    ctx.out.write(kubernetes.pull_secret(auths, args.name, args.namespace, args.format))
    return 0
