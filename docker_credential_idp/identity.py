"""Identity tokens: the signed JWT a CI job or a pod already holds, obtained afresh for every fetch and exchanged for a
registry credential, so that no secret is stored (`--oidc-token SOURCE [--oidc-audience AUD]`).

Sources: `github-actions` (minted by the job's token endpoint for the audience asked), `env:VAR` (GitLab `id_tokens`,
CircleCI), `file:/PATH` (a projected service-account token, a SPIFFE helper's file; re-read each time), `kubelet`
(the pod's token in the kubelet's request, KEP-4412). The token never appears in a message: each failure names the
source, never its value. Claims are read without checking the signature: the exchange checks it; we only read `exp`
(how long an answer may be kept) and the subject (for names in audit logs).
"""

from __future__ import annotations

import base64
import binascii
import errno
import os
import re
import stat

from .errors import PROG, InvalidInput, ProviderError
from .jsontext import loads
from .providers.base import Option

TYPE_CHECKING = False  # typing and urllib.parse are not imported at run time: a cold fetch pays for what it uses
if TYPE_CHECKING:
    from typing import Any, Mapping, Optional

    from .providers.base import FetchContext

GITHUB_ACTIONS = "github-actions"
KUBELET = "kubelet"
MAX_TOKEN_BYTES = 64 * 1024  # a JWT is a few kB; a larger file or answer is not one
_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SOURCE_FORMS = "github-actions, env:VAR, file:/ABSOLUTE/PATH or kubelet"


def parse_source(text: str) -> str:
    """A `--oidc-token` value, checked at `registry add`. The value is never quoted back: a token pasted here by
    mistake must not be printed."""
    value = str(text).strip()
    kind, _, rest = value.partition(":")
    if value in (GITHUB_ACTIONS, KUBELET):
        return value
    if kind == "env" and _VARIABLE.fullmatch(rest):
        return value
    if kind == "file" and rest.startswith("/") and "\0" not in rest:
        return value
    if kind == "file":
        raise InvalidInput("--oidc-token file: takes an absolute path (the kubelet and docker start the helper from "
                           "directories of their own), like file:/var/run/secrets/tokens/registry")
    raise InvalidInput(f"--oidc-token takes {SOURCE_FORMS}")


OPTIONS = (
    Option("oidc-token", f"exchange an identity token instead of storing a secret: {SOURCE_FORMS}", metavar="SOURCE",
           convert=parse_source),
    Option("oidc-audience", "the audience the identity token is asked for or must carry (default: what the exchange "
           "expects)", metavar="AUD"),
)


def describe(source: str) -> str:
    """The source in words for messages: never the token."""
    if source == GITHUB_ACTIONS:
        return "GitHub Actions' OIDC token endpoint"
    if source == KUBELET:
        return "the kubelet's service-account token"
    kind, _, rest = source.partition(":")
    return f"variable {rest}" if kind == "env" else f"file {rest}"


def obtain(source: str, audience: str, context: FetchContext) -> str:
    """The identity token from `source`, for `audience` where the source mints one (GitHub Actions); read afresh on
    every call. ProviderError naming the source (never the token) when there is none."""
    if source == GITHUB_ACTIONS:
        token = _github_actions(audience, context)
    elif source == KUBELET:
        token = context.identity_token
        if not token:
            raise ProviderError("--oidc-token kubelet needs the pod's service-account token in the kubelet's request; "
                                f"install the kubelet config `{PROG} kubelet-config` prints (it sets tokenAttributes)")
    else:
        kind, _, rest = source.partition(":")
        token = _from_variable(rest, context.env) if kind == "env" else _from_file(rest)
    token = token.strip()
    if not _JWT.fullmatch(token):
        raise ProviderError(f"{describe(source)} does not hold a JWT (three base64url parts separated by dots)")
    return token


def problem(source: str, env: Mapping[str, str]) -> Optional[str]:
    """For `doctor`: what keeps `source` from giving a token here, found without calling out (GitHub's endpoint is
    not asked; the kubelet's token comes with its request); None when nothing does."""
    if source == KUBELET:
        return None
    if source == GITHUB_ACTIONS:
        if env.get("ACTIONS_ID_TOKEN_REQUEST_URL") and env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN"):
            return None
        return ("ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set here (they are in a GitHub "
                "Actions job with `permissions: id-token: write`)")
    from .providers.base import FetchContext

    try:
        obtain(source, "", FetchContext(env=env))
    except ProviderError as error:
        return error.message
    return None


