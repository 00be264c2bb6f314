"""The fleet sources, each against the real thing or its nearest stand-in: real /bin/sh scripts, a local HTTPS
server speaking the platform's creds API behind a private CA, moto's server mode for Secrets Manager."""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import Clock, assert_one_line_error, call_helper, get_at, run_helper
from .servers import platform_creds_api
from .setups import AWS_SECRET, put_secret
from .tls import make_tls

HOST = "registry.example.com"


def add(*args: str, stdin: str = "", env=None) -> None:
    result = call_helper("registry", "add", "src", "--prefix", HOST, *args, stdin=stdin, env=env)
    assert result.code == 0, result


def get(env=None):
    return call_helper("get", stdin=HOST, env=env)


def get_process(env=None):
    """`get` as a process: for what only processes show (parallel callers, children killed, a timeout's bound)."""
    return run_helper("get", stdin=HOST, env=env)


def creds(env=None) -> dict:
    """`creds --format json`, with expires_at turned from ISO 8601 into epoch seconds."""
    result = call_helper("creds", HOST, "--format", "json", env=env)
    assert result.code == 0, result
    answer = json.loads(result.out)
    if answer.get("expires_at"):
        answer["expires_at"] = datetime.datetime.fromisoformat(answer["expires_at"].replace("Z", "+00:00")).timestamp()
    return answer


def add_script(text: str, *options: str) -> None:
    add("--type", "script", "--script-stdin", *options, stdin=text)


# -- script ------------------------------------------------------------------------------------------------------


def test_script_answer_is_the_credential_and_holds_for_the_default_12h():
    add_script('printf "%s\\n" "robot:pa:ss word"\n')
    answer = creds()
    assert (answer["username"], answer["password"]) == ("robot", "pa:ss word")
    assert abs(answer["expires_at"] - (time.time() + 12 * 3600)) < 60


def test_script_expire_option_sets_how_long_the_answer_holds():
    add_script("echo robot:pw\n", "--expire", "30m")
    assert abs(creds()["expires_at"] - (time.time() + 1800)) < 60


@pytest.mark.parametrize("bad", ["90x", "0m", "-1h", "45d", "h"])
def test_script_expire_must_be_a_duration(bad):
    result = call_helper("registry", "add", "src", "--prefix", HOST, "--type", "script", "--script-stdin",
                        f"--expire={bad}", stdin="echo a:b\n")
    assert_one_line_error(result, "duration")


def test_script_runs_with_the_user_environment_and_the_prefix_but_not_the_vault_key():
    key = {"DOCKER_CREDENTIAL_IDP_KEY": base64.b64encode(bytes(range(32))).decode()}
    result = run_helper("registry", "add", "src", "--prefix", HOST, "--type", "script", "--script-stdin", env=key,
                        stdin='[ -n "$DOCKER_CREDENTIAL_IDP_KEY" ] && exit 9\n'
                              'echo "$MY_REGISTRY_USER:$DOCKER_CREDENTIAL_IDP_PREFIX"\n')
    assert result.code == 0, result
    result = get_process({"MY_REGISTRY_USER": "from-env", **key})
    assert result.code == 0, result
    assert json.loads(result.out) == {"ServerURL": HOST, "Username": "from-env", "Secret": HOST}


def test_script_has_no_terminal_and_an_empty_stdin():
    add_script('[ -t 0 ] && exit 3\n[ -t 1 ] && exit 4\nif read line; then exit 5; fi\necho robot:pw\n')
    result = run_helper("get", stdin=HOST)
    assert result.code == 0, result


def test_script_text_never_reaches_argv():
    add_script('# marker-7f3a\necho "robot:$(tr "\\0" " " < /proc/$$/cmdline)"\n')
    answer = creds()
    assert answer["password"].startswith("/bin/sh /dev/fd/") and "marker-7f3a" not in answer["password"]


