"""The administrative commands (everything but the protocol verbs): argument parsing and output, nothing more."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from typing import Any, Callable, Mapping, Optional, Sequence

from . import __version__, dockerconfig, protocol
from .cache_policy import DEFAULT_REFRESH_MARGIN
from .errors import InvalidInput, NotRegistered
from .jsontext import is_text
from .matching import Selection, host_of, parse_prefix, parse_reference
from .model import Registration, Secrets, validate_id
from .paths import docker_config_path, home_dir
from .providers import canonical_type, get_provider, type_names
from .providers.base import Option
from .service import CredentialService
from .streams import read_stdin, stdin_is_terminal, warn
from .vault import Vault

PROG = "docker-credential-idp"
MAX_SECRET_BYTES = 1024 * 1024
COMMON_OPTIONS = (
    Option("timeout", "seconds a provider call may take (default 10; script 30)", metavar="SECONDS"),
    Option("refresh-margin", "refresh a cached token this many seconds before it expires (default 300)",
           metavar="SECONDS"),
    Option("ca-file", "a PEM CA bundle to trust for this registration's HTTPS calls (registry, platform API)",
           metavar="PATH"),
    Option("insecure", "skip TLS verification for this registration's HTTPS calls (test registries only)", flag=True),
)


SECRET_OPTION_NAMES = ("--password", "--token", "--secret", "--client-secret", "--secret-access-key", "--key")


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        # A leaf parser names an unknown option before argparse complains of a required one it hides (--prefx).
        if args is not None and not self._subparsers:
            unknown = sorted({a.split("=", 1)[0] for a in args if a.startswith("--") and len(a) > 2
                              and a.split("=", 1)[0] not in self._option_string_actions})
            if unknown:
                self._unknown_options(unknown)
        return super().parse_known_args(args, namespace)

    def _unknown_options(self, names: list[str]) -> None:
        # Never echo the values: a mistyped `--password hunter2` would print the password.
        if any(n in SECRET_OPTION_NAMES for n in names):
            hint = "; secrets are read from stdin or an environment variable, never from the command line"
        else:
            close = difflib.get_close_matches(names[0], list(self._option_string_actions), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
        raise InvalidInput(f"unknown option {', '.join(names)}{hint} (see: {self.prog} --help)")

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("unrecognized arguments"):
            words = message.split(":", 1)[1].split()
            names = sorted({w.split("=", 1)[0] for w in words if w.startswith("-")})
            if names:
                self._unknown_options(names)
            raise InvalidInput(f"unexpected extra arguments (see: {self.prog} --help)")
        if message.startswith("argument COMMAND: invalid choice"):
            raise InvalidInput(unknown_command(message.split("'")[1], self._command_names(), self.prog))
        raise InvalidInput(f"{message} (see: {self.prog} --help)")

    def _commands(self) -> dict[str, Parser]:
        actions = self._subparsers._group_actions if self._subparsers else []
        return {name: sub for action in actions for name, sub in (getattr(action, "choices", None) or {}).items()}

    def _command_names(self) -> list[str]:
        return list(self._commands())


def unknown_command(word: str, known: Sequence[str], prog: str) -> str:
    close = difflib.get_close_matches(word, list(known), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown command {word[:64]!r}{hint} (see: {prog} --help)"


# -- context -----------------------------------------------------------------------------------------------------


class Context:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.home = home_dir(self.env)
        self.vault = Vault(self.home, self.env)
        self.service = CredentialService(self.vault, self.env, warn=warn)

    def registration(self, registration_id: str) -> Registration:
        table = self.vault.registrations()
        if registration_id not in table:
            raise NotRegistered(f"no registration with id {registration_id!r}; see: {PROG} registry list")
        return table[registration_id]


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _summary(registration: Registration) -> dict[str, Any]:
    described = get_provider(registration.type).describe(registration)
    login = registration.login.username if registration.login else None
    return {"id": registration.id, "prefix": registration.prefix, "type": registration.type,
            "origin": registration.origin, "login": login, **described}


# -- secrets -----------------------------------------------------------------------------------------------------


def _read_stdin_secret(label: str) -> str:
    if stdin_is_terminal():
        # As docker login does at a terminal: ask, with echo off, instead of waiting silently for a ^D.
        import getpass

        try:
            text = getpass.getpass(f"{label.removesuffix('-stdin').lstrip('-')} (input hidden): ")
        except EOFError:
            text = ""
        if not text:
            raise InvalidInput(f"{label}: nothing was typed")
        return _checked_text(text, label)
    data = read_stdin(MAX_SECRET_BYTES + 1)
    if len(data) > MAX_SECRET_BYTES:
        raise InvalidInput(f"{label} on stdin is larger than 1 MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{label} on stdin is not UTF-8 text") from None
    text = text.removesuffix("\n").removesuffix("\r")  # as docker login --password-stdin does
    if not text:
        raise InvalidInput(f"{label}: stdin was empty")
    return text


def _checked_text(value: str, label: str) -> str:
    if not is_text(value):
        raise InvalidInput(f"{label}: the value is not valid UTF-8 text")
    return value


def _resolve_secret(option: Option, args: argparse.Namespace, env: Any) -> Optional[str]:
    dest = option.dest
    given = [s for s in ("stdin", "env", "file") if getattr(args, f"{dest}_{s}", None)]
    if len(given) > 1:
        raise InvalidInput(f"give --{option.name} one way only: " + ", ".join(f"--{option.name}-{s}" for s in given))
    if not given:
        return None
    source = given[0]
    if source == "stdin":
        return _read_stdin_secret(f"--{option.name}-stdin")
    if source == "env":
        variable = getattr(args, f"{dest}_env")
        value = env.get(variable)
        if not value:
            # Not quoted: what was typed may be the secret itself instead of the variable's name.
            raise InvalidInput(f"--{option.name}-env: the variable it names is not set or empty; give the name of a "
                               f"variable (--{option.name}-env MY_VARIABLE), never the value")
        return _checked_text(str(value), f"--{option.name}-env {variable}")
    path = getattr(args, f"{dest}_file")
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.read(MAX_SECRET_BYTES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"--{option.name}-file: cannot read {path}: {getattr(exc, 'strerror', None) or 'not UTF-8'}") from None
    if not value.strip() or len(value) > MAX_SECRET_BYTES:
        raise InvalidInput(f"--{option.name}-file: {path} is empty or larger than 1 MiB")
    return value.strip()


# -- registry ----------------------------------------------------------------------------------------------------


def _provider_options() -> dict[str, tuple[Option, dict[str, set[str]]]]:
    """Every option by name, with its help texts and the types each applies to (types share --region and the like,
    sometimes with a meaning of their own, as --registry-id)."""
    table: dict[str, tuple[Option, dict[str, set[str]]]] = {
        o.name: (o, {o.help: set(type_names())}) for o in COMMON_OPTIONS}
    for type_name in type_names():
        for option in get_provider(type_name).options:
            helps = table.setdefault(option.name, (option, {}))[1]
            helps.setdefault(option.help, set()).add(type_name)
    return table


def _add_option_arguments(parser: argparse.ArgumentParser, options: dict[str, tuple[Option, dict[str, set[str]]]]) -> None:
    group = parser.add_argument_group("type options (secrets only through stdin, a variable or a file)")
    everyone = set(type_names())
    for name, (option, helps) in sorted(options.items()):
        text = "; ".join(h + ("" if types == everyone else f" [{', '.join(sorted(types))}]") for h, types in helps.items())
        if option.secret:
            group.add_argument(f"--{name}-stdin", action="store_true", help=f"read {text} from stdin")
            group.add_argument(f"--{name}-env", metavar="VAR", help="read it from variable VAR")
            if option.from_file:
                group.add_argument(f"--{name}-file", metavar="PATH", help="read it from PATH")
        elif option.flag:
            group.add_argument(f"--{name}", action="store_true", default=None, help=text)
        else:
            group.add_argument(f"--{name}", metavar=option.metavar or name.upper().replace("-", "_"), help=text)


def _option_given(option: Option, args: argparse.Namespace) -> bool:
    if option.secret:
        return any(getattr(args, f"{option.dest}_{s}", None) for s in ("stdin", "env", "file"))
    return getattr(args, option.dest, None) not in (None, False)


def cmd_registry_add(ctx: Context, args: argparse.Namespace) -> int:
    validate_id(args.id)
    type_name = canonical_type(args.type)
    prefix = parse_prefix(args.prefix)
    provider = get_provider(type_name)
    accepted = {o.name for o in provider.options} | {o.name for o in COMMON_OPTIONS}
    for name, (option, _) in _provider_options().items():
        if name not in accepted and _option_given(option, args):
            raise InvalidInput(f"--{name} does not apply to --type {type_name}")
    values: dict[str, Any] = {}
    for option in provider.options:
        value = getattr(args, option.dest) if not option.secret else _resolve_secret(option, args, ctx.env)
        values[option.dest] = _checked_text(value, f"--{option.name}") if isinstance(value, str) else value
    settings, secrets = provider.configure(values)
    provider.check_installed()
    if args.timeout is not None:
        settings["timeout"] = _positive_seconds(args.timeout, "--timeout", 3600)
    if args.refresh_margin is not None:
        settings["refresh_margin"] = _positive_seconds(args.refresh_margin, "--refresh-margin", 86400)
    if args.ca_file is not None:
        settings["ca_file"] = _readable_file(args.ca_file, "--ca-file")
    if args.insecure:
        settings["insecure"] = True
    registration = Registration(args.id, prefix, type_name, settings, Secrets(secrets))
    provider.check_prefix(registration)

    def change(table: dict[str, Registration]) -> None:
        if args.id in table and not args.replace:
            raise InvalidInput(f"registration {args.id!r} already exists; add --replace to overwrite it")
        for other in table.values():
            if other.prefix == prefix and other.id != args.id:
                raise InvalidInput(f"prefix {prefix} is already registered as {other.id!r}; remove it or pick another prefix")
        table[args.id] = registration

    ctx.vault.update(change)
    print(f"Registered {args.id}: {prefix} ({type_name})")
    ambiguity = ctx.service.ambiguity_after_change(host_of(prefix))
    if ambiguity:
        warn(f"{PROG}: warning: docker, skopeo, podman, buildah and BuildKit send only the host, so their requests "
             f"now fail: {ambiguity}")
    if host_of(prefix) not in dockerconfig.configured_hosts(docker_config_path(ctx.env)):
        warn(f"To let docker use it, run: {PROG} configure-docker")
    return 0


def _readable_file(path: str, flag: str) -> str:
    absolute = os.path.abspath(path)
    try:
        with open(absolute, "rb") as handle:
            handle.read(1)
    except OSError as error:
        raise InvalidInput(f"{flag}: cannot read {path}: {error.strerror}") from None
    return absolute


def _positive_seconds(value: str, flag: str, most: int) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= most:
        raise InvalidInput(f"{flag} must be a number of seconds between 0 and {most}")
    return seconds


def cmd_registry_list(ctx: Context, args: argparse.Namespace) -> int:
    rows = [_summary(r) for r in sorted(ctx.vault.registrations().values(), key=lambda r: r.id)]
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print(f"No registrations. Add one with: {PROG} registry add ID --prefix PREFIX --type TYPE ...")
        return 0
    table = [("ID", "PREFIX", "TYPE", "ORIGIN")] + [(r["id"], r["prefix"], r["type"], r["origin"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    return 0


def cmd_registry_show(ctx: Context, args: argparse.Namespace) -> int:
    summary = _summary(ctx.registration(args.id))
    if args.json:
        _print_json(summary)
        return 0
    for key in ("id", "prefix", "type", "origin"):
        print(f"{key}: {summary[key]}")
    if summary["login"]:
        print(f"login: {summary['login']} (stored by docker login over this registration; docker logout removes it)")
    for key, value in sorted(summary["settings"].items()):
        print(f"{key}: {value}")
    print(f"secrets: {', '.join(summary['secrets']) or '(none)'} (values are never shown)")
    return 0


def cmd_registry_remove(ctx: Context, args: argparse.Namespace) -> int:
    def change(table: dict[str, Registration]) -> None:
        if args.id not in table:
            raise NotRegistered(f"no registration with id {args.id!r}; see: {PROG} registry list")
        del table[args.id]

    ctx.vault.update(change)
    ctx.service.token_cache().drop([args.id], ctx.service.now())
    print(f"Removed {args.id}")
    return 0


def cmd_registry_test(ctx: Context, args: argparse.Namespace) -> int:
    """Call the registry's /v2/ with the registration's credential; one line per step, then the verdict."""
    from . import registry_check
    from .errors import ProviderError
    from .timebox import TimedOut, call_within

    table = ctx.vault.registrations()
    if args.target in table:
        registration = table[args.target]
    elif not any(mark in args.target for mark in "/.:@"):  # a bare word: a mistyped id more likely than an image
        raise NotRegistered(f"no registration with id {args.target!r}, and none serves the image "
                            f"{parse_reference(args.target)}; see: {PROG} registry list")
    else:
        registration = _serving(ctx, parse_reference(args.target))[0]
    credential = ctx.service.credential(registration)
    host, _, path = registration.prefix.partition("/")
    timeout = registration.fetch_timeout
    try:
        outcome = call_within(timeout + 1, lambda: registry_check.check(
            host, path, credential.username, credential.secret, registration.settings, timeout, registration.id))
    except TimedOut:
        raise ProviderError(f"registry test: {host} did not finish the handshake within --timeout {timeout:g} s; raise "
                            "it with registry add --replace --timeout if the registry is slow") from None
    for step in outcome.steps:
        print(f"{step.what} -> {step.status if step.status is not None else 'no answer'} ({step.milliseconds:.0f} ms)")
    for note in outcome.notes:
        print(f"note: {note}")
    if not outcome.ok:
        raise ProviderError(f"registry test: {outcome.verdict}")
    print(outcome.verdict)
    return 0


def cmd_cache_clear(ctx: Context, args: argparse.Namespace) -> int:
    if args.id:
        ctx.registration(args.id)
    cache = ctx.service.token_cache()
    dropped = cache.drop([args.id] if args.id else None, ctx.service.now())
    print(f"Dropped {dropped} cached token{'s' if dropped != 1 else ''}")
    return 0


# -- resolve / creds ---------------------------------------------------------------------------------------------


def _serving(ctx: Context, request: str) -> tuple[Registration, Selection]:
    """The registration serving a request, or a NotRegistered that says so in the admin commands' words."""
    from .errors import CredentialsNotFound

    try:
        return ctx.service.choose(request)
    except CredentialsNotFound:
        raise NotRegistered(f"no registration serves {request}; see: {PROG} registry list, or add one with: "
                            f"{PROG} registry add") from None