def _from_variable(name: str, env: Mapping[str, str]) -> str:
    value = env.get(name, "")
    if not value.strip():
        raise ProviderError(f"variable {name} holds no identity token: in GitLab CI declare it under the job's "
                            "id_tokens:, in CircleCI use CIRCLE_OIDC_TOKEN_V2, or change --oidc-token")
    return value


def _from_file(path: str) -> str:
    """A token file, read as OpenSSH reads a key: Kubernetes projects tokens through links (..data/token), so links
    are followed, but the file it ends at, every directory above it, and every directory a link on the way sits in
    (and those above) must be ours or root's and writable by no one else; in a sticky directory only a link of ours
    or root's is followed (as fs.protected_symlinks does: we resolve links ourselves, which it does not see)."""
    me = os.geteuid()
    try:
        real = _resolve(path, me)
        descriptor = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ProviderError(f"identity token file {path} does not exist; check --oidc-token (a projected token "
                            "appears once the pod's volume is mounted)") from None
    except OSError as error:
        reason = "too many levels of links" if error.errno == errno.ELOOP else os.strerror(error.errno or errno.EIO)
        raise ProviderError(f"cannot read identity token file {path}: {reason}") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise ProviderError(f"identity token file {path} is not a regular file; point --oidc-token at the file")
        _check_owner(path, real, info, me, "the token file")
        data = os.read(descriptor, MAX_TOKEN_BYTES + 1)
    finally:
        os.close(descriptor)
    _check_directories(path, os.path.dirname(real), me)
    if len(data) > MAX_TOKEN_BYTES:
        raise ProviderError(f"identity token file {path} is larger than {MAX_TOKEN_BYTES} bytes: not a JWT")
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise ProviderError(f"identity token file {path} does not hold a JWT") from None


MAX_LINKS = 40  # as the kernel's limit on links followed in one lookup


def _resolve(path: str, me: int) -> str:
    """The path `path` ends at, its links followed one by one as the kernel follows them, each link's directory
    checked (_check_directories) before its target is believed. OSError as open() would raise it."""
    pending = [part for part in reversed(path.split("/")) if part]  # the next component last
    current, links = "/", 0
    while pending:
        name = pending.pop()
        if name == ".":
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        info = os.lstat(candidate)
        if not stat.S_ISLNK(info.st_mode):
            current = candidate
            continue
        links += 1
        if links > MAX_LINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
        _check_directories(path, current, me)
        if os.stat(current).st_mode & 0o022 and info.st_uid not in (0, me):  # a sticky directory others write in
            raise ProviderError(f"refusing identity token file {path}: link {candidate} is owned by uid "
                                f"{info.st_uid}, another user, in a directory anyone may write in")
        target = os.readlink(candidate)
        if target.startswith("/"):
            current = "/"
        pending.extend(part for part in reversed(target.split("/")) if part)
    return current


def _check_directories(path: str, directory: str, me: int) -> None:
    """`directory` and every one above it: ours or root's, and writable by no one else unless sticky."""
    parent = directory
    while True:
        try:
            _check_owner(path, parent, os.stat(parent), me, f"directory {parent}", directory=True)
        except FileNotFoundError:
            pass
        if parent == os.path.dirname(parent):
            break
        parent = os.path.dirname(parent)


def _check_owner(path: str, where: str, info: os.stat_result, me: int, what: str, directory: bool = False) -> None:
    if info.st_uid not in (0, me):
        raise ProviderError(f"refusing identity token file {path}: {what} is owned by uid {info.st_uid}, another "
                            "user, who could put their identity in its place")
    if info.st_mode & 0o022 and not (directory and info.st_mode & stat.S_ISVTX):
        raise ProviderError(f"refusing identity token file {path}: {what} is writable by group or others; "
                            f"fix: chmod go-w {where}")


