"""The token cache: its policy, one upstream fetch for many parallel callers, cache hits that load no SDK,
stale tokens served when the source fails, and each fault's own clear message."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from docker_credential_idp.cache_policy import (
    DEFAULT_MIN_TTL,
    DEFAULT_REFRESH_MARGIN,
    EXPIRED,
    FRESH,
    STALE,
    believable_expiry,
    refresh_at,
    seconds_to_refresh,
    state,
    worth_caching,
)
from docker_credential_idp.errors import ProviderError

from .conftest import Clock, assert_one_line_error, call_helper, get_at, run_helper
from .servers import ecr_api_endpoint, google_token_endpoint, write_key
from .test_provider_conformance import AWS_SECRET, ECR_HOST

GAR = "europe-docker.pkg.dev"


# -- policy ------------------------------------------------------------------------------------------------------


def token_state(now: float, fetched_at: float, expires_at: float | None, margin: float = DEFAULT_REFRESH_MARGIN,
                min_ttl: float = DEFAULT_MIN_TTL) -> str:
    """The state of an answer fetched at `fetched_at`, as the pipeline reaches it: its refresh point, then its state."""
    return state(now, refresh_at(fetched_at, expires_at, margin, min_ttl), expires_at)


@pytest.mark.parametrize(
    "now, expected",
    [(0, FRESH), (2699, FRESH), (2700, STALE), (3599, STALE), (3600, EXPIRED), (9999, EXPIRED)],
)
def test_policy_margin_before_expiry(now, expected):
    assert token_state(now, fetched_at=0, expires_at=3600, margin=900) == expected


@pytest.mark.parametrize(
    "now, expected",
    [(0, FRESH), (2999, FRESH), (3000, STALE), (3599, STALE), (3600, EXPIRED)],
)
def test_policy_the_default_margin_gives_way_to_the_min_ttl(now, expected):
    """The default margin (5 min) is less than the default --min-ttl (10 min): the min-ttl places the refresh point."""
    assert DEFAULT_REFRESH_MARGIN < DEFAULT_MIN_TTL == 600
    assert token_state(now, fetched_at=0, expires_at=3600) == expected


def test_policy_short_lived_token_refreshes_at_half_life_when_the_margin_is_larger():
    assert refresh_at(0, 2400, 1500) == 1200
    assert token_state(1199, 0, 2400, 1500) == FRESH and token_state(1201, 0, 2400, 1500) == STALE
    assert refresh_at(0, 1200, 900) == 600  # half its life is the min-ttl itself


@pytest.mark.parametrize("min_ttl", [60, 300, 600, 1800])
@pytest.mark.parametrize("lifetime", [59, 60, 299, 300, 450, 599, 600, 601, 900, 1799, 1800, 3600, 43200])
def test_policy_never_serves_a_token_with_less_than_min_ttl_left(lifetime, min_ttl):
    """BuildKit keeps an answer up to 10 minutes (moby/buildkit PR#5684): a token handed out from the cache with less
    than --min-ttl left could expire in its hands. One that lives no longer than that is never fresh."""
    for now in range(0, lifetime, 7):
        if token_state(now, 0, lifetime, DEFAULT_REFRESH_MARGIN, min_ttl) == FRESH:
            assert lifetime - now > min_ttl, (lifetime, now)
    assert (token_state(0, 0, lifetime, DEFAULT_REFRESH_MARGIN, min_ttl) == FRESH) == (lifetime > min_ttl)


@pytest.mark.parametrize("expires_at, believed", [
    (1_000_600.0, True), (1_000_000.0 + 30 * 86400, True), (999_000.0, True), (0.0, True),
    (1_000_001.0 + 30 * 86400, False), (float("nan"), False), (float("inf"), False), (float("-inf"), False),
    (1e300, False), (-1.0, False)])
def test_policy_believes_an_expiry_only_within_thirty_days(expires_at, believed):
    now, lifetime = 1_000_000.0, 1200.0
    expected = expires_at if believed else now + lifetime
    assert believable_expiry(now, expires_at, lifetime) == expected
    assert believable_expiry(now, None, lifetime) is None


def test_policy_what_is_worth_caching():
    assert worth_caching(100, 200) and not worth_caching(100, 100) and not worth_caching(100, 50)
    assert worth_caching(100, None)  # a static password: kept until its registration changes


def test_policy_an_answer_without_expiry_stays_fresh():
    assert token_state(10**12, 0, None) == FRESH and refresh_at(0, None, 300) is None
    assert state(10**12, None, None) == FRESH
    assert state(50, 40, 60) == STALE and state(30, 40, 60) == FRESH and state(60, 40, 60) == EXPIRED


def test_policy_the_kubelet_keeps_an_answer_until_its_refresh_point():
    assert seconds_to_refresh(100, 1300.5) == 1200 and seconds_to_refresh(100, 100) == 0
    assert seconds_to_refresh(100, 40) == 0 and seconds_to_refresh(100, None) is None


# -- helpers -----------------------------------------------------------------------------------------------------

# What a cache hit must not load: the SDKs, and what would cost it milliseconds on every pull (docs: README,
# Performance). json/re, typing, dataclasses/inspect, pathlib and cryptography's bindings are each 2-15 ms.
HEAVY_MODULES = frozenset({
    "boto3", "botocore", "google", "google.auth", "requests", "urllib3", "platformdirs", "cryptography", "azure", "msal",
    "docker_credential_idp.service", "docker_credential_idp.table", "docker_credential_idp.model",
    "docker_credential_idp.providers",
    "json", "re", "typing", "dataclasses", "inspect", "pathlib", "argparse", "hashlib", "threading",
})


def imports_of_get(host: str) -> set[str]:
    """Every module a `get` imports, read from the interpreter's own import profile (not a timing)."""
    result = run_helper("get", stdin=host, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.code == 0, result
    return {line.rsplit("|", 1)[-1].strip() for line in result.err.splitlines() if line.startswith("import time:")}



def add_gar(tmp_path: Path, key: dict, server, *extra: str) -> None:
    key_file = write_key(tmp_path, key, f"{server.url}/token")
    result = call_helper("registry", "add", "gar", "--prefix", f"{GAR}/project", "--type", "gar", "--key-file",
                        str(key_file), *extra)
    assert result.code == 0, result


def get_json(host: str, env=None) -> dict:
    result = call_helper("get", stdin=host, env=env)
    assert result.code == 0, result
    return json.loads(result.out)


@pytest.fixture
def google(service_account_key):
    server = google_token_endpoint("ya29.cached-token")
    yield server
    server.stop()


# -- behaviour ---------------------------------------------------------------------------------------------------


def test_thirty_two_parallel_cold_gets_make_one_upstream_call(tmp_path, google, service_account_key):
    add_gar(tmp_path, service_account_key, google)
    google.delay = 0.5  # the first caller is still fetching while the others arrive
    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(lambda _: run_helper("get", stdin=GAR), range(32)))
    assert all(a.code == 0 for a in answers), [a for a in answers if a.code]
    assert {json.loads(a.out)["Secret"] for a in answers} == {"ya29.cached-token"}
    assert google.count("/token") == 1


def test_cache_hit_imports_no_sdk(tmp_path, google, service_account_key):
    add_gar(tmp_path, service_account_key, google)
    get_json(GAR)
    imported = imports_of_get(GAR)
    assert google.count("/token") == 1
    assert "docker_credential_idp.pipeline" in imported  # the profile did record our imports
    assert imported & HEAVY_MODULES == set()


def test_ecr_cache_hit_and_ecr_public(tmp_path):
    api = ecr_api_endpoint("ecr-cached-password")
    try:
        for registration_id, prefix in (("private", ECR_HOST), ("public", "public.ecr.aws/my-alias")):
            result = run_helper("registry", "add", registration_id, "--prefix", prefix, "--type", "ecr",
                                "--access-key-id", "AKIAIOSFODNN7EXAMPLE", "--secret-access-key-stdin",
                                "--endpoint-url", api.url, stdin=AWS_SECRET)
            assert result.code == 0, result
        for _ in range(3):
            assert get_json(ECR_HOST) == {"ServerURL": ECR_HOST, "Username": "AWS", "Secret": "ecr-cached-password"}
            assert get_json("public.ecr.aws")["Secret"] == "ecr-cached-password"
        assert api.count() == 2
        hit = run_helper("get", stdin=ECR_HOST, env={"PYTHONPROFILEIMPORTTIME": "1"})
        assert "boto3" not in hit.err and "botocore" not in hit.err
    finally:
        api.stop()


def test_token_expired_when_issued_is_returned_but_not_cached(moto_url):
    result = call_helper("registry", "add", "ecr", "--prefix", ECR_HOST, "--type", "ecr", "--access-key-id",
                        "AKIAIOSFODNN7EXAMPLE", "--secret-access-key-stdin", "--endpoint-url", moto_url, stdin=AWS_SECRET)
    assert result.code == 0, result
    assert get_json(ECR_HOST)["Secret"] == "123456789012-auth-token"
    assert json.loads(call_helper("vault", "status", "--json").out)["cached_tokens"] == 0


def test_stale_token_served_with_warning_when_refresh_fails_then_expired_fails(tmp_path, service_account_key):
    """In process, on a clock moved by hand (the pipeline a `get` runs, with `now` injected): no waiting."""
    server = google_token_endpoint("ya29.short-lived", expires_in=lambda: 3600)
    try:
        add_gar(tmp_path, service_account_key, server)
        clock = Clock()
        assert get_at(clock, GAR, []) == "ya29.short-lived"
        clock.now += 3600 - 120  # past its refresh point (--min-ttl, ten minutes before expiry): stale
        server.fault = "403"  # not retried by google-auth (a 500 is)
        warnings: list[str] = []
        assert get_at(clock, GAR, warnings) == "ya29.short-lived"
        assert len(warnings) == 1 and "serving the cached token" in warnings[0] and "ya29" not in warnings[0]
        clock.now += 240  # expired: never served
        with pytest.raises(ProviderError) as expired:
            get_at(clock, GAR, warnings)
        assert len(expired.value.message.splitlines()) == 1
        assert "registration 'gar'" in expired.value.message and "Google token request failed" in expired.value.message
    finally:
        server.stop()


def test_remove_replace_and_cache_clear_retire_tokens(tmp_path, google, service_account_key):
    add_gar(tmp_path, service_account_key, google)
    get_json(GAR)
    status = json.loads(call_helper("vault", "status", "--json").out)
    assert status["cached_tokens"] == 1
    resolved = json.loads(call_helper("resolve", f"{GAR}/project/app:1", "--json").out)
    assert resolved["token_expires_at"] > time.time() + 3000
    assert "expires_at" in json.loads(call_helper("creds", f"{GAR}/project/app").out)
    assert call_helper("cache", "clear", "gar").out.startswith("Dropped 1 cached token")
    get_json(GAR)
    assert google.count("/token") == 2
    add_gar(tmp_path, service_account_key, google, "--replace", "--refresh-margin", "60")  # new fingerprint
    get_json(GAR)
    assert google.count("/token") == 3
    assert call_helper("registry", "remove", "gar").code == 0
    assert json.loads(call_helper("vault", "status", "--json").out)["cached_tokens"] == 0


def test_gcr_application_default_credentials_from_metadata_server(tmp_path):
    from .servers import gce_metadata_server

    metadata = gce_metadata_server("ya29.from-metadata")
    try:
        assert run_helper("registry", "add", "adc", "--prefix", "gcr.io/project", "--type", "gcr").code == 0
        env = {"GCE_METADATA_HOST": metadata.address, "GCE_METADATA_IP": metadata.address,
               "GOOGLE_CLOUD_PROJECT": "project", "CLOUDSDK_CONFIG": str(tmp_path / "no-gcloud")}
        assert get_json("gcr.io", env=env) == {"ServerURL": "gcr.io", "Username": "oauth2accesstoken",
                                                "Secret": "ya29.from-metadata"}
    finally:
        metadata.stop()


def test_gcr_adc_from_google_application_credentials(tmp_path, google, service_account_key):
    key_file = write_key(tmp_path, service_account_key, f"{google.url}/token")
    assert call_helper("registry", "add", "adc", "--prefix", "gcr.io", "--type", "gcr").code == 0
    assert get_json("gcr.io", env={"GOOGLE_APPLICATION_CREDENTIALS": str(key_file)})["Secret"] == "ya29.cached-token"


def test_ecr_without_any_aws_credentials(moto_url):
    assert call_helper("registry", "add", "ecr", "--prefix", ECR_HOST, "--type", "ecr", "--endpoint-url", moto_url).code == 0
    line = assert_one_line_error(call_helper("get", stdin=ECR_HOST, env={"AWS_CONFIG_FILE": "/nonexistent",
                                                                          "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}),
                                 "registration 'ecr'", "no AWS credentials", stream="out")
    assert "Traceback" not in line


def test_ecr_unknown_profile(moto_url):
    assert call_helper("registry", "add", "ecr", "--prefix", ECR_HOST, "--type", "ecr", "--profile", "ghost").code == 0
    assert_one_line_error(call_helper("get", stdin=ECR_HOST, env={"AWS_CONFIG_FILE": "/nonexistent"}),
                          "AWS profile 'ghost'", stream="out")


def test_ecr_profile_and_assumed_role_through_moto_sts(tmp_path, moto_url):
    config = tmp_path / "aws-config"
    config.write_text("[profile ci]\nregion = eu-west-1\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
                      f"aws_secret_access_key = {AWS_SECRET}\n")
    result = call_helper("registry", "add", "ecr", "--prefix", ECR_HOST, "--type", "ecr", "--profile", "ci",
                        "--role-arn", "arn:aws:iam::123456789012:role/puller", "--external-id", "ext-1")
    assert result.code == 0, result
    env = {"AWS_CONFIG_FILE": str(config), "AWS_ENDPOINT_URL": moto_url}  # both STS and ECR go to moto
    assert get_json(ECR_HOST, env=env)["Username"] == "AWS"


def test_ecr_host_must_be_ecr_or_named(moto_url):
    assert_one_line_error(call_helper("registry", "add", "x", "--prefix", "registry.example.com", "--type", "ecr"),
                          "not an ECR host", "--region")


@pytest.mark.parametrize("fault, fragment", [("403", "Google token request failed"), ("garbage", "not a token response")])
def test_gcr_token_endpoint_faults(tmp_path, google, service_account_key, fault, fragment):
    add_gar(tmp_path, service_account_key, google)
    google.fault = fault
    assert_one_line_error(call_helper("get", stdin=GAR), "registration 'gar'", fragment, stream="out")


def test_slow_source_is_cut_at_the_timeout(tmp_path, google, service_account_key):
    add_gar(tmp_path, service_account_key, google, "--timeout", "1")
    google.delay = 60  # an answer this late has timed out, however busy the machine
    started = time.monotonic()
    result = run_helper("get", stdin=GAR)
    assert time.monotonic() - started < 1 + 30 < google.delay
    assert_one_line_error(result, "registration 'gar'", stream="out")


def test_parallel_callers_of_a_hung_source_are_all_bounded(tmp_path, google, service_account_key):
    add_gar(tmp_path, service_account_key, google, "--timeout", "1")
    google.delay = 60
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: run_helper("get", stdin=GAR), range(6)))
    # each caller waits for the lock at most one fetch (timeout + 2 s), then fetches at most once (timeout + 1 s),
    # plus six interpreter starts on a busy machine: well before the answer would come
    assert time.monotonic() - started < 5 + 30 < google.delay
    for result in results:
        assert_one_line_error(result, "registration 'gar'", stream="out")


def test_gcr_key_must_be_a_google_key():
    assert_one_line_error(call_helper("registry", "add", "g", "--prefix", "gcr.io", "--type", "gcr", "--key-stdin",
                                     stdin='{"hello": "world"}'), "not a Google service-account")


# -- --min-ttl: never hand out a credential that dies in the client's cache ----------------------------------------

ISSUED = "registry.example.com"


def add_minting_script(tmp_path: Path, *extra: str) -> tuple[Path, Path]:
    """A script registration that prints the JWT the test last wrote to `token` as its password (no expiry of its
    own) and counts its runs in `runs`: a source whose credential's life is the JWT's."""
    token, runs = tmp_path / "token", tmp_path / "runs"
    runs.write_text("")
    script = f"echo run >> '{runs}'; printf 'robot:%s\\n' \"$(cat '{token}')\"\n"
    result = call_helper("registry", "add", "minted", "--prefix", ISSUED, "--type", "script", "--script-stdin", *extra,
                         stdin=script)
    assert result.code == 0, result
    return token, runs


def mint(issuer, token_file: Path, lifetime: float) -> str:
    from .conftest import LEAKS

    token = issuer.mint("registry.example.com", lifetime=lifetime)
    LEAKS.watch(token)  # an answer, never a message or a file in clear
    token_file.write_text(token)
    return token


def runs_of(runs: Path) -> int:
    return len(runs.read_text().splitlines())


def test_a_jwt_password_without_expiry_lives_until_its_exp(tmp_path):
    """The script gives no expiry (its type's default is 12 h): the JWT's own `exp` (1 h) is the credential's, so it
    is refreshed once less than --min-ttl (10 min) of that hour is left, not 12 h later."""
    from .oidc import Issuer

    clock = Clock()
    issuer = Issuer(now=clock)
    token_file, runs = add_minting_script(tmp_path)
    first = mint(issuer, token_file, 3600)
    assert get_at(clock, ISSUED, []) == first and runs_of(runs) == 1
    clock.now += 3600 - 600 - 5
    assert get_at(clock, ISSUED, []) == first and runs_of(runs) == 1  # still fresh: a cache hit
    second = mint(issuer, token_file, 3600)
    clock.now += 10  # less than ten minutes left
    assert get_at(clock, ISSUED, []) == second and runs_of(runs) == 2


def test_a_credential_shorter_than_min_ttl_is_minted_for_every_get_and_said_once(tmp_path):
    """A 5-minute token (GitHub Actions' OIDC token used as a password) cannot have 10 minutes left when BuildKit
    would still use it: every get runs the source (none is answered from the cache), and one line on stderr says
    why."""
    from .oidc import Issuer

    clock = Clock()
    issuer = Issuer(now=clock)
    token_file, runs = add_minting_script(tmp_path)
    warnings: list[str] = []
    answers = []
    for _ in range(3):
        answers.append(mint(issuer, token_file, 300))
        assert get_at(clock, ISSUED, warnings) == answers[-1]
        clock.now += 1
    assert runs_of(runs) == 3  # minted anew each time: no answer served from the cache
    assert len(warnings) == 1, warnings
    note = warnings[0]
    assert "\n" not in note and "'minted'" in note and "5m" in note and "--min-ttl 10m" in note
    assert not any(token in note for token in answers)
    clock.now += 60  # a later build is told again
    mint(issuer, token_file, 300)
    get_at(clock, ISSUED, warnings)
    assert len(warnings) == 2


def test_a_lower_min_ttl_lets_a_short_credential_be_cached_until_it_has_that_much_left(tmp_path):
    from .oidc import Issuer

    clock = Clock()
    issuer = Issuer(now=clock)
    token_file, runs = add_minting_script(tmp_path, "--min-ttl", "2m")
    first = mint(issuer, token_file, 300)
    warnings: list[str] = []
    assert get_at(clock, ISSUED, warnings) == first
    clock.now += 140  # 160 s left: more than 2 minutes, and than half its life (the margin's rule for short tokens)
    assert get_at(clock, ISSUED, warnings) == first and runs_of(runs) == 1
    second = mint(issuer, token_file, 300)
    clock.now += 20  # 140 s left: past half its life
    assert get_at(clock, ISSUED, warnings) == second and runs_of(runs) == 2 and warnings == []


def test_the_kubelet_is_told_not_to_keep_a_credential_shorter_than_min_ttl(tmp_path):
    from .kubelet import exec_plugin
    from .oidc import Issuer

    issuer = Issuer()
    token_file, runs = add_minting_script(tmp_path)
    token = mint(issuer, token_file, 300)
    answer = exec_plugin(f"{ISSUED}/app:1")
    assert answer.credential_for(f"{ISSUED}/app:1") == ("robot", token) and answer.cache_duration == 0
    long_lived = mint(issuer, token_file, 3600)
    answer = exec_plugin(f"{ISSUED}/app:1")
    assert answer.credential_for(f"{ISSUED}/app:1") == ("robot", long_lived)
    assert 3000 - 30 <= answer.cache_duration <= 3000  # until its refresh point: --min-ttl before exp
