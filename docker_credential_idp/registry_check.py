"""`registry test`: does the registry take this registration's credential? The registry API's own handshake
(distribution spec; docker/distribution docs/spec/auth/token.md): GET /v2/; on 401, either Basic auth on /v2/, or
the Bearer flow — a token from the realm its WWW-Authenticate names, with the credential as Basic auth, then /v2/
with that token. Standard library only, and the registration's --ca-file / --insecure."""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from .httpclient import is_loopback, network_reason, origin, send

CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass
class Step:
    what: str
    status: Optional[int]
    milliseconds: float


@dataclass
class Outcome:
    ok: bool
    verdict: str  # one line: what happened and, when it failed, what to do
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _header_safe(token: str) -> bool:
    """Visible ASCII only: a CR or LF would split the header (http.client refuses it, with the token in the error)."""
    return all(33 <= ord(character) <= 126 for character in token)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """('basic'|'bearer'|..., params) from a WWW-Authenticate header."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(CHALLENGE_PARAM.findall(rest))


def check(host: str, path: str, username: str, password: str, settings: Mapping[str, Any], timeout: float,
          registration_id: str) -> Outcome:
    """The handshake, all of it within `timeout` seconds (each request gets what is left)."""
    steps: list[Step] = []
    notes: list[str] = []
    deadline = time.monotonic() + timeout
    base = f"https://{host}/v2/"
    basic = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")

    def get(url: str, authorization: Optional[str], what: str) -> Optional[tuple[int, Any, bytes]]:
        request = urllib.request.Request(url, headers={"User-Agent": "docker-credential-idp registry test"})
        if authorization:
            request.add_unredirected_header("Authorization", authorization)
        started = time.monotonic()
        if started >= deadline:
            steps.append(Step(f"{what}: timed out (--timeout {timeout:g} s in all)", None, 0.0))
            return None
        try:
            answer = send(request, settings, deadline - started)
        except OSError as error:
            steps.append(Step(f"{what}: {network_reason(error)}", None, (time.monotonic() - started) * 1000))
            return None
        steps.append(Step(what, answer[0], (time.monotonic() - started) * 1000))
        return answer

    first = get(base, None, f"GET {base}")
    if first is None:
        return Outcome(False, f"cannot reach {host}: {steps[-1].what.split(': ', 1)[1]}", steps)
    status, headers, _ = first
    if status == 200:
        return Outcome(True, f"{host} answers /v2/ without authentication; the credential was not needed", steps)
    if status != 401:
        return Outcome(False, f"{host} answered /v2/ with HTTP {status}, not a registry's 200 or 401; check the prefix",
                       steps)
    scheme, params = parse_challenge(headers.get("WWW-Authenticate", ""))
    refused = (f"{host} refused the credential of registration {registration_id!r} (HTTP 401); check its username "
               f"and password (re-add it with --replace)")
    if scheme == "basic":
        second = get(base, basic, f"GET {base} with Basic auth")
        if second is None:
            return Outcome(False, f"lost {host}: {steps[-1].what.split(': ', 1)[1]}", steps)
        ok = second[0] == 200
        return Outcome(ok, f"OK: {host} accepts the credential (Basic auth)" if ok else refused, steps)
    if scheme != "bearer" or not params.get("realm"):
        return Outcome(False, f"{host} asks for {scheme or 'no'} authentication, which this test does not speak", steps)
    realm_parts = urllib.parse.urlsplit(params["realm"])
    if realm_parts.scheme not in ("https", "http") or not realm_parts.hostname or "@" in realm_parts.netloc:
        return Outcome(False, f"{host} names a token service that is not an http(s) URL; the credential was not sent",
                       steps)
    if realm_parts.scheme == "http" and not is_loopback(realm_parts.hostname):
        return Outcome(False, f"{host} names a plain-http token service off this machine ({origin(params['realm'])}); "
                       "the credential was not sent to it", steps)
    if realm_parts.hostname != host.rsplit(":", 1)[0].strip("[]"):
        notes.append(f"the token service {origin(params['realm'])} is not on {host}: the credential is sent there")
    query = {"service": params["service"]} if params.get("service") else {}
    repository = path.strip("/")
    if repository:
        query["scope"] = f"repository:{repository}:pull"
    realm = params["realm"] + ("&" if "?" in params["realm"] else "?") + urllib.parse.urlencode(query)
    token_answer = get(realm, basic, f"GET {params['realm']} (token) with Basic auth")
    if token_answer is None:
        return Outcome(False, f"cannot reach {host}'s token service: {steps[-1].what.split(': ', 1)[1]}", steps)
    if token_answer[0] != 200:
        verdict = refused.replace(f"{host} refused", f"{host}'s token service refused").replace("401", str(token_answer[0]))
        return Outcome(False, verdict, steps)
    try:
        document = json.loads(token_answer[2])
        token = document.get("token") or document.get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        return Outcome(False, f"{host}'s token service answered without a token", steps, notes)
    if not _header_safe(token):
        return Outcome(False, f"{host}'s token service answered a token that is not a valid HTTP header value "
                       "(control characters or spaces in it)", steps, notes)
    final = get(base, f"Bearer {token}", f"GET {base} with the Bearer token")
    if final is None:
        return Outcome(False, f"lost {host}: {steps[-1].what.split(': ', 1)[1]}", steps, notes)
    ok = final[0] == 200
    return Outcome(ok, f"OK: {host} accepts the credential (Bearer token from {realm_parts.netloc})"
                   if ok else f"{host} refused the token its own token service issued (HTTP {final[0]})", steps, notes)
