"""`registry test`'s handshake in this process: registry_check.check is given a transport that answers from a script
(tests/test_provider_rules.py's ScriptedTransport) and a clock, so each step, each verdict and what is sent where are
checked without a registry. tests/e2e/test_registry_check.py runs the command against real registries."""

from __future__ import annotations

import urllib.error

import pytest

from docker_credential_idp.commands.registry import _step_line
from docker_credential_idp.model import Credential, Registration
from docker_credential_idp.registry_check import Outcome, Step, check

from .test_provider_rules import ScriptedTransport

HOST = "registry.example.com"
BASE = f"https://{HOST}/v2/"
TEAM = Registration("team", f"{HOST}/team", "basic")
ALICE = Credential("alice", "registry-check-pw-1")
BASIC = "Basic YWxpY2U6cmVnaXN0cnktY2hlY2stcHctMQ=="  # alice:registry-check-pw-1
BASIC_CHALLENGE = {"WWW-Authenticate": f'Basic realm="{HOST}"'}


def bearer_challenge(realm: str) -> dict[str, str]:
    return {"WWW-Authenticate": f'Bearer realm="{realm}",service="{HOST}",scope="registry:catalog:*"'}


def run(*answers: object, registration: Registration = TEAM, served: str = f"{HOST}/team",
        per_call: float = 0.25) -> tuple[Outcome, ScriptedTransport]:
    """The handshake against scripted answers, each taking `per_call` seconds of a fake monotonic clock."""
    transport, clock = ScriptedTransport(*answers), [1000.0]

    def timed(request, settings, timeout):  # type: ignore[no-untyped-def]
        assert 0 < timeout <= registration.fetch_timeout
        clock[0] += per_call
        return transport(request, settings, timeout)

    return check(registration, served, ALICE, timed, lambda: clock[0]), transport


def test_basic_auth_accepted_each_step_timed_and_the_credential_sent_once_unredirected():
    outcome, transport = run((401, b"", BASIC_CHALLENGE), (200, b"{}"))
    assert outcome == Outcome(True, f"OK: {HOST} accepts the credential (Basic auth)",
                              (Step(f"GET {BASE}", 401, 250.0), Step(f"GET {BASE} with Basic auth", 200, 250.0)))
    first, second = transport.requests
    assert first.full_url == second.full_url == BASE
    assert not first.has_header("Authorization") and "Authorization" not in first.unredirected_hdrs
    assert second.unredirected_hdrs == {"Authorization": BASIC}
    assert first.get_header("User-agent") == "docker-credential-idp registry test"


def test_bearer_flow_asks_the_realm_for_the_repository_then_sends_the_token():
    realm = "https://auth.example.com/token"
    outcome, transport = run((401, b"", bearer_challenge(realm)), (200, {"token": "bearer-token-1"}), (200, b"{}"))
    assert outcome.ok and outcome.verdict == f"OK: {HOST} accepts the credential (Bearer token from auth.example.com)"
    assert [s.call for s in outcome.steps] == [f"GET {BASE}", f"GET {realm} (token) with Basic auth",
                                               f"GET {BASE} with the Bearer token"]
    assert outcome.notes == (f"the token service https://auth.example.com:443 is not on {HOST}: the credential is "
                             "sent there",)
    _, token_request, final = transport.requests
    assert token_request.full_url == f"{realm}?service={HOST}&scope=repository%3Ateam%3Apull"
    assert token_request.unredirected_hdrs == {"Authorization": BASIC}
    assert final.unredirected_hdrs == {"Authorization": "Bearer bearer-token-1"}


def test_a_token_service_on_the_registry_host_gets_no_note_and_access_token_is_read():
    outcome, _ = run((401, b"", bearer_challenge(f"https://{HOST}/auth?x=1")), (200, {"access_token": "t-2"}),
                     (200, b"{}"))
    assert outcome.ok and outcome.notes == ()
    assert outcome.steps[1].call == f"GET https://{HOST}/auth?x=1 (token) with Basic auth"


def test_an_open_registry_passes_without_the_credential():
    outcome, transport = run((200, b"{}"))
    assert (outcome.ok, outcome.verdict) == (True, f"{HOST} answers /v2/ without authentication; the credential was "
                                                   "not needed")
    assert len(transport.requests) == 1


