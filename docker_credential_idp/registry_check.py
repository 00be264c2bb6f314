"""`registry test`: does the registry take this registration's credential? The registry API's own handshake
(distribution spec; docker/distribution docs/spec/auth/token.md): GET /v2/; on 401, either Basic auth on /v2/, or
the Bearer flow — a token from the realm its WWW-Authenticate names, with the credential as Basic auth, then /v2/
with that token. Standard library only, and the registration's --ca-file / --insecure.

`check` only checks: it returns each request it made (a Step) and the verdict; the command prints them
(commands/registry.py), doctor --online keeps the verdict. Its HTTP goes through a transport, so tests script the
registry's answers in process (tests/test_registry_check.py)."""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

# Text the registry sends (a realm, a scheme) is escaped before anything prints it. The one helper for that is
from .errors import PROG
from .httpclient import Request, is_loopback, network_reason, origin, send
from .jsontext import shown
from .model import Credential, Registration

if TYPE_CHECKING:
    from .httpclient import Transport

CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
USER_AGENT = f"{PROG} registry test"


@dataclass(frozen=True)
class Step:
    """One request of the handshake: what was called, the HTTP status it answered (None: no answer), how long it
    took, and, when there was no answer, why (a network reason, or the handshake's time running out)."""

    call: str
    status: Optional[int]
    milliseconds: float
    failure: Optional[str] = None


@dataclass(frozen=True)
class Outcome:
    ok: bool
    verdict: str  # one line: what happened and, when it failed, what to do
    steps: tuple[Step, ...] = ()
    notes: tuple[str, ...] = ()


def _header_safe(token: str) -> bool:
    """Visible ASCII only: a CR or LF would split the header (http.client refuses it, with the token in the error)."""
    return all(33 <= ord(character) <= 126 for character in token)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """('basic'|'bearer'|..., params) from a WWW-Authenticate header."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(CHALLENGE_PARAM.findall(rest))


class _Handshake:
    """The requests made so far, each timed, all within one deadline (each request gets what is left)."""

    def __init__(self, settings: Mapping[str, Any], timeout: float, transport: Transport, clock: Callable[[], float]) -> None:
        self.settings, self.timeout, self.transport, self.clock = settings, timeout, transport, clock
        self.deadline = clock() + timeout
        self.steps: list[Step] = []
        self.notes: list[str] = []

    def get(self, url: str, authorization: Optional[str], call: str) -> Optional[tuple[int, Any, bytes]]:
        """The answer, or None when there was none (the last step says why)."""
        request = Request(url, headers={"User-Agent": USER_AGENT})
        if authorization:
            request.add_unredirected_header("Authorization", authorization)
        started = self.clock()
        if started >= self.deadline:
            self.steps.append(Step(call, None, 0.0, self.out_of_time))
            return None
        try:
            answer = self.transport(request, self.settings, self.deadline - started)
        except OSError as error:
            ended = self.clock()
            # The transport ends a request at the deadline it was given: then the handshake's bound is the cause.
            why = self.out_of_time if ended >= self.deadline else network_reason(error)
            self.steps.append(Step(call, None, (ended - started) * 1000, why))
            return None
        self.steps.append(Step(call, answer[0], (self.clock() - started) * 1000))
        return answer

    @property
    def out_of_time(self) -> str:
        return (f"no answer within --timeout {self.timeout:g} s (the whole handshake's bound; raise it with registry "
                "add --replace --timeout if the registry is slow)")

    @property
    def failure(self) -> Optional[str]:
        return self.steps[-1].failure

    def outcome(self, ok: bool, verdict: str) -> Outcome:
        return Outcome(ok, verdict, tuple(self.steps), tuple(self.notes))


def check(registration: Registration, served: str, credential: Credential, transport: Transport = send,
          clock: Callable[[], float] = time.monotonic) -> Outcome:
    """The handshake for `served` (`host[/repository]`, what the registration serves for the request tested) with
    the registration's credential, its TLS settings, all of it within its fetch timeout."""
    host, _, path = served.partition("/")
    handshake = _Handshake(registration.settings, registration.fetch_timeout, transport, clock)
    base = f"https://{host}/v2/"
    first = handshake.get(base, None, f"GET {base}")
    if first is None:
        return handshake.outcome(False, f"cannot reach {host}: {handshake.failure}")
    status, headers, _ = first
    if status == 200:
        return handshake.outcome(True, f"{host} answers /v2/ without authentication; the credential was not needed")
    if status != 401:
        return handshake.outcome(False, f"{host} answered /v2/ with HTTP {status}, not a registry's 200 or 401; check "
                                 "the prefix")
    basic = "Basic " + base64.b64encode(f"{credential.username}:{credential.secret}".encode()).decode("ascii")
    scheme, params = parse_challenge(headers.get("WWW-Authenticate", ""))
    if scheme == "basic":
        second = handshake.get(base, basic, f"GET {base} with Basic auth")
        if second is None:
            return handshake.outcome(False, f"lost {host}: {handshake.failure}")
        if second[0] != 200:
            return handshake.outcome(False, _refused(host, registration.id, second[0]))
        return handshake.outcome(True, f"OK: {host} accepts the credential (Basic auth)")
    if scheme != "bearer" or not params.get("realm"):
        return handshake.outcome(False, f"{host} asks for {shown(scheme) or 'no'} authentication, which this test does not "
                                 "speak")
    return _bearer(handshake, host, path, registration.id, basic, params)