@pytest.mark.parametrize("text, shape", [
    ('echo robot:pw-9d1; echo again\n', "2 lines"),
    ('echo robot-pw-9d1\n', "without ':'"),
    ('true\n', "nothing"),
    ('echo robot:\n', "empty username or password"),
    ('echo :pw-9d1\n', "empty username or password"),
    ("printf '\\377\\376:pw-9d1'\n", "not UTF-8"),
])
def test_script_bad_answers_are_described_never_echoed(text, shape):
    add_script(text)
    result = get()
    line = assert_one_line_error(result, "registration 'src' (script)", shape, stream="out")
    assert "pw-9d1" not in result.out + result.err and "robot-pw" not in line


def test_script_failure_reports_its_status_and_stderr():
    add_script('echo "partial:secret-3aa"\necho "first line" >&2\necho "vault login failed: token expired" >&2\nexit 2\n')
    result = get()
    assert_one_line_error(result, "exited with status 2", "vault login failed: token expired", stream="out")
    assert "secret-3aa" not in result.out + result.err


def test_slow_script_is_killed_with_its_children_at_the_time_limit():
    add_script("sleep 31.25 &\nsleep 31.5\necho robot:pw\n", "--timeout", "1")
    started = time.monotonic()
    result = get_process()
    elapsed = time.monotonic() - started
    assert_one_line_error(result, "did not finish within 1 s", "--timeout", stream="out")
    assert elapsed < 1 + 20 < 31, elapsed  # --timeout 1, plus the interpreter start on a busy machine
    deadline = time.monotonic() + 10  # the kill lands at once; the process table may take a moment to show it
    while (survivors := subprocess.run(["pgrep", "-f", "sleep 31.[25]"], capture_output=True, text=True).stdout) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert survivors == "", survivors


def test_noisy_script_succeeds_and_its_chatter_stays_out_of_the_protocol():
    add_script('i=0; while [ $i -lt 3000 ]; do echo "progress line $i of a chatty tool" >&2; i=$((i+1)); done\n'
               'echo robot:pw-quiet\n')
    result = get()
    assert result.code == 0, result
    assert json.loads(result.out)["Secret"] == "pw-quiet" and "progress" not in result.out


def test_script_answer_is_cached_until_it_expires(tmp_path):
    counter = tmp_path / "runs"
    add_script(f'echo x >> "{counter}"\necho robot:pw\n')
    for _ in range(3):
        assert get().code == 0
    assert len(counter.read_text().splitlines()) == 1


def test_script_from_file_is_kept_in_the_vault(tmp_path):
    script = tmp_path / "creds.sh"
    script.write_text("echo robot:from-file-pw\n")
    add("--type", "script", "--script-file", str(script))
    script.unlink()
    assert creds()["password"] == "from-file-pw"


# -- platform creds API --------------------------------------------------------------------------------------------

