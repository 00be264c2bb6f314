"""The platform provider's rules in this process: its fetch is given a transport (FetchContext.transport, as
google-auth is given its Request) that answers from a script of responses, so status mapping, retries, expiry
parsing and what is sent where are checked without a server; so are both calls of the platform's API
(platform_api.py: the list a registry source reads, the creds the provider reads), on an injected clock.
tests/test_provider_conformance.py runs every provider against local servers through the installed program; ACR's
Entra ID step belongs to azure-identity, whose own transport it uses (tests/test_acr.py)."""

from __future__ import annotations

import datetime
import json
import urllib.parse
import urllib.request
from typing import Any, Mapping

import pytest

from docker_credential_idp.errors import ProviderError
from docker_credential_idp.model import Registration, Secrets
from docker_credential_idp.platform_api import Platform, list_registries, read_creds
from docker_credential_idp.providers import get_provider
from docker_credential_idp.providers.base import FetchContext

NOW = 1_800_000_000.0


class ScriptedTransport:
    """Answers each request with the next scripted (status, body[, headers]), or raises it when it is an exception."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[urllib.request.Request] = []
        self.settings: list[Mapping[str, Any]] = []
        self.timeouts: list[float] = []

    def __call__(self, request: urllib.request.Request, settings: Mapping[str, Any], timeout: float):
        self.requests.append(request)
        self.settings.append(settings)
        self.timeouts.append(timeout)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        status, body, *headers = answer
        return status, (headers[0] if headers else {}), body if isinstance(body, bytes) else json.dumps(body).encode()


def fetch(registration: Registration, transport: ScriptedTransport, timeout: float = 10.0):
    pauses: list[float] = []
    context = FetchContext(env={}, timeout=timeout, now=lambda: NOW, transport=transport, sleep=pauses.append)
    return get_provider(registration.type).fetch(registration, context), pauses


PLATFORM = Registration("p", "registry.example.com/team", "platform",
                        {"url": "https://idp.example.com", "org": "acme", "registry_id": "team"},
                        Secrets({"token": "platform-token-1"}))


@pytest.mark.parametrize("answer, expires_at", [
    ({"username": "u", "password": "p", "expires_at": NOW + 600}, NOW + 600),
    ({"username": "u", "password": "p", "expires_at": (NOW + 600) * 1000}, NOW + 600),  # milliseconds
    ({"username": "u", "password": "p", "expires_in": 90}, NOW + 90),
    ({"username": "u", "password": "p", "expires_at": "2027-01-15T08:00:00Z"},
     datetime.datetime(2027, 1, 15, 8, tzinfo=datetime.timezone.utc).timestamp()),
    ({"username": "u", "password": "p"}, NOW + 3600),  # no expiry: the type's lifetime
    ({"username": "u", "password": "p", "expires_at": "not a date"}, NOW + 3600),
])
def test_platform_reads_every_documented_expiry(answer, expires_at):
    transport = ScriptedTransport((200, answer))
    credential, _ = fetch(PLATFORM, transport)
    assert (credential.username, credential.secret, credential.expires_at) == ("u", "p", expires_at)
    [request] = transport.requests
    assert request.full_url == "https://idp.example.com/orgs/acme/registries/team/creds"
    # The token goes in an unredirected header: a redirect to another host does not carry it.
    assert request.unredirected_hdrs == {"Authorization": "Bearer platform-token-1"}


@pytest.mark.parametrize("status, fragment", [
    (401, "refused the token"), (403, "may not read the credentials of registry 'team' in org 'acme'"),
    (404, "has no registry 'team' in org 'acme'"), (418, "answered HTTP 418"),
])
def test_platform_names_each_refusal_and_does_not_retry_it(status, fragment):
    transport = ScriptedTransport((status, {"error": "no"}))
    with pytest.raises(ProviderError, match=fragment):
        fetch(PLATFORM, transport)
    assert len(transport.requests) == 1


@pytest.mark.parametrize("origin, fix", [
    ("add", "re-add the registration with --token-stdin"),
    ("source:idp", "docker-credential-idp source add idp --replace ... --token-stdin"),  # registry add refuses it
])
def test_platform_a_refused_token_names_the_fix_that_applies_to_the_registration(origin, fix):
    with pytest.raises(ProviderError) as refused:
        fetch(PLATFORM.replace(origin=origin), ScriptedTransport((401, {"error": "no"})))
    assert refused.value.message.endswith(fix), refused.value.message
    assert "registry add" not in refused.value.message


def test_platform_retries_a_failing_api_with_backoff_then_takes_the_answer():
    transport = ScriptedTransport((503, b""), OSError("connection reset"), (200, {"username": "u", "password": "p"}))
    credential, pauses = fetch(PLATFORM, transport)
    assert credential.secret == "p" and len(transport.requests) == 3 and len(pauses) == 2
    assert pauses == sorted(pauses)


@pytest.mark.parametrize("body, fragment", [
    (b"<html>", "not JSON"), (b"[1]", "not an object"), (b'{"username": "u"}', "without string fields"),
    (b'{"username": "", "password": "p"}', "without string fields"),
])
def test_platform_refuses_answers_that_are_not_credentials(body, fragment):
    with pytest.raises(ProviderError, match=fragment):
        fetch(PLATFORM, ScriptedTransport((200, body)))


# -- the platform's API, both calls (platform_api.py): one retry rule, each call's own words ----------------------


class Calls:
    """The list call (source 'idp') or the creds call (registry 'team') against a scripted transport, on a clock
    that moves only when the call pauses or an answer takes `each` seconds."""

    def __init__(self, *answers: Any, timeout: float = 10.0, each: float = 0.0,
                 url: str = "https://idp.example.com", org: str = "acme") -> None:
        self.now, self.pauses, self.each = 0.0, [], each
        self.transport = ScriptedTransport(*answers)
        self.platform = Platform(url, org, "platform-token-1", {"ca_file": "/etc/platform-ca.pem"}, timeout,
                                 self.answer, self.pause, lambda: self.now)

    def answer(self, request: urllib.request.Request, settings: Mapping[str, Any], timeout: float):
        self.now += self.each
        return self.transport(request, settings, timeout)

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds

    def make(self, call: str) -> Any:
        return list_registries(self.platform, "idp") if call == "list" else read_creds(self.platform, "team")


LISTED = [{"id": "team", "registry": "registry.example.com/team", "type": "basic", "enable_ci": True}]
ANSWERS = {"list": LISTED, "creds": {"username": "u", "password": "p"}}


@pytest.mark.parametrize("call, url", [
    ("list", "https://idp.example.com/api/orgs/ac%20me/registries"),
    ("creds", "https://idp.example.com/api/orgs/ac%20me/registries/team/creds"),
])
def test_platform_api_each_call_goes_to_its_url_with_the_token_the_tls_settings_and_the_timeout(call, url):
    calls = Calls((200, ANSWERS[call]), url="https://idp.example.com/api/", org="ac me")
    assert calls.make(call) == ANSWERS[call]
    [request] = calls.transport.requests
    assert request.full_url == url and request.get_header("Accept") == "application/json"
    # The token goes in an unredirected header: a redirect to another host does not carry it.
    assert request.unredirected_hdrs == {"Authorization": "Bearer platform-token-1"}
    assert calls.transport.settings == [{"ca_file": "/etc/platform-ca.pem"}] and calls.transport.timeouts == [10.0]


REFUSED = OSError(111, "Connection refused")


@pytest.mark.parametrize("call, answers, message, transient", [
    ("list", [(401, {})], "the platform API at idp.example.com refused the token (HTTP 401); issue a new one and run: "
     "docker-credential-idp source add idp --replace ... --token-stdin", False),
    ("list", [(403, {})], "the token may not list the registries of org 'acme' (HTTP 403)", False),
    ("list", [(404, {})], "the platform API at idp.example.com answered HTTP 404 to the list of registries", False),
    ("list", [(418, {})], "the platform API at idp.example.com answered HTTP 418 to the list of registries", False),
    ("list", [(503, {})] * 3, "the platform API at idp.example.com answered HTTP 503 to the list of registries "
     "(after 3 attempts)", True),
    ("list", [(429, {}), (500, {}), (502, {})], "the platform API at idp.example.com answered HTTP 502 to the list of "
     "registries (after 3 attempts)", True),
    ("list", [REFUSED] * 3, "cannot reach the platform API at idp.example.com: Connection refused (after 3 attempts)",
     True),
    ("list", [(200, b"<html>")], "the platform API at idp.example.com answered the list of registries with something "
     "that is not a JSON list of objects", False),
    ("list", [(200, {"registries": []})], "the platform API at idp.example.com answered the list of registries with "
     "something that is not a JSON list of objects", False),
    ("list", [(200, [1])], "the platform API at idp.example.com answered the list of registries with something that "
     "is not a JSON list of objects", False),
    ("creds", [(401, {})], "the platform API refused the token (HTTP 401: missing, expired or revoked); issue a new "
     "one and re-add the registration with --token-stdin", False),
    ("creds", [(403, {})], "the token may not read the credentials of registry 'team' in org 'acme' (HTTP 403); give "
     "its service user a role that may (ArtefactContributor)", False),
    ("creds", [(404, {})], "the platform API has no registry 'team' in org 'acme' (HTTP 404); check --org, "
     "--registry-id and --url", False),
    ("creds", [(418, {})], "the platform API answered HTTP 418", False),
    ("creds", [(504, {})] * 3, "the platform API is failing (HTTP 504) (after 3 attempts)", True),
    ("creds", [(429, {})] * 3, "the platform API is failing (HTTP 429) (after 3 attempts)", True),
    ("creds", [REFUSED] * 3, "cannot reach the platform API at idp.example.com: Connection refused (after 3 attempts)",
     True),
    ("creds", [(200, b"<html>")], "the platform API answered with something that is not JSON", False),
    ("creds", [(200, [1])], "the platform API answered with JSON that is not an object", False),
    ("creds", [(200, {"username": "u", "password": ""})], "the platform API answered without string fields username "
     "and password", False),
])
def test_platform_api_names_each_failure_of_each_call_and_retries_only_an_api_that_does_not_answer(
        call, answers, message, transient):
    calls = Calls(*answers)
    with pytest.raises(ProviderError) as raised:
        calls.make(call)
    assert (raised.value.message, raised.value.transient) == (message, transient)
    assert len(calls.transport.requests) == len(answers) and calls.pauses == [0.5, 1.5][:len(answers) - 1]


@pytest.mark.parametrize("call", ["list", "creds"])
def test_platform_api_retries_either_call_with_back_off_then_takes_the_answer(call):
    calls = Calls((503, b""), OSError("connection reset"), (200, ANSWERS[call]))
    assert calls.make(call) == ANSWERS[call]
    assert len(calls.transport.requests) == 3 and calls.pauses == [0.5, 1.5]


@pytest.mark.parametrize("call", ["list", "creds"])
def test_platform_api_all_attempts_of_either_call_share_its_timeout(call):
    # Each answer takes 0.2 s of a 1 s timeout: the second attempt is given what is left, and there is no time for
    # a third (its pause alone would pass the deadline).
    calls = Calls(*[(503, b"")] * 3, timeout=1.0, each=0.2)
    with pytest.raises(ProviderError, match=r"HTTP 503.* \(after 2 attempts\)$") as raised:
        calls.make(call)
    assert raised.value.transient and calls.pauses == [0.5]
    assert calls.transport.timeouts == [1.0, pytest.approx(0.3)] and calls.now <= 1.0


@pytest.mark.parametrize("call", ["list", "creds"])
def test_platform_api_a_first_attempt_that_takes_all_the_time_is_the_only_one(call):
    calls = Calls(TimeoutError("timed out"), timeout=1.0, each=1.0)
    with pytest.raises(ProviderError) as raised:
        calls.make(call)
    assert raised.value.message == "cannot reach the platform API at idp.example.com: timed out (after 1 attempt)"
    assert raised.value.transient and calls.pauses == []