def cmd_resolve(ctx: Context, args: argparse.Namespace) -> int:
    request = parse_reference(args.ref)
    registration, selection = _serving(ctx, request)
    result = {"request": request, "id": registration.id, "prefix": registration.prefix,
              "type": registration.type, "reason": selection.reason}
    cache = ctx.service.token_cache()
    token = cache.get(registration)
    if token and token.expires_at is not None:
        result["token_expires_at"] = token.expires_at
    if args.json:
        _print_json(result)
        return 0
    print(f"{request} -> {registration.id} ({registration.type}, prefix {registration.prefix}): {selection.reason}")
    if token and token.expires_at is not None:
        print(f"cached token valid until {_iso(token.expires_at)}")
    return 0


def _iso(timestamp: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def cmd_creds(ctx: Context, args: argparse.Namespace) -> int:
    registration, _ = _serving(ctx, parse_reference(args.ref))
    credential = ctx.service.credential(registration)
    registry = host_of(registration.prefix)
    if args.format == "env":
        for name, value in (("REGISTRY_SERVER", registry), ("REGISTRY_USERNAME", credential.username),
                            ("REGISTRY_PASSWORD", credential.secret)):
            print(f"export {name}={_shell_quote(value)}")
        if credential.expires_at:
            print(f"export REGISTRY_EXPIRES_AT={_iso(credential.expires_at)}")
        return 0
    _print_json({"registry": registry, "registration": registration.id, "username": credential.username,
                 "password": credential.secret,
                 "expires_at": _iso(credential.expires_at) if credential.expires_at else None})
    return 0


# -- kubernetes --------------------------------------------------------------------------------------------------


def cmd_kubelet(ctx: Context, args: argparse.Namespace) -> int:
    """The kubelet image credential provider: CredentialProviderRequest on stdin, response on stdout."""
    from . import kubernetes
    from .errors import CredentialsNotFound

    api_version, image = kubernetes.parse_request(read_stdin(kubernetes.MAX_REQUEST_BYTES + 1))
    request = parse_reference(image)
    match = None
    margin = DEFAULT_REFRESH_MARGIN
    try:
        registration, _ = ctx.service.choose(request)
    except CredentialsNotFound:
        registration = None
    if registration is not None:
        credential = ctx.service.credential(registration)
        siblings = ctx.vault.registrations_on_host(host_of(registration.prefix))
        match = kubernetes.KubeletMatch(registration.prefix, credential.username, credential.secret,
                                        credential.expires_at, shares_host=len(siblings) > 1)
        margin = float(registration.settings.get("refresh_margin", DEFAULT_REFRESH_MARGIN))
    print(json.dumps(kubernetes.response(api_version, match, ctx.service.now(), margin)))
    return 0


def cmd_kubelet_config(ctx: Context, args: argparse.Namespace) -> int:
    from . import kubernetes

    if not kubernetes.is_duration(args.default_cache_duration):
        raise InvalidInput(f"--default-cache-duration {args.default_cache_duration[:40]!r} is not a duration the "
                           "kubelet reads; write it like 30s, 10m, 1h or 1h30m")
    prefixes = [r.prefix for r in ctx.vault.registrations().values()]
    home = None if args.no_home else (args.home or str(ctx.home))
    sys.stdout.write(kubernetes.provider_config(prefixes, home, args.default_cache_duration))
    return 0


def cmd_pull_secret(ctx: Context, args: argparse.Namespace) -> int:
    from . import kubernetes

    auths: dict[str, tuple[str, str]] = {}
    now = ctx.service.now()
    for ref in args.refs:
        registration, _ = _serving(ctx, parse_reference(ref))
        credential = ctx.service.credential(registration)
        auths[registration.prefix] = (credential.username, credential.secret)
        if credential.expires_at is not None:
            hours, minutes = divmod(max(0, int(credential.expires_at - now)) // 60, 60)
            warn(f"{PROG}: warning: the credential for {registration.prefix} expires at {_iso(credential.expires_at)} "
                 f"(in {hours}h{minutes:02d}m) and a pull secret does not refresh itself; regenerate it before then, "
                 f"or let the kubelet ask this helper (see: {PROG} kubelet-config)")
    sys.stdout.write(kubernetes.pull_secret(auths, args.name, args.namespace, args.format))
    return 0


# -- docker / vault ----------------------------------------------------------------------------------------------


def cmd_configure_docker(ctx: Context, args: argparse.Namespace) -> int:
    registered = sorted({host_of(r.prefix) for r in ctx.vault.registrations().values()})
    hosts = [parse_prefix(h) for h in args.hosts] if args.hosts else registered
    if not hosts and not args.creds_store:
        warn(f"No registrations yet, so nothing to configure. Add one with: {PROG} registry add ...")
        return 0
    path = docker_config_path(ctx.env)
    changed = dockerconfig.update(path, hosts, unset=args.unset, lock=ctx.home / "docker-config.lock",
                                  creds_store=args.creds_store)
    verb = "Removed" if args.unset else "Added"
    if changed:
        print(f"{verb} in {path}: {', '.join(changed)}")
    else:
        print(f"{path} already {'has none of these entries' if args.unset else 'routes these registries to idp'}")
    return 0


def cmd_vault_accept(ctx: Context, args: argparse.Namespace) -> int:
    serial, seen = ctx.vault.accept()
    was = f"the last seen was {seen}" if seen is not None else "no serial was on record for it"
    print(f"Accepted the vault at serial {serial} ({was}); it is the newest from now on")
    return 0


def cmd_vault_status(ctx: Context, args: argparse.Namespace) -> int:
    status = ctx.vault.status()
    cache = ctx.service.token_cache()
    status["cached_tokens"] = len(cache.entries())
    if args.json:
        _print_json(status)
        return 0
    print(f"vault: {status['path']}{'' if status['exists'] else ' (not created yet)'}")
    print(f"key source: {status['key_source']}")
    print(f"registrations: {status['registrations']} (serial {status['serial']})")
    print(f"cached tokens: {status['cached_tokens']}")
    return 0


# -- parser ------------------------------------------------------------------------------------------------------


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="A Docker credential helper for an internal developer platform. "
                    f"Docker calls it with one of the protocol verbs: {', '.join(protocol.VERBS)}.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    registry = commands.add_parser("registry", help="manage the registry table")
    registry_commands = registry.add_subparsers(dest="registry_command", metavar="COMMAND", parser_class=Parser)
    add = registry_commands.add_parser("add", help="register a registry prefix and how to get its credentials",
                                       description="Register a prefix. Types: " + ", ".join(
                                           f"{t} ({get_provider(t).summary})" for t in type_names()))
    add.add_argument("id", help="lowercase letters, digits, '-' and '.'; at most 253 characters")
    add.add_argument("--prefix", required=True, help="host[:port][/path], e.g. registry.example.com/team")
    add.add_argument("--type", required=True, help=f"one of: {', '.join(type_names())}")
    add.add_argument("--replace", action="store_true", help="overwrite an existing registration with this id")
    _add_option_arguments(add, _provider_options())
    add.set_defaults(func=cmd_registry_add)
    listing = registry_commands.add_parser("list", help="list registrations (never secrets)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_registry_list)
    show = registry_commands.add_parser("show", help="show one registration (never secrets)")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_registry_show)
    test = registry_commands.add_parser("test", help="check the credential against the registry's /v2/ (Basic, Bearer)")
    test.add_argument("target", metavar="ID|REF", help="a registration id, or an image reference it serves")
    test.set_defaults(func=cmd_registry_test)
    remove = registry_commands.add_parser("remove", help="remove a registration")
    remove.add_argument("id")
    remove.set_defaults(func=cmd_registry_remove)

    resolve = commands.add_parser("resolve", help="which registration serves an image reference or host, and why")
    resolve.add_argument("ref", help="an image reference (team/app:1.0, host:5000/app@sha256:...) or a host")
    resolve.add_argument("--json", action="store_true")
    resolve.set_defaults(func=cmd_resolve)
    creds = commands.add_parser("creds", help="print the credential for an image reference or host (for CI steps)")
    creds.add_argument("ref")
    creds.add_argument("--format", choices=("json", "env"), default="json",
                       help="json: an object with username and password; env: shell export lines")
    creds.set_defaults(func=cmd_creds)

    kubelet = commands.add_parser("kubelet", help="the kubelet image credential provider (request on stdin)",
                                  description="Speaks credentialprovider.kubelet.k8s.io/v1 on stdin/stdout; "
                                  f"install it with the config `{PROG} kubelet-config` prints.")
    kubelet.set_defaults(func=cmd_kubelet)
    kubelet_config = commands.add_parser("kubelet-config", help="print a kubelet CredentialProviderConfig (YAML)")
    kubelet_config.add_argument("--home", help="DOCKER_CREDENTIAL_IDP_HOME on the node (default: this one)")
    kubelet_config.add_argument("--no-home", action="store_true", help="leave the node's default home")
    kubelet_config.add_argument("--default-cache-duration", default="1h",
                                help="how long kubelet keeps a static password (default 1h); tokens say their own")
    kubelet_config.set_defaults(func=cmd_kubelet_config)
    pull_secret = commands.add_parser("pull-secret", help="print a kubernetes.io/dockerconfigjson Secret for images")
    pull_secret.add_argument("refs", nargs="+", metavar="REF", help="image references (or hosts) to cover")
    pull_secret.add_argument("--name", default="idp-registry-credentials", help="the Secret's name")
    pull_secret.add_argument("--namespace", help="the Secret's namespace (default: none, kubectl's)")
    pull_secret.add_argument("--format", choices=("yaml", "json"), default="yaml")
    pull_secret.set_defaults(func=cmd_pull_secret)

    configure = commands.add_parser("configure-docker", help="route registered hosts to this helper in docker's config")
    configure.add_argument("hosts", nargs="*", metavar="HOST", help="only these hosts (default: every registered host)")
    configure.add_argument("--unset", action="store_true", help="remove the entries instead")
    configure.add_argument("--creds-store", action="store_true", help='also set (or with --unset remove) "credsStore": "idp"')
    configure.set_defaults(func=cmd_configure_docker)

    vault = commands.add_parser("vault", help="the encrypted vault")
    vault_commands = vault.add_subparsers(dest="vault_command", metavar="COMMAND", parser_class=Parser)
    status = vault_commands.add_parser("status", help="where the vault is, its key source, how many registrations")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_vault_status)
    accept = vault_commands.add_parser("accept", help="take the vault as it is as the newest (after restoring an older "
                                       "one on purpose)")
    accept.set_defaults(func=cmd_vault_accept)
    cache = commands.add_parser("cache", help="the token cache")
    cache_commands = cache.add_subparsers(dest="cache_command", metavar="COMMAND", parser_class=Parser)
    clear = cache_commands.add_parser("clear", help="forget cached tokens (of one registration, or all)")
    clear.add_argument("id", nargs="?")
    clear.set_defaults(func=cmd_cache_clear)
    return parser


COMMANDS = ("registry", "resolve", "creds", "kubelet", "kubelet-config", "pull-secret", "configure-docker", "vault",
            "cache")


def run(argv: Sequence[str], env: Mapping[str, str]) -> int:
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        # The protocol's own answer on stdout (docker-credential-helpers' text), the hint for people on stderr.
        sys.stdout.write(f"{PROG}: unknown action: {argv[0][:64]}\n")
        warn(f"{PROG}: {unknown_command(argv[0], [*COMMANDS, *protocol.VERBS], PROG)}")
        return 1
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Optional[Callable[[Context, argparse.Namespace], int]] = getattr(args, "func", None)
    if func is None:
        group = argv[0] if argv else ""
        names = parser._commands()[group]._command_names() if group in parser._commands() else []
        raise InvalidInput(f"{group} needs a command: {', '.join(names)} (see: {PROG} {group} --help)")
    return func(Context(env), args)
