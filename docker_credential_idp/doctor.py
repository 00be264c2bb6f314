"""`doctor`: the whole chain from a client to a registry's credential, checked as docker and the containers tools
(skopeo, podman, buildah) see it, without calling out (`--online` adds a `/v2/` handshake per registration).

Each check returns Problems: what is wrong (with the host or path), why it matters, and the fix. None is healthy.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Optional

from .dockerconfig import HELPER_NAME, MAX_CONFIG_BYTES, keys_for_host
from .errors import PROG, AmbiguousRegistry, CredentialsNotFound, IdpError
from .fsutil import read_file
from .jsontext import loads, shown
from .matching import (
    DOCKER_HUB,
    DOCKER_HUB_SERVER_URL,
    SCOPE_VARIABLE,
    is_pattern,
    parse_server,
    registered_hosts,
    select,
)
from .model import Registration
from .paths import docker_config_path
from .progress import Progress

if TYPE_CHECKING:
    from .table import RegistryTable



@dataclass(frozen=True)
class Problem:
    check: str  # which check found it: docker-config, containers-auth, ambiguity, vault, identity, sudo, online
    subject: str  # the host or path it is about
    problem: str
    why: str
    fix: str

    def line(self) -> str:
        return f"{self.subject}: {self.problem}; {self.why}; fix: {self.fix}"

    def to_json(self) -> dict[str, str]:
        return asdict(self)


# The clients that look Docker Hub up under each of its credHelpers keys (dockerconfig.keys_for_host lists the keys).
DOCKER_HUB_KEY_USERS = {DOCKER_HUB: "skopeo, podman and buildah",
                        DOCKER_HUB_SERVER_URL: "the docker CLI, BuildKit, docker-py and Helm",
                        "index.docker.io": "trivy, syft and go-containerregistry"}
PASSWORD_FIELDS = ("auth", "password", "identitytoken")  # an auths entry's credential fields (docker's AuthConfig)


def read_json(path: str, empty_is_nothing: bool) -> tuple[Any, Optional[str]]:
    """A config file as the clients read it (a link followed, as docker follows a dotfile manager's), bounded and
    never blocking on a FIFO: (its JSON value, None); (None, None) when it does not exist (or, with
    `empty_is_nothing`, is blank, as docker takes it); or (None, what is wrong with it)."""
    try:
        # /dev/null, the usual "no such file" idiom, reads as empty as the clients read it; other devices are refused
        data = b"" if os.path.realpath(path) == os.devnull else read_file(path, MAX_CONFIG_BYTES)
    except OSError as error:
        if error.errno in (errno.EINVAL, errno.EFBIG):  # fsutil.read_file: not a regular file, too large
            return None, f"is {error.strerror}"
        return None, f"cannot be read ({error.strerror or error})"
    if data is None or (empty_is_nothing and not data.strip()):
        return None, None
    if not data.strip():  # skopeo, podman and buildah: "unexpected end of JSON input"
        return None, "is empty, not JSON"
    try:
        return loads(data), None
    except UnicodeDecodeError:  # its message would quote a byte of the file
        return None, "is not JSON (not UTF-8 text)"
    except ValueError as error:
        return None, f"is not JSON ({shown(error)})"


def unusual(wrong: str) -> bool:
    """A refusal of the file itself (a FIFO, a device, a huge file) rather than of what it holds."""
    return wrong.startswith("is a") or wrong.startswith("is larger")


def replace_file(path: str, wrong: str, variable: str, env: Mapping[str, str]) -> str:
    """The fix for a config file the clients cannot read. Never `rm`: the path may name a device (/dev/zero), or a
    file the user chose. A path the variable chose is fixed by pointing the variable elsewhere; one in the user's
    own config directory, by fixing or moving what is there (a link moves, not the device it names)."""
    try:
        device = stat.S_ISCHR(os.stat(path).st_mode) or stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        device = False
    if env.get(variable):
        kind = "a directory whose config.json is a regular file" if variable == "DOCKER_CONFIG" else "a regular file"
        return f"{'' if device or unusual(wrong) else 'fix the file, or '}point {variable} at {kind} (or unset it)"
    if device and not os.path.islink(path):
        return f"put a regular file at {path} in place of the device"
    return f"fix it, or move it away (a login writes it again): mv {path} {path}.moved"


def docker_config(env: Mapping[str, str], table: Optional[Iterable[Registration]], serves: Callable[[str], bool],
                  on_path: Callable[[str], bool]) -> list[Problem]:
    """credHelpers, credsStore and auths in docker's config.json: helpers that are missing, entries docker cannot
    read, keys that are no registry host; and, when the registrations are known (`table`), hosts routed here that
    nothing serves, registered hosts routed elsewhere, nowhere or under some of their keys only (for skopeo and
    podman only credHelpers counts), and passwords in auths for hosts served here."""
    path = docker_config_path(env)
    config, wrong = read_json(str(path), empty_is_nothing=True)
    if wrong:
        why = ("docker and the containers tools read it whole: they hang on a FIFO and run out of memory on a device"
               if unusual(wrong) else "docker then uses no credential helper at all")
        return [Problem("docker-config", str(path), wrong, why, replace_file(str(path), wrong, "DOCKER_CONFIG", env))]
    config = {} if config is None else config
    if not isinstance(config, dict):
        return [Problem("docker-config", str(path), "does not hold a JSON object", "docker cannot read it",
                        "fix or move the file")]
    problems = fields_docker_cannot_read(path, config)
    found = config.get("credHelpers")
    helpers: dict[str, str] = {k: v for k, v in found.items() if isinstance(v, str)} if isinstance(found, dict) else {}
    store = config.get("credsStore") if isinstance(config.get("credsStore"), str) else None
    # configure-docker leaves another helper's entry as it is unless --force: the fix says so.
    for name, where, take_over in sorted({(v, f"credHelpers[{shown(k)}]", f"--force {shown(k)}")
                                          for k, v in helpers.items()}
                                         | ({(store, "credsStore", "--force --creds-store")} if store else set())):
        if not on_path(f"docker-credential-{name}"):
            problems.append(Problem(
                "docker-config", f"{path} {where}",
                f"names the helper docker-credential-{shown(name)}, which is not on PATH",
                "docker fails every pull, push and login for it (Docker Desktop rewrites credsStore to 'desktop')",
                f"install docker-credential-{shown(name)}, or point it at this helper: {PROG} configure-docker "
                f"{take_over}"))
    for key, value in sorted(helpers.items()):
        if value != HELPER_NAME:
            continue
        try:
            request = parse_server(key)
        except IdpError as error:
            problems.append(Problem(
                "docker-config", shown(key), f"is routed to this helper, but is not a registry host ({error.message})",
                "no client sends it, so the host it was meant for is not routed here",
                f"correct the key in {path} credHelpers, or remove it"))
            continue
        if table is not None and not serves(request):
            problems.append(Problem(
                "docker-config", shown(key), "is routed to this helper, but no registration serves it",
                "every pull from it gets 'credentials not found' and goes on anonymously",
                f"{PROG} registry add ID --prefix {shown(key)} ..., or {PROG} configure-docker {shown(key)} --unset"))
    if table is not None:
        problems += registered_hosts_not_routed(table, helpers, store)
        problems += auths_holding_passwords(path, config, serves)
    return problems


def fields_docker_cannot_read(path: Path, config: dict[str, Any]) -> list[Problem]:
    """credHelpers, credsStore and auths of another JSON type than docker's ConfigFile has: docker warns and skips
    them; containers/image, which reads credHelpers and auths but not credsStore, refuses the whole file."""
    docker = "docker warns of it on every command and skips it"
    both = f"{docker}; skopeo, podman and buildah fail for every registry"
    wrong: list[tuple[str, str, str]] = []
    for field, expected, kind, why in (("credHelpers", dict, "a JSON object", both),
                                       ("credsStore", str, "a JSON string", docker),
                                       ("auths", dict, "a JSON object", both)):
        if field in config and not isinstance(config[field], expected):
            wrong.append((field, f"is not {kind}", why))
    for field, kind, expected_entry in (("credHelpers", "a helper name (a JSON string)", str),
                                        ("auths", "a JSON object", dict)):
        entries = config.get(field)
        for key, value in sorted(entries.items() if isinstance(entries, dict) else []):
            if not isinstance(value, expected_entry):
                wrong.append((f"{field}[{shown(key)}]", f"is not {kind}", both))
    return [Problem("docker-config", f"{path} {where}", problem, why, f"fix it in {path}") for where, problem, why in wrong]


def registered_hosts_not_routed(table: Iterable[Registration], helpers: Mapping[str, str],
                                store: Optional[str]) -> list[Problem]:
    problems = []
    for host in registered_hosts(r.prefix for r in table):
        keys = keys_for_host(host)
        here = [key for key in keys if helpers.get(key) == HELPER_NAME]
        missing = [key for key in keys if key not in here]
        if not missing:
            continue
        if here:  # Docker Hub, under some of the keys its clients use only
            asked = [f"{DOCKER_HUB_KEY_USERS.get(key, 'clients')} look it up as {key} and ask "
                     f"{'docker-credential-' + shown(helpers.get(key) or store) if helpers.get(key) or store else 'no helper'}"
                     for key in missing]
            force = "--force " if any(helpers.get(key) for key in missing) else ""  # another helper's entry
            problems.append(Problem(
                "docker-config", host, f"is routed here under {', '.join(here)} but not under {' or '.join(missing)}",
                "; ".join(asked), f"{PROG} configure-docker {force}{host}"))
            continue
        others = sorted({helpers[key] for key in keys if helpers.get(key)})
        if others:
            problems.append(Problem(
                "docker-config", host,
                f"is registered here but credHelpers routes it to docker-credential-{shown(others[0])}",
                "docker and the containers tools ask that helper instead of this one",
                f"{PROG} configure-docker --force {host}"))
        elif store == HELPER_NAME:
            problems.append(Problem(
                "docker-config", host, "is routed here only by credsStore",
                "skopeo, podman and buildah read credHelpers but not credsStore, so they pull it anonymously",
                f"{PROG} configure-docker {host}"))
        else:
            problems.append(Problem(
                "docker-config", host, "is registered but neither credHelpers nor credsStore routes it here",
                f"docker asks {'docker-credential-' + shown(store) if store else 'no helper'} for it",
                f"{PROG} configure-docker {host}"))
    return problems


def auths_holding_passwords(path: Path, config: Mapping[str, Any], serves: Callable[[str], bool]) -> list[Problem]:
    """auths entries with a credential (docker writes an empty entry for a host a helper keeps) for a host served
    here: a classic build (GetAllCredentials), the clients that read auths alone and a docker without the helper use
    it instead of, or beside, the helper's fresh one. The value is never shown."""
    auths = config.get("auths")
    problems = []
    for key, entry in sorted(auths.items() if isinstance(auths, dict) else []):
        fields = [field for field in PASSWORD_FIELDS if isinstance(entry, dict) and entry.get(field)]
        if not fields:
            continue
        try:
            request = parse_server(key)
        except IdpError:
            continue
        if serves(request):
            problems.append(Problem(
                "docker-config", f"{path} auths[{shown(key)}]",
                f"holds a credential ({', '.join(fields)}) for a host this helper serves",
                "a classic docker build, oras-py and any client that reads auths send it instead of, or beside, the "
                "helper's, and it goes stale",
                f"docker logout {shown(key)} (it also erases a docker login kept by this helper), or remove the entry "
                f"from {path}"))
    return problems


def ambiguous_hosts(table: list[Registration], env: Mapping[str, str]) -> list[Problem]:
    """Hosts whose path-scoped registrations a host-only request (docker, skopeo, podman, BuildKit) cannot choose
    between, with the scope variable as it is set."""
    problems = []
    candidates = [(r.prefix, r.id) for r in table]
    for host in registered_hosts(r.prefix for r in table):
        try:
            select(host, candidates, env.get(SCOPE_VARIABLE))
        except AmbiguousRegistry as error:
            problems.append(Problem("ambiguity", host, "has several path-scoped registrations",
                                    "docker and the containers tools send only the host, so their requests fail",
                                    f"set {SCOPE_VARIABLE} to an id or an image prefix for each job ({error.message})"))
        except CredentialsNotFound:
            pass
    return problems


def containers_auth_paths(env: Mapping[str, str], euid: int) -> list[str]:
    """The auth files skopeo, podman and buildah read before docker's config (containers/image,
    pkg/docker/config): REGISTRY_AUTH_FILE alone when it is set."""
    if env.get("REGISTRY_AUTH_FILE"):
        return [env["REGISTRY_AUTH_FILE"]]
    runtime = env.get("XDG_RUNTIME_DIR") or os.path.join("/run", "containers", str(euid))
    config_home = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    return [os.path.join(runtime, "containers", "auth.json"), os.path.join(config_home, "containers", "auth.json")]


def containers_auth_files(env: Mapping[str, str], serves: Optional[Callable[[str], bool]],
                          euid: int) -> list[Problem]:
    """The containers tools' auth files: one they cannot read fails them for every registry; and (`serves` known)
    credentials in them for hosts this helper serves: skopeo, podman and buildah use those first (podman login
    writes them there), so the helper's fresh credential is never asked for."""
    problems = []
    for path in containers_auth_paths(env, euid):
        content, wrong = read_json(path, empty_is_nothing=False)
        if not wrong and content is not None and not isinstance(content, dict):
            wrong = "does not hold a JSON object"
        elif not wrong and isinstance(content, dict) and not isinstance(content.get("auths", {}), dict):
            wrong = "has an auths that is not a JSON object"
        if wrong:
            why = ("skopeo, podman and buildah read it whole: they hang on a FIFO and run out of memory on a device"
                   if unusual(wrong) else "skopeo, podman and buildah fail for every registry while it is there")
            problems.append(Problem("containers-auth", path, wrong, why,
                                    replace_file(path, wrong, "REGISTRY_AUTH_FILE", env)))
            continue
        auths = content.get("auths", {}) if isinstance(content, dict) else {}
        for key in sorted(auths if serves is not None else {}):
            try:
                request = parse_server(key)
            except IdpError:
                continue
            if serves is not None and serves(request):
                problems.append(Problem(
                    "containers-auth", f"{path} auths[{shown(key)}]", "holds a credential for a host this helper serves",
                    "skopeo, podman and buildah use it instead of asking the helper, and it goes stale",
                    f"podman logout {shown(key)} (or remove the entry from {path})"))
    return problems


def vault(home: str, trusted: Callable[[], list[Registration]],
          for_diagnosis: Callable[[], list[Registration]]) -> tuple[list[Problem], Optional[list[Registration]], bool]:
    """The home, its files and the key: owner and modes (fsutil refuses what another user could have planted or
    can change), the key source, the vault's integrity and serial. Returns (problems, the registrations, whether
    they may be trusted). A vault the helper refuses but can decrypt (a home with loose modes, a serial that went
    back) is read for diagnosis only: its hosts are checked, no provider is run for it. One that cannot be
    decrypted gives no registrations (None): the checks that need them are skipped rather than guessed."""
    try:
        return [], trusted(), True
    except IdpError as error:
        refused = error.message
    try:
        table: Optional[list[Registration]] = for_diagnosis()
        note = ("doctor checked the routing of the hosts it holds without trusting it, and skipped the identity "
                "checks and handshakes")
    except IdpError:
        table = None
        note = ("doctor cannot read its registrations either, so it skipped the checks that need them (hosts "
                "routed here or registered, ambiguity, auth entries shadowing the helper, identities)")
    return [Problem("vault", home, refused, f"the helper refuses the vault, so every request fails; {note}",
                    "as the message says")], table, False


def identities(table: Iterable[Registration], check: Callable[[Registration], Optional[str]]) -> list[Problem]:
    """Each registration's provider importable and its identity found (AWS credentials in the chain, Google ADC,
    an Azure identity), without calling out."""
    problems = []
    for registration in sorted(table, key=lambda r: r.id):
        found = check(registration)
        if found:
            problems.append(Problem("identity", f"registration {registration.id} ({registration.type})", found,
                                    f"its fetches fail, so pulls from {registration.prefix} fail",
                                    f"give it an identity, or re-add it: {PROG} registry add {registration.id} "
                                    "--replace ..."))
    return problems


def running_as(env: Mapping[str, str], euid: int) -> list[Problem]:
    if euid == 0 and env.get("SUDO_USER"):
        return [Problem("sudo", f"sudo (user {env['SUDO_USER']})", "this runs as root through sudo",
                        "`sudo docker` reads root's docker config and root's vault, not the user's",
                        "run docker without sudo (add the user to the docker group), or register in root's home too")]
    return []


def run(table: RegistryTable, online: bool = False, progress: Optional[Callable[[str], None]] = None) -> list[Problem]:
    """The whole chain checked: the vault, docker's config, ambiguous hosts, the containers auth files, each
    registration's identity, sudo; with `online`, each registration's /v2/ handshake, each step written to
    `progress` once the run has taken more than a second. A refused vault is reported and the other checks still
    run: from the file read for diagnosis only when it can be decrypted, else without it."""
    steps = Progress(progress or (lambda line: None), "doctor", clock=table.now) if online else None
    try:
        if steps:
            steps.step("checking docker's config, the auth files, the vault and each registration's identity")
        problems, registrations, trusted = vault(
            table.vault.home, lambda: list(table.vault.registrations().values()),
            lambda: list(table.vault.registrations_for_diagnosis().values()))
        candidates = [(r.prefix, r.id) for r in registrations or []]

        def serves(request: str) -> bool:
            try:
                select(request, candidates, table.scope)
            except AmbiguousRegistry:
                return True  # served, if ambiguously: the ambiguity check says so
            except CredentialsNotFound:
                return False
            return True

        problems += docker_config(table.env, registrations, serves, on_path(table.env))
        problems += ambiguous_hosts(registrations or [], table.env)
        problems += containers_auth_files(table.env, serves if registrations is not None else None, os.geteuid())
        if trusted:  # no provider runs for a table the helper refuses
            problems += identities(registrations or [],
                                   lambda r: table.providers(r.type).check_identity(r, table.env))
        problems += running_as(table.env, os.geteuid())
        if online and trusted:
            assert steps is not None
            problems += handshakes(table, [r for r in registrations or [] if not is_pattern(r.prefix)], steps)
    finally:
        if steps:
            steps.close()
    return problems


def handshakes(table: RegistryTable, registrations: list[Registration], steps: Progress) -> list[Problem]:
    """doctor --online: `registry test` for each registration, one progress step each."""
    problems = []
    for number, registration in enumerate(registrations, 1):
        steps.step(f"registry test {registration.id} ({number}/{len(registrations)}): {registration.prefix}")
        try:
            outcome = table.test_registration(registration, registration.prefix)
            verdict = None if outcome.ok else outcome.verdict
        except IdpError as error:
            verdict = _without_registration(error.message, registration)
        if verdict:
            problems.append(Problem("online", f"registration {registration.id}", verdict,
                                    f"pulls from {registration.prefix} fail",
                                    f"{PROG} registry test {registration.id} shows each step"))
    return problems


def _without_registration(message: str, registration: Registration) -> str:
    """A fetch's failure after doctor's own `registration ID: `: without the `registration 'ID' (TYPE): ` fetching
    puts in front, so that the id is said once."""
    named = f"registration {registration.id!r} "
    return message.partition(": ")[2] if message.startswith(named) and ": " in message else message


def on_path(env: Mapping[str, str]) -> Callable[[str], bool]:
    return lambda name: shutil.which(name, path=env.get("PATH", os.defpath)) is not None


def as_json(problems: list[Problem]) -> str:
    return json.dumps([p.to_json() for p in problems], indent=2)
