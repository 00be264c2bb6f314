"""The platform provider's rules in this process: its fetch is given a transport (FetchContext.transport, as
google-auth is given its Request) that answers from a script of responses, so status mapping, retries, expiry
parsing and what is sent where are checked without a server. tests/test_provider_conformance.py runs every provider
against local servers through the installed program; ACR's Entra ID step belongs to azure-identity, whose own
transport it uses (tests/test_acr.py)."""

from __future__ import annotations

import datetime
import json
import urllib.parse
import urllib.request
from typing import Any, Mapping

import pytest

from docker_credential_idp.errors import ProviderError
from docker_credential_idp.model import Registration, Secrets
from docker_credential_idp.providers import get_provider
from docker_credential_idp.providers.base import FetchContext

NOW = 1_800_000_000.0


class ScriptedTransport:
    """Answers each request with the next scripted (status, body[, headers]), or raises it when it is an exception."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[urllib.request.Request] = []

    def __call__(self, request: urllib.request.Request, settings: Mapping[str, Any], timeout: float):
        self.requests.append(request)
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
