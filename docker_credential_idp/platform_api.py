"""The platform's API (seed 000), both of its calls, for registry sources (sources.py) and the `platform` type
(providers/platform.py):

- the organisation's registries, `GET {API}/orgs/{ORG}/registries`: a JSON list of objects (`id`, `registry` —
  the prefix —, `type`, `enable_ci`), which sources.py checks entry by entry;
- one registry's credential, `GET {API}/orgs/{ORG}/registries/{RID}/creds`: `{"username": ..., "password": ...}`,
  perhaps with an expiry, which the provider reads.

Both send the platform token as a bearer header a redirect does not carry along, and follow one retry rule: a
connection error, 429 or 5xx is the platform not answering, so it is tried again — three attempts at most, 0.5 s
then 1.5 s apart, all of them within the caller's timeout — and a failure of that kind is `transient` (`get` then
holds the source back a while). 401, 403, 404 or a malformed answer is an answer, not an outage: not retried. Each
call words its failures for what it was doing.
"""

from __future__ import annotations

import time

from .errors import PROG, ProviderError
from .httpclient import Request, network_reason, quote, send
from .jsontext import loads
from .model import Record

TYPE_CHECKING = False  # neither typing nor dataclasses on a cold fetch's path
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping, Optional

    from .httpclient import Transport

ATTEMPTS = 3
BACKOFF = (0.5, 1.5)  # seconds before the second and third attempt
RETRY_STATUSES = (429, 500, 502, 503, 504)


class Platform(Record):
    """Where a call goes and how: the API base, the organisation, the token, the TLS settings (`ca_file`), the
    time all of a call's attempts share, and the transport, pause and clock (injected in tests)."""

    __slots__ = ("url", "org", "token", "settings", "timeout", "transport", "sleep", "clock")
    _hidden = ("token",)
    url: str
    org: str
    token: str
    settings: Mapping[str, Any]
    timeout: float
    transport: Transport
    sleep: Callable[[float], None]
    clock: Callable[[], float]

    def __init__(self, url: str, org: str, token: str, settings: Mapping[str, Any], timeout: float,
                 transport: Transport = send, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._set(url=url, org=org, token=token, settings=settings, timeout=timeout, transport=transport, sleep=sleep,
                  clock=clock)

    @property
    def host(self) -> str:
        """The API's host[:port] as its URL spells it (the URL passed check_endpoint when it was added)."""
        rest = self.url.partition("://")[2]
        return rest[:min([i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0], default=len(rest))]


def list_url(base: str, org: str) -> str:
    return f"{base.rstrip('/')}/orgs/{quote(org)}/registries"


def creds_url(base: str, org: str, registry_id: str) -> str:
    return f"{list_url(base, org)}/{quote(registry_id)}/creds"


def list_registries(platform: Platform, source_id: str) -> list[dict[str, Any]]:
    """The organisation's registries as listed (each entry still to be checked); ProviderError in one line when
    they cannot be read, naming `source_id` in the fix for a refused token."""
    where = f"the platform API at {platform.host}"

    def refusal(status: int) -> str:
        if status == 401:
            return f"{where} refused the token (HTTP 401); issue a new one and run: {source_token_fix(source_id)}"
        if status == 403:
            return f"the token may not list the registries of org {platform.org!r} (HTTP 403)"
        return f"{where} answered HTTP {status} to the list of registries"

    body = _get(platform, list_url(platform.url, platform.org), refusal)
    try:
        listing = loads(body)
    except ValueError:
        listing = None
    if not isinstance(listing, list) or not all(isinstance(item, dict) for item in listing):
        raise ProviderError(f"{where} answered the list of registries with something that is not a JSON list of "
                            "objects")
    return listing


def source_token_fix(source_id: str) -> str:
    """How a source's token is replaced: the source is added again (its synced registrations carry its token)."""
    return f"{PROG} source add {source_id} --replace ... --token-stdin"


def read_creds(platform: Platform, registry_id: str, source_id: Optional[str] = None) -> dict[str, Any]:
    """The creds answer of one registry, an object whose username and password are non-empty strings (its other
    fields, such as an expiry, are the caller's to read); ProviderError in one line when there is none.
    `source_id`: the registry source the registration was synced from (its token is replaced there), if any."""

    def refusal(status: int) -> str:
        if status == 401:
            fix = (f"run: {source_token_fix(source_id)}" if source_id is not None
                   else "re-add the registration with --token-stdin")
            return f"the platform API refused the token (HTTP 401: missing, expired or revoked); issue a new one and {fix}"
        if status == 403:
            return (f"the token may not read the credentials of registry {registry_id!r} in org {platform.org!r} "
                    "(HTTP 403); give its service user a role that may (ArtefactContributor)")
        if status == 404:
            return (f"the platform API has no registry {registry_id!r} in org {platform.org!r} (HTTP 404); check "
                    "--org, --registry-id and --url")
        if status in RETRY_STATUSES:
            return f"the platform API is failing (HTTP {status})"
        return f"the platform API answered HTTP {status}"

    body = _get(platform, creds_url(platform.url, platform.org, registry_id), refusal)
    try:
        answer = loads(body)
    except ValueError:
        raise ProviderError("the platform API answered with something that is not JSON") from None
    if not isinstance(answer, dict):
        raise ProviderError("the platform API answered with JSON that is not an object")
    username, password = answer.get("username"), answer.get("password")
    if not (isinstance(username, str) and username and isinstance(password, str) and password):
        raise ProviderError("the platform API answered without string fields username and password")
    return answer


def _get(platform: Platform, url: str, refusal: Callable[[int], str]) -> bytes:
    """The body of a 200 answer to GET `url` with the bearer token, under the retry rule (see the module's
    docstring); any other answer is ProviderError with `refusal`'s words for its status."""
    deadline = platform.clock() + platform.timeout
    for attempt in range(ATTEMPTS):
        request = Request(url, headers={"Accept": "application/json"})
        # Unredirected: a redirect to another host must not carry the token along.
        request.add_unredirected_header("Authorization", f"Bearer {platform.token}")
        try:
            status, _, body = platform.transport(request, platform.settings,
                                                 max(deadline - platform.clock(), 0.1))
        except OSError as error:
            failure = ProviderError(f"cannot reach the platform API at {platform.host}: {network_reason(error)}",
                                    transient=True)
        else:
            if status == 200:
                return body
            failure = ProviderError(refusal(status), transient=status in RETRY_STATUSES)
            if not failure.transient:
                raise failure
        pause = BACKOFF[min(attempt, len(BACKOFF) - 1)]
        if attempt + 1 == ATTEMPTS or platform.clock() + pause >= deadline:
            break
        platform.sleep(pause)
    raise ProviderError(f"{failure.message} (after {attempt + 1} attempt{'s' if attempt else ''})",
                        transient=failure.transient)
