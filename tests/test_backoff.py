"""A dead upstream costs one timeout, not one per call: after a fetch whose source did not answer (a timeout, a
refused or unreachable connection, HTTP 5xx), `get` holds the registration back for about 30 s (cache_policy), in
every process (the failure is kept in tokens.bin), serving a still-valid answer or repeating the line at once.
In process with an injected clock and jitter; once through the installed program. Counts are taken at the
stand-in, never from wall-time margins."""

from __future__ import annotations

import json
import os
import time
from typing import Callable

import pytest

from docker_credential_idp import cache_policy
from docker_credential_idp.errors import ProviderError
from docker_credential_idp.model import Registration, Secrets
from docker_credential_idp.paths import home_dir
from docker_credential_idp.pipeline import GetPipeline
from docker_credential_idp.progress import Progress
from docker_credential_idp.providers import get_provider
from docker_credential_idp.providers.base import FetchContext
from docker_credential_idp.token_cache import Entries, FetchFailure, Target
from docker_credential_idp.vault import Vault

from .conftest import Clock, assert_one_line_error, call_helper, run_helper
from .servers import LocalServer, platform_creds_api
from .test_provider_rules import PLATFORM, ScriptedTransport

HOST = "registry.example.com"
PREFIX = f"{HOST}/team"
TOKEN = "backoff-platform-token"
PASSWORD = "backoff-pw-1"


# -- policy ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("jitter, after", [(0.0, 22.5), (0.5, 30.0), (0.999999, 37.5), (-3.0, 22.5), (7.0, 37.5)])
def test_policy_a_failure_is_retried_after_thirty_seconds_give_or_take_a_quarter(jitter, after):
    assert cache_policy.retry_after_failure(1000.0, jitter) == pytest.approx(1000.0 + after)


@pytest.mark.parametrize("now, held", [(999.0, False), (1000.0, True), (1029.9, True), (1030.0, False), (5000.0, False)])
def test_policy_a_failure_holds_back_from_when_it_happened_to_its_retry_point(now, held):
    assert cache_policy.held_back(now, 1000.0, 1030.0) is held


def test_policy_a_retry_point_past_the_longest_back_off_is_not_believed():
    assert cache_policy.held_back(1037.0, 1000.0, 10**12) and not cache_policy.held_back(1037.5, 1000.0, 10**12)


# -- which failures count ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("answers, transient", [
    ((ConnectionRefusedError(111, "Connection refused"),) * 3, True),
    ((TimeoutError("timed out"),) * 3, True),
    (((503, {}),) * 3, True),
    (((500, {}), (502, {}), (504, {})), True),
    (((401, {}),), False),
    (((403, {}),), False),
    (((404, {}),), False),
    (((200, b"{not json"),), False),
])
def test_only_a_source_that_does_not_answer_is_a_transient_failure(answers, transient):
    context = FetchContext(env={}, timeout=10.0, now=lambda: 0.0, transport=ScriptedTransport(*answers),
                           sleep=lambda seconds: None)
    with pytest.raises(ProviderError) as raised:
        get_provider("platform").fetch(PLATFORM, context)
    assert raised.value.transient is transient, raised.value.message


def test_a_script_that_runs_out_of_time_is_transient_one_that_fails_is_not():
    script = get_provider("script")
    for text, transient in (("sleep 5", True), ("echo nope >&2; exit 3", False)):
        registration = Registration("s", HOST, "script", {}, Secrets({"script": text}))
        with pytest.raises(ProviderError) as raised:
            script.fetch(registration, FetchContext(env={"PATH": os.defpath}, timeout=0.5))
        assert raised.value.transient is transient, raised.value.message


def test_aws_counts_an_unreachable_endpoint_and_a_5xx_not_a_refusal():
    import botocore.exceptions

    from docker_credential_idp.providers import aws

    def client_error(status: int, code: str) -> Exception:
        return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": "m"},
                                                "ResponseMetadata": {"HTTPStatusCode": status}}, "GetAuthorizationToken")

    for error, transient in ((botocore.exceptions.EndpointConnectionError(endpoint_url="https://x"), True),
                             (client_error(503, "ServiceUnavailableException"), True),
                             (client_error(400, "UnrecognizedClientException"), False),
                             (client_error(403, "AccessDeniedException"), False),
                             (botocore.exceptions.NoCredentialsError(), False)):
        assert aws.describe_error(botocore, error, {}).transient is transient, error


def test_a_provider_that_outlives_its_timebox_is_transient(monkeypatch):
    from docker_credential_idp import fetching
    from docker_credential_idp.timebox import TimedOut

    def never(seconds: float, work: Callable[[], object]) -> object:
        raise TimedOut()

    monkeypatch.setattr(fetching, "call_within", never)
    with pytest.raises(ProviderError) as raised:
        fetching.fetch(PLATFORM, {}, time.time, HOST)
    assert raised.value.transient and "no answer within" in raised.value.message


# -- the record --------------------------------------------------------------------------------------------------


