"""`registry add | list | show | test | remove`: the registry table, and reading secrets from stdin, a variable or
a file (never argv)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Mapping, Optional

from ..cache_policy import DEFAULT_MIN_TTL, DEFAULT_REFRESH_MARGIN
from ..errors import InvalidInput, NotRegistered, ProviderError
from ..jsontext import is_text
from ..matching import docker_accepts_path, is_pattern, parse_reference
from ..model import DEFAULT_FETCH_TIMEOUT, DEFAULT_FETCH_TIMEOUTS, ID_MAX_LENGTH, Registration, validate_id
from ..paths import docker_config_path
from ..providers import canonical_type, get_provider, type_names
from ..providers.base import Option, format_duration
from .base import PROG, Context

if TYPE_CHECKING:
    from ..registry_check import Step

MAX_SECRET_BYTES = 1024 * 1024
COMMON_OPTIONS = (
    Option("timeout", f"seconds a provider call may take (default {DEFAULT_FETCH_TIMEOUT:g}; "
           f"{'; '.join(f'{name} {seconds:g}' for name, seconds in DEFAULT_FETCH_TIMEOUTS.items())})", metavar="SECONDS"),
    Option("refresh-margin", f"refresh a cached token this many seconds before it expires (default "
           f"{DEFAULT_REFRESH_MARGIN:g})", metavar="SECONDS"),
    Option("min-ttl", f"never serve a cached credential with less life left (default {format_duration(DEFAULT_MIN_TTL)}, "
           "what BuildKit may keep an answer; 90s, 30m, 1h style); a source whose credentials live no longer is asked "
           "on every request", metavar="DURATION"),
    Option("ca-file", "a PEM CA bundle to trust for this registration's HTTPS calls (registry, platform API)",
           metavar="PATH"),
    Option("insecure", "skip TLS verification for this registration's HTTPS calls (test registries only)", flag=True),
)


def add_parsers(commands: Any) -> None:
    registry = commands.add_parser("registry", help="manage the registry table")
    registry_commands = registry.add_subparsers(dest="registry_command", metavar="COMMAND")
    add = registry_commands.add_parser("add", help="register a registry prefix and how to get its credentials",
                                       description="Register a prefix. Types: " + ", ".join(
                                           f"{t} ({get_provider(t).summary})" for t in type_names()))
    add.add_argument("id", help=f"lowercase letters, digits, '-' and '.'; at most {ID_MAX_LENGTH} characters")
    add.add_argument("--prefix", required=True, help="host[:port][/path], e.g. registry.example.com/team; the host "
                     "may be a pattern, '*' standing for one or more characters of one label: *.azurecr.io, "
                     "*.dkr.ecr.*.amazonaws.com, *-docker.pkg.dev/my-project")
    add.add_argument("--type", required=True, help=f"one of: {', '.join(type_names())}")
    add.add_argument("--replace", action="store_true", help="overwrite an existing registration with this id")
    _add_option_arguments(add, _provider_options())
    add.set_defaults(func=cmd_add)
    listing = registry_commands.add_parser("list", help="list registrations (never secrets)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    show = registry_commands.add_parser("show", help="show one registration (never secrets)")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)
    test = registry_commands.add_parser("test", help="check the credential against the registry's /v2/ (Basic, Bearer)")
    test.add_argument("target", metavar="ID|REF", help="a registration id, or an image reference it serves")
    test.set_defaults(func=cmd_test)
    remove = registry_commands.add_parser("remove", help="remove a registration")
    remove.add_argument("id")
    remove.set_defaults(func=cmd_remove)


# -- add ---------------------------------------------------------------------------------------------------------


def cmd_add(ctx: Context, args: argparse.Namespace) -> int:
    from .. import dockerconfig

    validate_id(args.id)  # before any secret is read
    provider = get_provider(canonical_type(args.type))
    accepted = {o.name for o in provider.options} | {o.name for o in COMMON_OPTIONS}
    for name, (option, _) in _provider_options().items():
        if name not in accepted and _option_given(option, args):
            raise InvalidInput(f"--{name} does not apply to --type {provider.type_name}")
    values: dict[str, Any] = {}
    for option in provider.options:
        value = getattr(args, option.dest) if not option.secret else secret_option(ctx, option, args)
        values[option.dest] = _checked_text(value, f"--{option.name}") if isinstance(value, str) else value
    common = {option.dest: getattr(args, option.dest) for option in COMMON_OPTIONS}
    registration = ctx.table.build_registration(args.id, args.prefix, provider.type_name, values, common)
    ambiguity, settled = ctx.table.add(registration, replace_existing=args.replace)
    ctx.print(f"Registered {registration.id}: {registration.prefix} ({registration.type})")
    for line in [line for source in settled for line in source.lines()]:
        ctx.print(line)
    if ambiguity:
        ctx.warn(f"{PROG}: warning: docker, skopeo, podman, buildah and BuildKit send only the host, so their requests "
                 f"now fail: {ambiguity}")
    if registration.host not in dockerconfig.configured_hosts(docker_config_path(ctx.env)):
        ctx.warn(f"To let docker use it, run: {PROG} configure-docker")
    return 0


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


# -- secrets: stdin, a variable or a file ------------------------------------------------------------------------


def secret_option(ctx: Context, option: Option, args: argparse.Namespace) -> Optional[str]:
    """A secret option's value from stdin, a variable or a file (never argv); None when not given."""
    dest = option.dest
    given = [s for s in ("stdin", "env", "file") if getattr(args, f"{dest}_{s}", None)]
    if len(given) > 1:
        raise InvalidInput(f"give --{option.name} one way only: " + ", ".join(f"--{option.name}-{s}" for s in given))
    if not given:
        return None
    if given[0] == "stdin":
        return _stdin_secret(ctx, f"--{option.name}-stdin")
    if given[0] == "env":
        return _variable_secret(ctx.env, option, getattr(args, f"{dest}_env"))
    return _file_secret(option, getattr(args, f"{dest}_file"))