def _refused(host: str, registration_id: str, status: int, by: str = "") -> str:
    return (f"{host}{by} refused the credential of registration {registration_id!r} (HTTP {status}); check its "
            "username and password (re-add it with --replace)")


def _bearer(handshake: _Handshake, host: str, path: str, registration_id: str, basic: str,
            params: dict[str, str]) -> Outcome:
    """The Bearer flow: the credential goes, as Basic auth, only to an http(s) realm (plain http on loopback only);
    the token it answers goes to /v2/."""
    realm_parts = urllib.parse.urlsplit(params["realm"])
    if realm_parts.scheme not in ("https", "http") or not realm_parts.hostname or "@" in realm_parts.netloc:
        return handshake.outcome(False, f"{host} names a token service that is not an http(s) URL; the credential "
                                 "was not sent")
    if realm_parts.scheme == "http" and not is_loopback(realm_parts.hostname):
        return handshake.outcome(False, f"{host} names a plain-http token service off this machine "
                                 f"({shown(origin(params['realm']))}); the credential was not sent to it")
    query = {"service": params["service"]} if params.get("service") else {}
    repository = path.strip("/")
    if repository:
        query["scope"] = f"repository:{repository}:pull"
    realm = params["realm"] + ("&" if "?" in params["realm"] else "?") + urllib.parse.urlencode(query)
    token_answer = handshake.get(realm, basic, f"GET {shown(params['realm'])} (token) with Basic auth")
    if token_answer is None:
        return handshake.outcome(False, f"cannot reach {host}'s token service: {handshake.failure}")
    if token_answer[0] != 200:
        return handshake.outcome(False, _refused(host, registration_id, token_answer[0], by="'s token service"))
    if realm_parts.hostname != host.rsplit(":", 1)[0].strip("[]"):  # noted once the token service has answered
        handshake.notes.append(f"the token service {shown(origin(params['realm']))} is not on {host}: the credential is sent "
                               "there")
    try:
        document = json.loads(token_answer[2])
        token = document.get("token") or document.get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        return handshake.outcome(False, f"{host}'s token service answered without a token")
    if not _header_safe(token):
        return handshake.outcome(False, f"{host}'s token service answered a token that is not a valid HTTP header "
                                 "value (control characters or spaces in it)")
    base = f"https://{host}/v2/"
    final = handshake.get(base, f"Bearer {token}", f"GET {base} with the Bearer token")
    if final is None:
        return handshake.outcome(False, f"lost {host}: {handshake.failure}")
    if final[0] != 200:
        return handshake.outcome(False, f"{host} refused the token its own token service issued (HTTP {final[0]})")
    return handshake.outcome(True, f"OK: {host} accepts the credential (Bearer token from {shown(realm_parts.netloc)})")