def test_the_failure_is_kept_per_slot_and_holds_back_only_the_record_it_failed_under():
    entries = Entries()
    entries.failures["r"] = FetchFailure("a" * 32, 1000.0, 1030.0, "registration 'r' (platform): timed out\tx")
    again = Entries.parse(entries.format())
    failure = Target("a" * 32, "r", 10.0).failure(again)
    assert failure is not None and (failure.failed_at, failure.retry_at, failure.message) == (
        1000.0, 1030.0, "registration 'r' (platform): timed out\tx")
    assert Target("b" * 32, "r", 10.0).failure(again) is None  # a changed registration
    assert Target("a" * 32, "r", 10.0, "other.example.com").failure(again) is None  # another slot


# -- get, in process ---------------------------------------------------------------------------------------------


@pytest.fixture
def platform():
    server = platform_creds_api(token=TOKEN, org="acme", registries={"team": {"username": "robot", "password": PASSWORD,
                                                                               "expires_in": 3600}})
    yield server
    server.stop()


def add_platform(server: LocalServer, *extra: str) -> None:
    result = call_helper("registry", "add", "team", "--prefix", PREFIX, "--type", "platform", "--url", server.url,
                        "--org", "acme", "--registry-id", "team", "--token-stdin", "--timeout", "1", *extra, stdin=TOKEN)
    assert result.code == 0, result


def get(clock: Clock, warnings: list[str] | None = None) -> str:
    """One `get` as a new process makes it (a new vault and pipeline), at the clock's time, jitter in the middle."""
    pipeline = GetPipeline(Vault(home_dir(os.environ), os.environ), os.environ,
                           warn=(warnings if warnings is not None else []).append, now=clock, jitter=lambda: 0.5)
    return pipeline.get(PREFIX).secret


def failures() -> dict[str, FetchFailure]:
    pipeline = GetPipeline(Vault(home_dir(os.environ), os.environ), os.environ)
    return pipeline.token_cache().load().failures


def test_a_hung_source_is_waited_for_once_then_held_back_until_its_retry_point(platform):
    add_platform(platform)
    clock = Clock()
    platform.delay = 3.0  # longer than the registration's 1 s: it never answers in time
    with pytest.raises(ProviderError) as first:
        get(clock)
    assert platform.count() == 1 and "cannot reach the platform API" in first.value.message
    clock.now += 10
    with pytest.raises(ProviderError) as second:
        get(clock)
    assert platform.count() == 1  # not asked again: failed at once
    assert second.value.message.startswith(first.value.message)
    assert "repeated from 10 s ago: the source is asked again in 20 s" in second.value.message
    assert "docker-credential-idp cache clear team" in second.value.message
    platform.delay = 0.0
    clock.now += 19.5
    with pytest.raises(ProviderError):
        get(clock)
    assert platform.count() == 1
    clock.now += 1  # past the retry point (30 s with jitter 0.5): asked again, and it answers
    assert get(clock) == PASSWORD and platform.count() == 2
    assert failures() == {}  # a success forgets the failure


def test_within_the_back_off_a_still_valid_answer_is_served_with_the_warning(platform):
    add_platform(platform)
    clock = Clock()
    assert get(clock) == PASSWORD and platform.count() == 1
    clock.now += 3400  # past the refresh point: stale, still valid
    platform.delay = 3.0
    warnings: list[str] = []
    assert get(clock, warnings) == PASSWORD and platform.count() == 2
    assert len(warnings) == 1 and "serving the cached token" in warnings[0]
    clock.now += 5
    assert get(clock, warnings) == PASSWORD and platform.count() == 2
    assert len(warnings) == 2 and "repeated from 5 s ago" in warnings[1] and "serving the cached token" in warnings[1]
    assert PASSWORD not in "".join(warnings)


def test_a_refusal_is_not_held_back(platform):
    add_platform(platform)
    platform.fault = "403"
    clock = Clock()
    for count in (1, 2):
        with pytest.raises(ProviderError) as refused:
            get(clock)
        assert platform.count() == count and "HTTP 403" in refused.value.message and "repeated" not in refused.value.message
        clock.now += 1
    assert failures() == {}


@pytest.mark.parametrize("command", [("cache", "clear", "team"), ("cache", "clear")])
def test_cache_clear_lets_the_next_get_try_at_once(platform, command):
    add_platform(platform)
    clock = Clock()
    platform.delay = 3.0
    with pytest.raises(ProviderError):
        get(clock)
    assert call_helper(*command).code == 0
    platform.delay = 0.0
    assert get(clock) == PASSWORD and platform.count() == 2


def test_a_replaced_or_changed_registration_is_not_held_back_by_its_old_failure(platform):
    add_platform(platform)
    clock = Clock()
    platform.delay = 3.0
    with pytest.raises(ProviderError):
        get(clock)
    platform.delay = 0.0
    add_platform(platform, "--replace")  # the same record again: how a fix is applied
    assert get(clock) == PASSWORD and platform.count() == 2
    call_helper("cache", "clear")
    platform.delay = 3.0
    with pytest.raises(ProviderError):
        get(clock)
    platform.delay = 0.0
    add_platform(platform, "--replace", "--refresh-margin", "60")  # a new record
    assert get(clock) == PASSWORD and platform.count() == 4


