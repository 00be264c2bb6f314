"""`doctor`: the whole chain from a client to a registry's credential, checked as docker and the containers tools
(skopeo, podman, buildah) see it, without calling out (`--online` adds a `/v2/` handshake per registration).

Each check returns Problems: what is wrong (with the host or path), why it matters, and the fix. None is healthy.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

from .dockerconfig import HELPER_NAME, keys_for_host
from .errors import AmbiguousRegistry, CredentialsNotFound, IdpError
from .matching import DOCKER_HUB, DOCKER_HUB_SERVER_URL, SCOPE_VARIABLE, host_of, is_pattern, parse_server, select
from .model import Registration
from .paths import docker_config_path

PROG = "docker-credential-idp"


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


def docker_config(env: Mapping[str, str], table: Iterable[Registration], serves: Callable[[str], bool],
                  on_path: Callable[[str], bool]) -> list[Problem]:
    """credHelpers and credsStore in docker's config.json: helpers that are missing, hosts routed here that nothing
    serves, registered hosts routed elsewhere or nowhere (and, for skopeo and podman, only credHelpers counts)."""
    path = docker_config_path(env)
    try:
        config = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, ValueError) as error:
        return [Problem("docker-config", str(path), f"cannot be read as JSON ({getattr(error, 'strerror', None) or error})",
                        "docker then uses no credential helper at all", "fix or move the file")]
    if not isinstance(config, dict):
        return [Problem("docker-config", str(path), "does not hold a JSON object", "docker cannot read it",
                        "fix or move the file")]
    found = config.get("credHelpers")
    helpers: dict[str, Any] = found if isinstance(found, dict) else {}
    store = config.get("credsStore") if isinstance(config.get("credsStore"), str) else None
    problems: list[Problem] = []
    for name, where in sorted({(v, f"credHelpers[{k}]") for k, v in helpers.items() if isinstance(v, str)}
                              | ({(store, "credsStore")} if store else set())):
        if not on_path(f"docker-credential-{name}"):
            problems.append(Problem(
                "docker-config", f"{path} {where}", f"names the helper docker-credential-{name}, which is not on PATH",
                "docker fails every pull, push and login for it (Docker Desktop rewrites credsStore to 'desktop')",
                f"install docker-credential-{name}, or point it at this helper: {PROG} configure-docker"))
    for key, value in sorted(helpers.items()):
        if value == HELPER_NAME and not serves(key):
            problems.append(Problem(
                "docker-config", key, "is routed to this helper, but no registration serves it",
                "every pull from it gets 'credentials not found' and goes on anonymously",
                f"{PROG} registry add ID --prefix {key} ..., or {PROG} configure-docker {key} --unset"))
    for host in sorted({host_of(r.prefix) for r in table if not is_pattern(r.prefix)}):
        keys = keys_for_host(host)
        routed = {helpers.get(key) for key in keys}
        if routed == {HELPER_NAME}:
            continue
        others = sorted(v for v in routed if v and v != HELPER_NAME)
        if others:
            problems.append(Problem(
                "docker-config", host, f"is registered here but credHelpers routes it to docker-credential-{others[0]}",
                "docker and the containers tools ask that helper instead of this one", f"{PROG} configure-docker {host}"))
        elif store == HELPER_NAME:
            problems.append(Problem(
                "docker-config", host, "is routed here only by credsStore",
                "skopeo, podman and buildah read credHelpers but not credsStore, so they pull it anonymously",
                f"{PROG} configure-docker {host}"))
        else:
            problems.append(Problem(
                "docker-config", host, "is registered but neither credHelpers nor credsStore routes it here",
                f"docker asks {'docker-credential-' + store if store else 'no helper'} for it",
                f"{PROG} configure-docker {host}"))
    return problems


def ambiguous_hosts(table: list[Registration], env: Mapping[str, str]) -> list[Problem]:
    """Hosts whose path-scoped registrations a host-only request (docker, skopeo, podman, BuildKit) cannot choose
    between, with the scope variable as it is set."""
    problems = []
    candidates = [(r.prefix, r.id) for r in table]
    for host in sorted({host_of(r.prefix) for r in table if not is_pattern(r.prefix)}):
        try:
            select(host, candidates, env.get(SCOPE_VARIABLE))
        except AmbiguousRegistry as error:
            problems.append(Problem("ambiguity", host, "has several path-scoped registrations",
                                    "docker and the containers tools send only the host, so their requests fail",
                                    f"set {SCOPE_VARIABLE} to an id or an image prefix for each job ({error.message})"))
        except CredentialsNotFound:
            pass
    return problems


def containers_auth_files(env: Mapping[str, str], serves: Callable[[str], bool]) -> list[Problem]:
    """Credentials in the containers tools' auth files for hosts this helper serves: skopeo, podman and buildah use
    those first (podman login writes them there), so the helper's fresh credential is never asked for."""
    home = env.get("HOME") or os.path.expanduser("~")
    candidates = [env.get("REGISTRY_AUTH_FILE")]
    if env.get("XDG_RUNTIME_DIR"):
        candidates.append(os.path.join(env["XDG_RUNTIME_DIR"], "containers", "auth.json"))
    candidates.append(os.path.join(home, ".config", "containers", "auth.json"))
    problems = []
    for path in [p for p in candidates if p]:
        try:
            auths = json.loads(Path(path).read_text(encoding="utf-8")).get("auths", {})
        except (OSError, ValueError, AttributeError):
            continue
        for key in sorted(auths if isinstance(auths, dict) else {}):
            try:
                request = parse_server(DOCKER_HUB if key == DOCKER_HUB_SERVER_URL else key)
            except IdpError:
                continue
            if serves(request):
                problems.append(Problem(
                    "containers-auth", f"{path} auths[{key}]", "holds a credential for a host this helper serves",
                    "skopeo, podman and buildah use it instead of asking the helper, and it goes stale",
                    f"podman logout {key} (or remove the entry from {path})"))
    return problems


def vault(home: str, status: Callable[[], Any]) -> list[Problem]:
    """The home, its files and the key: owner and modes (fsutil refuses what another user could have planted or
    can change), the key source, the vault's integrity and serial."""
    try:
        status()
    except IdpError as error:
        return [Problem("vault", home, error.message, "the helper refuses the vault, so every request fails",
                        "as the message says")]
    return []


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


def run(checks: list[Callable[[], list[Problem]]]) -> list[Problem]:
    problems: list[Problem] = []
    for check in checks:
        problems += check()
    return problems


def on_path(env: Mapping[str, str]) -> Callable[[str], bool]:
    return lambda name: shutil.which(name, path=env.get("PATH", os.defpath)) is not None


def as_json(problems: list[Problem]) -> str:
    return json.dumps([p.to_json() for p in problems], indent=2)