def _stdin_secret(ctx: Context, label: str) -> str:
    if ctx.stdin_is_terminal():
        # As docker login does at a terminal: ask, with echo off, instead of waiting silently for a ^D.
        import getpass

        try:
            text = getpass.getpass(f"{label.removesuffix('-stdin').lstrip('-')} (input hidden): ")
        except EOFError:
            text = ""
        if not text:
            raise InvalidInput(f"{label}: nothing was typed")
        return _checked_text(text, label)
    data = ctx.read_stdin(MAX_SECRET_BYTES + 1)
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


def _variable_secret(env: Mapping[str, str], option: Option, variable: str) -> str:
    value = env.get(variable)
    # What was typed is never quoted, not even a well-formed name: it may be the secret itself instead of the name.
    if not value and not _is_variable_name(variable):
        raise InvalidInput(f"--{option.name}-env takes the name of an environment variable (letters, digits and '_', "
                           f"not starting with a digit), which what was given is not; give the name "
                           f"(--{option.name}-env MY_VARIABLE), never the value")
    if not value:
        raise InvalidInput(f"--{option.name}-env: the variable it names is not set or empty; give the name of a "
                           f"variable (--{option.name}-env MY_VARIABLE), never the value")
    return _checked_text(str(value), f"--{option.name}-env")


def _is_variable_name(text: str) -> bool:
    """The POSIX shell's rule for a name a user can `export`."""
    return bool(text) and text.isascii() and not text[0].isdigit() and all(c.isalnum() or c == "_" for c in text)