TOKEN = "platform-bearer-51c9"
IN_TWO_DAYS_EPOCH = int(time.time()) + 2 * 86400
IN_TWO_DAYS = datetime.datetime.fromtimestamp(IN_TWO_DAYS_EPOCH, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def platform(tmp_path):
    ca, cert, key = make_tls(tmp_path / "tls")
    server = platform_creds_api(token=TOKEN, org="acme", tls=(cert, key), registries={
        "team": {"username": "robot", "password": "platform-pw", "registry": HOST},
        "expiring": {"username": "robot", "password": "short-pw", "expires_at": IN_TWO_DAYS},
        "nan": {"username": "robot", "password": "odd-pw", "expires_at": float("nan")},
        "infinite": {"username": "robot", "password": "odd-pw", "expires_in": float("inf")},
        "minus-infinite": {"username": "robot", "password": "odd-pw", "expires_at": float("-inf")},
        "far": {"username": "robot", "password": "odd-pw", "expires_at": 1e300},
        "in-2100": {"username": "robot", "password": "odd-pw", "expires_at": "2100-01-01T00:00:00Z"},
        "broken": {"username": "robot"},
        "short-lived": {"username": "robot", "password": "short-pw", "expires_in": 6},
        "forbidden": None,
    })
    yield server, ca
    server.stop()


def add_platform(platform, registry_id="team", *extra: str, token=TOKEN, ca=True) -> None:
    server, ca_path = platform
    add("--type", "platform", "--url", server.url, "--org", "acme", "--registry-id", registry_id, "--token-stdin",
        *(["--ca-file", str(ca_path)] if ca else []), *extra, stdin=token)


def test_platform_answer_is_the_credential_with_the_default_1h(platform):
    add_platform(platform)
    answer = creds()
    assert (answer["username"], answer["password"]) == ("robot", "platform-pw")
    assert abs(answer["expires_at"] - (time.time() + 3600)) < 60
    assert platform[0].calls == [("GET", "/orgs/acme/registries/team/creds")]


def test_platform_expiry_field_wins_over_expire(platform):
    add_platform(platform, "expiring", "--expire", "15m")
    assert creds()["expires_at"] == IN_TWO_DAYS_EPOCH


@pytest.mark.parametrize("registry_id", ["nan", "infinite", "minus-infinite", "far", "in-2100"])
def test_an_unbelievable_expiry_gives_way_to_expire(platform, registry_id):
    """NaN, infinities, 1e300 or a date decades away once crashed creds, kubelet, pull-secret and resolve, and gave
    the kubelet a 300-digit cacheDuration: an expiry must be a time at most 30 days ahead, else --expire holds."""
    add_platform(platform, registry_id, "--expire", "20m")
    assert abs(creds()["expires_at"] - (time.time() + 1200)) < 60
    kubelet = call_helper("kubelet", stdin=json.dumps({"apiVersion": "credentialprovider.kubelet.k8s.io/v1",
                                                      "kind": "CredentialProviderRequest", "image": f"{HOST}/app:1"}))
    assert kubelet.code == 0, kubelet
    assert 500 <= int(json.loads(kubelet.out)["cacheDuration"].removesuffix("s")) <= 600  # 20 min less --min-ttl
    for argv in (("pull-secret", HOST), ("resolve", HOST), ("resolve", HOST, "--json")):
        result = call_helper(*argv)
        assert result.code == 0 and "Traceback" not in result.err, result


def test_platform_needs_its_ca(platform):
    add_platform(platform, ca=False)
    assert_one_line_error(get(), "TLS verification failed", "--ca-file", stream="out")


@pytest.mark.parametrize("case, fragments", [
    ("bad-token", ("HTTP 401", "--token-stdin")),
    ("forbidden", ("HTTP 403", "'forbidden'", "org 'acme'")),
    ("missing", ("HTTP 404", "--registry-id")),
    ("broken", ("without string fields username and password",)),
])
def test_platform_refusals_each_have_their_own_message(platform, case, fragments):
    add_platform(platform, "team" if case == "bad-token" else case, token="wrong" if case == "bad-token" else TOKEN)
    result = get()
    line = assert_one_line_error(result, "registration 'src' (platform)", *fragments, stream="out")
    assert TOKEN not in line
    assert platform[0].count() == 1  # refusals are not retried


def test_platform_garbage_answer(platform):
    add_platform(platform)
    platform[0].fault = "garbage"
    assert_one_line_error(get(), "not JSON", stream="out")


def test_platform_transient_failure_is_retried(platform):
    add_platform(platform)
    platform[0].fault, platform[0].fault_times = "503", 1
    result = get()
    assert result.code == 0, result
    assert json.loads(result.out)["Secret"] == "platform-pw" and platform[0].count() == 2


def test_platform_persistent_failure_gives_up_after_bounded_attempts(platform):
    add_platform(platform)
    platform[0].fault = "502"
    started = time.monotonic()
    result = get_process()
    assert_one_line_error(result, "HTTP 502", "after 3 attempts", stream="out")
    assert platform[0].count() == 3 and time.monotonic() - started < 30


def test_platform_slow_api_stays_within_the_time_limit(platform):
    add_platform(platform, "team", "--timeout", "1")
    platform[0].delay = 60  # an answer this late has timed out, however busy the machine
    started = time.monotonic()
    result = get_process()
    assert_one_line_error(result, "registration 'src' (platform)", stream="out")
    assert time.monotonic() - started < 1 + 30 < platform[0].delay


def test_platform_token_must_travel_over_https():
    result = call_helper("registry", "add", "src", "--prefix", HOST, "--type", "platform", "--url",
                        "http://platform.example.com", "--org", "a", "--registry-id", "r", "--token-stdin", stdin=TOKEN)
    assert_one_line_error(result, "must be https")


def test_platform_token_is_never_an_argument():
    result = run_helper("registry", "add", "src", "--prefix", HOST, "--type", "platform", "--url",
                        "https://platform.example.com", "--org", "a", "--registry-id", "r", "--token", TOKEN)
    line = assert_one_line_error(result, "--token", "never from the command line")
    assert TOKEN not in line


# -- AWS Secrets Manager ---------------------------------------------------------------------------------------------

AWS_ENV = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": AWS_SECRET}


def add_aws_secret(moto_url, secret_id, *extra):
    add("--type", "aws-secret", "--secret-id", secret_id, "--endpoint-url", moto_url, *extra)


@pytest.mark.parametrize("value", [json.dumps({"username": "fleet", "password": "sm-pw", "note": "x"}), "fleet:sm-pw\n"])
def test_aws_secret_json_or_text_through_the_default_chain(moto_url, value):
    arn = put_secret(moto_url, "sources/registry", value)
    add_aws_secret(moto_url, arn)  # the region comes from the ARN, the identity from the environment
    answer = creds(env=AWS_ENV)
    assert (answer["username"], answer["password"]) == ("fleet", "sm-pw")
    assert abs(answer["expires_at"] - (time.time() + 3600)) < 60


@pytest.mark.parametrize("value, fragment", [
    ('{"username": "fleet"', "not valid JSON"),
    ('{"user": "fleet", "password": "sm-pw"}', "without string fields username and password"),
    ("just-a-token-sm-pw", "neither JSON"),
])
def test_aws_secret_malformed_values_are_described_never_shown(moto_url, value, fragment):
    put_secret(moto_url, "sources/malformed", value)
    add_aws_secret(moto_url, "sources/malformed", "--region", "eu-west-1")
    result = get(AWS_ENV)
    assert_one_line_error(result, "registration 'src' (aws-secret)", fragment, stream="out")
    assert "sm-pw" not in result.out + result.err


def test_aws_secret_missing(moto_url):
    add_aws_secret(moto_url, "sources/absent", "--region", "eu-west-1")
    assert_one_line_error(get(AWS_ENV), "'sources/absent' does not exist", "--region", stream="out")


def test_aws_secret_without_identity_names_the_chain(moto_url):
    add_aws_secret(moto_url, "sources/registry", "--region", "eu-west-1")
    assert_one_line_error(get(), "no AWS credentials", stream="out")


def test_aws_secret_without_region_says_how_to_give_one(moto_url):
    add_aws_secret(moto_url, "sources/registry")
    assert_one_line_error(get(AWS_ENV), "no AWS region", "--region", stream="out")


def test_thirty_two_parallel_jobs_make_one_platform_call(platform):
    add_platform(platform)
    platform[0].delay = 0.3  # a slow API: every job arrives while the first fetch is in flight
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(lambda _: get_process(), range(32)))
    assert all(r.code == 0 and json.loads(r.out)["Secret"] == "platform-pw" for r in results), results
    assert platform[0].count("/creds") == 1


def test_parallel_jobs_share_one_fetch_of_a_token_too_short_to_cache_fresh(platform):
    """A 6-second token is never fresh (less than --min-ttl left), yet callers that waited for the
    one fetch in flight take its answer rather than fetch again each."""
    add_platform(platform, "short-lived", "--timeout", "60")
    platform[0].delay = 20  # every caller starts while the one fetch is in flight, however busy the machine
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda _: get_process(), range(16)))
    assert all(r.code == 0 and json.loads(r.out)["Secret"] == "short-pw" for r in results), results
    assert platform[0].count("/creds") == 1


def test_platform_down_serves_the_still_valid_token_with_a_warning(platform):
    """In process, on a clock moved by hand (the pipeline a `get` runs, with `now` injected): no waiting."""
    add_platform(platform, "short-lived", "--timeout", "2")  # 6 s of life: refreshed after 3 s
    clock = Clock()
    assert get_at(clock, HOST, []) == "short-pw"
    clock.now += 3.2
    platform[0].fault = "503"
    warnings: list[str] = []
    assert get_at(clock, HOST, warnings) == "short-pw" and platform[0].count() >= 2
    assert "serving the cached token" in "".join(warnings)