def _github_actions(audience: str, context: FetchContext) -> str:
    """GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=AUD with the request token as a bearer: {"value": JWT}."""
    import urllib.parse

    from .httpclient import Request, check_endpoint, network_reason

    url = context.env.get("ACTIONS_ID_TOKEN_REQUEST_URL", "")
    bearer = context.env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "")
    if not url or not bearer:
        raise ProviderError("ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set: give the job "
                            "`permissions: id-token: write`, and run docker from a step of that job")
    try:
        check_endpoint(url, "ACTIONS_ID_TOKEN_REQUEST_URL")
    except InvalidInput as error:
        raise ProviderError(error.message) from None
    if audience:
        url += ("&" if "?" in url else "?") + "audience=" + urllib.parse.quote(audience, safe="")
    request = Request(url, headers={"Authorization": f"Bearer {bearer}", "Accept": "application/json"})
    try:
        status, _, body = context.transport(request, {}, context.timeout)
    except OSError as error:
        raise ProviderError(f"GitHub Actions' OIDC token endpoint did not answer: {network_reason(error)}",
                            transient=True) from None
    if status != 200:
        raise ProviderError(f"GitHub Actions' OIDC token endpoint answered HTTP {status}"
                            + ("; the job needs `permissions: id-token: write`" if status in (401, 403) else ""),
                            transient=status >= 500 or status == 429)
    try:
        value = loads(body[:MAX_TOKEN_BYTES].decode("utf-8")).get("value")
    except (AttributeError, UnicodeDecodeError, ValueError):
        value = None
    if not isinstance(value, str):
        raise ProviderError("GitHub Actions' OIDC token endpoint answered without a token (no \"value\")")
    return value


_JWT_LIKE = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")


def scrubbed(text: str, limit: int = 240) -> str:
    """Text an exchange or its SDK said, as a message may show it: one line, at most `limit` characters, anything
    shaped like a JWT replaced by [token] (an endpoint may echo the token it was sent)."""
    return _JWT_LIKE.sub("[token]", " ".join(text.split()))[:limit]


def claims(token: str) -> dict[str, Any]:
    """A JWT's payload, unverified (the exchange verifies it); {} when it is not readable."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return {}
    return payload if isinstance(payload, dict) else {}


def expiry(token: str) -> Optional[float]:
    """A JWT's `exp`, when it has a believable one."""
    exp = claims(token).get("exp")
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) and exp > 0 else None


_UNSAFE_IN_NAME = re.compile(r"[^\w+=,.@-]+")


def job_name(env: Mapping[str, str], token_claims: Mapping[str, Any], limit: int = 64) -> str:
    """Who is asking, for a cloud's audit log (an AWS role session name: [\\w+=,.@-], 2 to 64 characters): the CI
    job (run and attempt, pipeline and job, build), else the pod's service account, else the token's subject. The
    ids come first so that truncation keeps them."""
    if env.get("GITHUB_RUN_ID"):
        parts = ["gha", env["GITHUB_RUN_ID"], env.get("GITHUB_RUN_ATTEMPT", ""), env.get("GITHUB_REPOSITORY", "")]
    elif env.get("CI_PIPELINE_ID"):
        parts = ["gitlab", env["CI_PIPELINE_ID"], env.get("CI_JOB_ID", ""), env.get("CI_PROJECT_PATH", "")]
    elif env.get("CIRCLE_WORKFLOW_ID"):
        parts = ["circleci", env.get("CIRCLE_BUILD_NUM", ""), env["CIRCLE_WORKFLOW_ID"]]
    elif env.get("BUILDKITE_BUILD_ID"):
        parts = ["buildkite", env.get("BUILDKITE_BUILD_NUMBER", ""), env.get("BUILDKITE_JOB_ID", "")]
    else:
        subject = str(token_claims.get("sub", ""))
        account = re.fullmatch(r"system:serviceaccount:([^:]+):([^:]+)", subject)
        parts = ["k8s", account.group(1), account.group(2)] if account else [PROG, subject]
    name = _UNSAFE_IN_NAME.sub("-", "-".join(part for part in parts if part)).strip("-")[:limit]
    return name if len(name) >= 2 else PROG