def _file_secret(option: Option, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.read(MAX_SECRET_BYTES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"--{option.name}-file: cannot read {path}: {getattr(exc, 'strerror', None) or 'not UTF-8'}") from None
    if not value.strip() or len(value) > MAX_SECRET_BYTES:
        raise InvalidInput(f"--{option.name}-file: {path} is empty or larger than 1 MiB")
    return value.strip()


def _checked_text(value: str, label: str) -> str:
    if not is_text(value):
        raise InvalidInput(f"{label}: the value is not valid UTF-8 text")
    return value


# -- list, show, remove ------------------------------------------------------------------------------------------


def _summary(registration: Registration) -> dict[str, Any]:
    described = get_provider(registration.type).describe(registration)
    login = registration.login.username if registration.login else None
    return {"id": registration.id, "prefix": registration.prefix, "type": registration.type,
            "origin": registration.origin, "login": login, **described}


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    rolled_back = ctx.table.rolled_back()  # an older vault is listed (exit 0), with why get refuses it on stderr
    if rolled_back:
        ctx.warn(rolled_back)
    shadowed = ctx.sources.shadowed()
    rows = [{**_summary(r), "shadows": [c["id"] for c in shadowed.get(r.id, [])]}
            for r in sorted(ctx.table.registrations().values(), key=lambda r: r.id)]
    if args.json:
        ctx.print_json(rows)
        return 0
    if not rows:
        ctx.print(f"No registrations. Add one with: {PROG} registry add ID --prefix PREFIX --type TYPE ...")
        return 0
    table = [("ID", "PREFIX", "TYPE", "ORIGIN")] + [(r["id"], r["prefix"], r["type"], r["origin"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        ctx.print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    for holder, conflicts in sorted(shadowed.items()):
        for conflict in conflicts:
            ctx.print(f"{holder} shadows {conflict['id']} ({conflict['prefix']}), listed by source "
                      f"{conflict['source']}: see {PROG} source list")
    return 0


def cmd_show(ctx: Context, args: argparse.Namespace) -> int:
    summary = _summary(ctx.table.registration(args.id))
    if args.json:
        ctx.print_json(summary)
        return 0
    for key in ("id", "prefix", "type", "origin"):
        ctx.print(f"{key}: {summary[key]}")
    if summary["login"]:
        ctx.print(f"login: {summary['login']} (stored by docker login over this registration; docker logout removes it)")
    for key, value in sorted(summary["settings"].items()):
        ctx.print(f"{key}: {value}")
    ctx.print(f"secrets: {', '.join(summary['secrets']) or '(none)'} (values are never shown)")
    return 0


def cmd_remove(ctx: Context, args: argparse.Namespace) -> int:
    removed, settled = ctx.table.remove(args.id)
    if removed.source_id is not None:
        ctx.print(f"Removed {args.id}; source {removed.source_id} still lists {removed.prefix}, so its next sync brings it "
                  "back (to keep it out, register that prefix yourself, or set enable_ci false on the platform)")
        return 0
    ctx.print(f"Removed {args.id}")
    for line in [line for source in settled for line in source.lines()]:
        ctx.print(line)
    return 0


# -- test --------------------------------------------------------------------------------------------------------


def cmd_test(ctx: Context, args: argparse.Namespace) -> int:
    """Call the registry's /v2/ with the registration's credential; one line per step, then the verdict."""
    table = ctx.table.registrations()
    if args.target in table:
        registration, request = table[args.target], table[args.target].prefix
        if is_pattern(registration.prefix):
            raise InvalidInput(f"registration {registration.id!r} is the pattern {registration.prefix}; test it "
                               f"through an image it serves: {PROG} registry test HOST/REPOSITORY")
    elif not any(mark in args.target for mark in "/.:@"):  # a bare word: a mistyped id more likely than an image
        image = parse_reference(args.target)
        if not docker_accepts_path(image):  # no id and no image name: perhaps a secret, not quoted back
            raise NotRegistered("no registration has the id given, which is no image name docker accepts either "
                                "(lower-case letters and digits, joined by '.', '_' or '-'); see: "
                                f"{PROG} registry list")
        raise NotRegistered(f"no registration with id {args.target!r}, and none serves the image {image}; see: "
                            f"{PROG} registry list")
    else:
        request = parse_reference(args.target)
        registration = ctx.table.serving(request)[0]
    outcome = ctx.table.test_registration(registration, request)
    for step in outcome.steps:
        ctx.print(_step_line(step))
    for note in outcome.notes:
        ctx.print(f"note: {note}")
    if not outcome.ok:
        raise ProviderError(f"registry test: {outcome.verdict}")
    ctx.print(outcome.verdict)
    return 0


def _step_line(step: Step) -> str:
    """`GET URL[: why there was no answer] -> STATUS|no answer (N ms)`."""
    call = f"{step.call}: {step.failure}" if step.failure else step.call
    return f"{call} -> {step.status if step.status is not None else 'no answer'} ({step.milliseconds:.0f} ms)"