def test_registry_remove_forgets_the_failure(platform):
    add_platform(platform)
    clock = Clock()
    platform.delay = 3.0
    with pytest.raises(ProviderError):
        get(clock)
    assert list(failures()) == ["team"]
    assert call_helper("registry", "remove", "team").code == 0
    assert failures() == {}


# -- get, through the installed program --------------------------------------------------------------------------


def test_a_second_process_does_not_wait_for_a_hung_source_again(platform):
    add_platform(platform)
    platform.delay = 3.0
    first = run_helper("get", stdin=HOST + "/team")
    line = assert_one_line_error(first, "registration 'team' (platform)", "timed out", stream="out")
    assert platform.count() == 1
    second = run_helper("get", stdin=HOST + "/team")
    repeated = assert_one_line_error(second, "repeated from", "s ago: the source is asked again in", stream="out")
    assert repeated.startswith(line) and platform.count() == 1
    assert TOKEN not in first.out + first.err + second.out + second.err
    assert HOST in json.loads(run_helper("list").out) and platform.count() == 1  # list fetches nothing



# -- the diagnostic commands ask the source, whatever the hold ---------------------------------------------------


def table_at(clock: Clock):  # type: ignore[no-untyped-def]
    from docker_credential_idp.table import RegistryTable

    return RegistryTable(Vault(home_dir(os.environ), os.environ), os.environ, now=clock)


@pytest.fixture
def handshake(monkeypatch):
    """registry_check.check stood in for: the credential the diagnostic was given, and an accepting registry."""
    from docker_credential_idp import registry_check

    given: list[str] = []

    def accept(registration, served, credential, *rest):  # type: ignore[no-untyped-def]
        given.append(credential.secret)
        return registry_check.Outcome(True, f"OK: {HOST} accepts the credential (Basic auth)")

    monkeypatch.setattr(registry_check, "check", accept)
    return given


def fail_once_then_fix(platform: LocalServer, clock: Clock) -> None:
    platform.delay = 3.0
    with pytest.raises(ProviderError):
        get(clock)
    assert platform.count() == 1 and list(failures()) == ["team"]
    platform.delay = 0.0  # the platform is fixed
    clock.now += 3


def test_registry_test_asks_the_source_during_the_back_off_and_its_success_ends_the_hold(platform, handshake):
    add_platform(platform)
    clock = Clock()
    fail_once_then_fix(platform, clock)
    table = table_at(clock)
    outcome = table.test_registration(table.registration("team"), PREFIX)
    assert outcome.ok and handshake == [PASSWORD] and platform.count() == 2
    assert failures() == {}  # for everyone: the next get takes the answer the diagnostic fetched
    assert get(clock) == PASSWORD and platform.count() == 2


def test_doctor_online_asks_the_source_during_the_back_off(platform, handshake):
    from docker_credential_idp import doctor

    add_platform(platform)
    clock = Clock()
    fail_once_then_fix(platform, clock)
    table = table_at(clock)
    steps = Progress(lambda line: None, "doctor", clock=clock, start_timer=lambda seconds, callback: lambda: None)
    assert doctor.handshakes(table, [table.registration("team")], steps) == []
    assert handshake == [PASSWORD] and platform.count() == 2 and failures() == {}


def test_get_and_creds_keep_the_hold(platform):
    add_platform(platform)
    clock = Clock()
    fail_once_then_fix(platform, clock)
    table = table_at(clock)
    with pytest.raises(ProviderError) as held:
        table.credential(table.registration("team"), PREFIX)  # creds and kubelet
    assert "repeated from 3 s ago" in held.value.message and platform.count() == 1


def test_doctor_online_names_the_registration_once(platform):
    from docker_credential_idp import doctor

    add_platform(platform)
    platform.fault = "403"
    clock = Clock()
    table = table_at(clock)
    steps = Progress(lambda line: None, "doctor", clock=clock, start_timer=lambda seconds, callback: lambda: None)
    (problem,) = doctor.handshakes(table, [table.registration("team")], steps)
    line = problem.line()
    assert line.startswith("registration team: the token may not read") and "HTTP 403" in line, line
    assert "registration 'team'" not in line, line  # the id once


# -- cache clear says what it dropped ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", [("cache", "clear", "team"), ("cache", "clear")])
def test_cache_clear_counts_the_held_back_failure_it_drops(platform, command):
    add_platform(platform)
    clock = Clock()
    platform.delay = 3.0
    with pytest.raises(ProviderError):
        get(clock)
    cleared = run_helper(*command)
    assert cleared.code == 0 and cleared.out == "Dropped 0 cached tokens and 1 held-back failure\n", cleared
    assert failures() == {}