@pytest.mark.parametrize("answers, verdict", [
    ((urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")),),
     f"cannot reach {HOST}: Connection refused"),
    (((500, b""),), f"{HOST} answered /v2/ with HTTP 500, not a registry's 200 or 401; check the prefix"),
    (((401, b"", {"WWW-Authenticate": 'Negotiate realm="x"'}),),
     f"{HOST} asks for negotiate authentication, which this test does not speak"),
    (((401, b""),), f"{HOST} asks for no authentication, which this test does not speak"),
    (((401, b"", BASIC_CHALLENGE), OSError("reset")), f"lost {HOST}: reset"),
    (((401, b"", BASIC_CHALLENGE), (401, b"")),
     f"{HOST} refused the credential of registration 'team' (HTTP 401); check its username and password (re-add it "
     "with --replace)"),
    (((401, b"", bearer_challenge("https://auth.example.com/t")), OSError("no route")),
     f"cannot reach {HOST}'s token service: no route"),
    (((401, b"", bearer_challenge("https://auth.example.com/t")), (200, {"nothing": 1})),
     f"{HOST}'s token service answered without a token"),
    (((401, b"", bearer_challenge("https://auth.example.com/t")), (200, b"not json")),
     f"{HOST}'s token service answered without a token"),
    (((401, b"", bearer_challenge("https://auth.example.com/t")), (200, {"token": "a\r\nX-Evil: 1"})),
     f"{HOST}'s token service answered a token that is not a valid HTTP header value (control characters or "
     "spaces in it)"),
    (((401, b"", bearer_challenge("https://auth.example.com/t")), (200, {"token": "t"}), (401, b"")),
     f"{HOST} refused the token its own token service issued (HTTP 401)"),
    (((401, b"", bearer_challenge("https://auth.example.com/t")), (200, {"token": "t"}), OSError("gone")),
     f"lost {HOST}: gone"),
])
def test_each_failure_is_one_verdict(answers, verdict):
    outcome, transport = run(*answers)
    assert (outcome.ok, outcome.verdict) == (False, verdict)
    assert transport.answers == []  # every scripted answer was asked for, and no more


def test_a_refusal_names_the_status_the_registry_answered():
    outcome, _ = run((401, b"", BASIC_CHALLENGE), (403, b""))
    assert outcome.verdict.startswith(f"{HOST} refused the credential of registration 'team' (HTTP 403);")


def test_a_token_service_refusal_keeps_the_host_as_it_is():
    """The host's port, like the status, may hold the digits 401: only the status is the token service's."""
    host = "registry.example.com:4010"
    registration = Registration("r401", f"{host}/team", "basic")
    outcome, _ = run((401, b"", bearer_challenge("https://auth.example.com/t")), (403, b""),
                     registration=registration, served=f"{host}/team")
    assert outcome.verdict == (f"{host}'s token service refused the credential of registration 'r401' (HTTP 403); "
                               "check its username and password (re-add it with --replace)")


@pytest.mark.parametrize("realm, verdict", [
    ("ftp://auth.example.com/t", "names a token service that is not an http(s) URL; the credential was not sent"),
    ("https://user@auth.example.com/t", "names a token service that is not an http(s) URL"),
    ("http://auth.example.com/t", "names a plain-http token service off this machine (http://auth.example.com:80); "
                                  "the credential was not sent to it"),
])
def test_the_credential_goes_only_to_an_https_token_service(realm, verdict):
    outcome, transport = run((401, b"", bearer_challenge(realm)))
    assert not outcome.ok and verdict in outcome.verdict
    assert len(transport.requests) == 1


def test_the_whole_handshake_shares_one_deadline():
    """A registry that takes the whole timeout on its first answer leaves no time for the next request."""
    outcome, transport = run((401, b"", BASIC_CHALLENGE), per_call=TEAM.fetch_timeout)
    out_of_time = ("no answer within --timeout 10 s (the whole handshake's bound; raise it with registry add --replace "
                   "--timeout if the registry is slow)")
    assert outcome.verdict == f"lost {HOST}: {out_of_time}"
    assert outcome.steps[-1] == Step(f"GET {BASE} with Basic auth", None, 0.0, out_of_time)
    assert len(transport.requests) == 1


def test_a_request_the_transport_ends_at_the_deadline_names_the_bound():
    """httpclient.send ends a request at the deadline it is given: the step names --timeout, not a bare timeout."""
    outcome, _ = run(TimeoutError("timed out"), per_call=TEAM.fetch_timeout)
    assert outcome.steps[-1].failure is not None and "no answer within --timeout 10 s" in outcome.steps[-1].failure
    outcome, _ = run(TimeoutError("timed out"), per_call=1.0)  # a connect timeout well before the bound
    assert outcome.steps[-1].failure == "timed out"


def test_each_step_is_printed_on_one_line():
    assert _step_line(Step(f"GET {BASE}", 401, 12.4)) == f"GET {BASE} -> 401 (12 ms)"
    assert _step_line(Step(f"GET {BASE}", None, 3.0, "Connection refused")) == \
        f"GET {BASE}: Connection refused -> no answer (3 ms)"


def printable(text: str) -> bool:
    return text.isprintable() and "\x1b" not in text


def test_the_realm_and_scheme_a_registry_names_are_escaped_before_they_are_printed():
    realm = "https://auth.exa\x1bmple.com/tok\x1b[2Jen\x9b"
    outcome, transport = run((401, b"", bearer_challenge(realm)), (200, {"token": "t-3"}), (200, b"{}"))
    assert outcome.ok, outcome
    assert transport.requests[1].full_url.startswith(realm)  # what is sent is what the registry named
    shown = [_step_line(step) for step in outcome.steps] + list(outcome.notes) + [outcome.verdict]
    assert all(printable(line) for line in shown), shown
    assert "\\x1b[2Jen" in _step_line(outcome.steps[1])
    odd, _ = run((401, b"", {"WWW-Authenticate": 'Ne\x1b[31mgotiate\r realm="x"'}))
    assert not odd.ok and printable(odd.verdict) and "ne\\x1b[31mgotiate" in odd.verdict, odd.verdict
