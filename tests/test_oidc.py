"""--type oidc: an identity token, obtained afresh for every fetch (GitHub Actions' token endpoint, a variable, a
file), exchanged for a registry token by each exchange's stand-in on 127.0.0.1, which verifies the token as the
service does (signature, issuer, audience, expiry). In process; nothing secret stored."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Iterator

import pytest

from docker_credential_idp.httpclient import send
from docker_credential_idp.model import Registration
from docker_credential_idp.providers.base import FetchContext
from docker_credential_idp.providers.oidc import PROVIDER

from .conftest import LEAKS, Clock, assert_one_line_error, call_helper, get_at
from .oidc import GITHUB_DEFAULT_AUDIENCE, Exchange, Issuer, github_env, github_token_endpoint
from .servers import fake_jwt
from .tls import make_tls

REQUEST_TOKEN = "gha-request-token-5e1c"
CONNECTION_ID = "0f5b7e0c-3d8a-4c61-9b7e-2a1d4c5e6f70"
ROBOT = "acme+ci"
CHAINGUARD_ID = "720909c9f5279097d847ad02a2f24ba8f59de36a/a033a6fabe0bfa0d"
# The audience each exchange verifies when --oidc-audience is not given (what the helper asks GitHub for).
DEFAULT_AUDIENCES = {"dockerhub": "https://identity.docker.com", "jfrog": GITHUB_DEFAULT_AUDIENCE,
                     "quay": GITHUB_DEFAULT_AUDIENCE, "chainguard": "cgr.dev", "none": "harbor.example.com"}
KINDS = tuple(DEFAULT_AUDIENCES)


class World:
    """An issuer, GitHub's token endpoint in the environment, and one exchange's stand-in over TLS."""

    def __init__(self, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **answer: Any) -> None:
        self.kind = kind
        self.issuer = Issuer()
        self.github = github_token_endpoint(self.issuer, REQUEST_TOKEN)
        for name, value in github_env(self.github, REQUEST_TOKEN).items():
            monkeypatch.setenv(name, value)
        self.ca, cert, key = make_tls(tmp_path / f"tls-{kind}")
        counter = iter(range(1, 1000))
        self.exchange = Exchange(kind, self.issuer, DEFAULT_AUDIENCES[kind],
                                 answer.pop("answer", lambda: f"{kind}-exchanged-token-{next(counter):04d}"),
                                 tls=(cert, key), connection_id=CONNECTION_ID, provider_name="github",
                                 robot=ROBOT, identity=CHAINGUARD_ID, **answer)
        self.host = self.exchange.server.address  # the registry: quay's exchange and none's /v2/ are on its host

    def argv(self, source: str = "github-actions", *extra: str) -> list[str]:
        url = self.exchange.url
        options = {
            "dockerhub": ["--connection-id", CONNECTION_ID, "--username", "acme", "--exchange-url", f"{url}/oauth/token"],
            "jfrog": ["--url", "https://acme.jfrog.io", "--provider-name", "github", "--exchange-url",
                      f"{url}/access/api/v1/oidc/token", "--username", "ci-user"],
            "quay": ["--robot", ROBOT],  # its exchange is on the registry's own host
            "chainguard": ["--identity", CHAINGUARD_ID, "--exchange-url", f"{url}/sts/exchange"],
            "none": ["--username", "robot$ci", "--oidc-audience", "harbor.example.com"],
        }[self.kind]
        return ["--type", "oidc", "--exchange", self.kind, "--oidc-token", source, *options, "--ca-file", str(self.ca),
                *extra]

    def register(self, registration_id: str = "it", source: str = "github-actions", *extra: str) -> None:
        result = call_helper("registry", "add", registration_id, "--prefix", self.host, *self.argv(source, *extra))
        assert result.code == 0, result

    def stop(self) -> None:
        self.github.stop()
        self.exchange.stop()


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    built = World(request.param, tmp_path, monkeypatch)
    yield built
    built.stop()


def expected_user(kind: str) -> str:
    return {"dockerhub": "acme", "jfrog": "ci-user", "quay": ROBOT, "chainguard": "user", "none": "robot$ci"}[kind]


# -- every exchange, end to end in process ------------------------------------------------------------------------


@pytest.mark.parametrize("world", KINDS, indirect=True)
def test_each_exchange_trades_a_fresh_identity_token_for_the_registry_token(world: World) -> None:
    world.register("it", "github-actions", "--min-ttl", "1m")  # chainguard's 10 min, none's 5: cached all the same
    clock = Clock()
    warnings: list[str] = []
    first = get_at(clock, world.host, warnings)
    assert get_at(clock, world.host, warnings) == first  # a cache hit: nothing minted, nothing exchanged
    assert world.github.count("/_apis/token") == 1
    assert len(world.exchange.verified) == (0 if world.kind == "none" else 1)
    clock.now += 3 * 3600  # past any answer's life: the next get fetches, with a new identity token
    second = get_at(clock, world.host, warnings)
    assert world.github.count("/_apis/token") == 2, "a new identity token per fetch"
    if world.kind == "none":
        assert [first, second] == world.issuer.minted
        assert world.issuer.verify(second, "harbor.example.com")
    else:
        assert len(world.exchange.verified) == 2 and [first, second] == world.exchange.issued
    assert world.exchange.refused == []
    assert all(claims["iss"] == world.issuer.iss for claims in world.exchange.verified)
    answer = json.loads(call_helper("get", stdin=world.host).out)
    assert answer["Username"] == expected_user(world.kind)
    assert warnings == []


@pytest.mark.parametrize("world", ["none"], indirect=True)
def test_none_the_identity_token_is_the_password_the_registry_verifies(world: World) -> None:
    world.register()
    tested = call_helper("registry", "test", "it")
    assert tested.code == 0, tested
    assert "accepts the credential (Basic auth)" in tested.out
    assert world.exchange.verified and world.exchange.verified[-1]["aud"] == "harbor.example.com"


@pytest.mark.parametrize("world", ["none"], indirect=True)
def test_none_a_token_for_another_audience_is_refused_by_the_registry(world: World) -> None:
    world.register("it", "github-actions", "--oidc-audience", "wrong")
    tested = call_helper("registry", "test", "it")
    assert tested.code == 1 and "HTTP 401" in tested.err, tested
    assert world.exchange.refused == ["wrong audience 'wrong', expected 'harbor.example.com'"]


@pytest.mark.parametrize("world", ["dockerhub", "jfrog", "quay", "chainguard"], indirect=True)
def test_a_token_for_the_wrong_audience_is_refused_in_one_line_and_not_held_back(world: World) -> None:
    world.register("it", "github-actions", "--oidc-audience", "wrong")
    result = call_helper("get", stdin=world.host)
    line = assert_one_line_error(result, f"the {world.kind} exchange at https://{world.host}",
                                 "refused the identity token (HTTP 40", "--oidc-audience", stream="out")
    assert "registration 'it'" in line
    assert world.exchange.refused and "wrong audience" in world.exchange.refused[0]
    again = call_helper("get", stdin=world.host)  # a refusal is not transient: asked again at once
    assert again.code == 1 and "repeated" not in again.out
    assert world.github.count("/_apis/token") == 2 and len(world.exchange.refused) == 2
    for token in world.issuer.minted:
        assert token not in result.out + result.err + again.out + again.err


# -- the sources: a variable, a file, each read on every fetch ----------------------------------------------------


@pytest.mark.parametrize("world", ["dockerhub"], indirect=True)
def test_env_source_is_read_on_every_fetch(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_JOB_JWT", world.issuer.mint("https://identity.docker.com", subject="project_path:a:ref:1"))
    world.register("it", "env:CI_JOB_JWT")
    clock = Clock()
    get_at(clock, world.host, [])
    monkeypatch.setenv("CI_JOB_JWT", world.issuer.mint("https://identity.docker.com", subject="project_path:a:ref:2"))
    clock.now += 3 * 3600
    get_at(clock, world.host, [])
    assert [c["sub"] for c in world.exchange.verified] == ["project_path:a:ref:1", "project_path:a:ref:2"]
    assert world.github.count() == 0  # the variable's token, not GitHub's


@pytest.mark.parametrize("world", ["dockerhub", "chainguard"], indirect=True)
def test_env_source_minted_for_another_audience_than_the_exchanges_own_is_sent_nowhere(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --oidc-audience, a token minted beforehand must carry the exchange's own audience: one minted for
    another party (here GitLab's, or AWS STS's on a runner that has both) is not handed to an exchange that could
    replay it there."""
    monkeypatch.setenv("CI_JOB_JWT", world.issuer.mint("https://gitlab.example.com"))
    world.register("it", "env:CI_JOB_JWT")
    result = call_helper("get", stdin=world.host)
    assert_one_line_error(result, "the identity token from variable CI_JOB_JWT was not minted for the audience the "
                          f"{world.kind} exchange expects ({DEFAULT_AUDIENCES[world.kind]})",
                          "give the one it carries with --oidc-audience", stream="out")
    assert world.exchange.count() == 0 and world.exchange.refused == []
    monkeypatch.setenv("CI_JOB_JWT", world.issuer.mint(DEFAULT_AUDIENCES[world.kind]))
    assert call_helper("get", stdin=world.host).code == 0


@pytest.mark.parametrize("world", ["dockerhub", "none"], indirect=True)
def test_a_token_minted_beforehand_for_another_audience_than_oidc_audience_is_sent_nowhere(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    audience = DEFAULT_AUDIENCES[world.kind]
    monkeypatch.setenv("CI_JOB_JWT", world.issuer.mint("https://gitlab.example.com"))
    argv = [a for a in world.argv("env:CI_JOB_JWT") if a not in ("--oidc-audience", "harbor.example.com")]
    result = call_helper("registry", "add", "it", "--prefix", world.host, *argv, "--oidc-audience", audience)
    assert result.code == 0, result
    failed = call_helper("get", stdin=world.host)
    assert_one_line_error(failed, "the identity token from variable CI_JOB_JWT was not minted for the audience "
                          "--oidc-audience names", stream="out")
    assert world.exchange.count() == 0 and world.github.count() == 0
    monkeypatch.setenv("CI_JOB_JWT", world.issuer.mint(audience))
    assert call_helper("get", stdin=world.host).code == 0


@pytest.mark.parametrize("world", ["none", "quay"], indirect=True)
def test_file_source_is_reread_on_every_fetch(world: World, tmp_path: Path) -> None:
    tokens = tmp_path / "projected"  # as the kubelet projects it: a directory of ours, no one else may write
    tokens.mkdir(mode=0o700)
    token_file = tokens / "token"
    audience = DEFAULT_AUDIENCES[world.kind]
    token_file.write_text(world.issuer.mint(audience, subject="system:serviceaccount:ci:builder"))
    token_file.chmod(stat.S_IRUSR | stat.S_IWUSR)
    world.register("it", f"file:{token_file}")
    clock = Clock()
    first = get_at(clock, world.host, [])
    token_file.write_text(world.issuer.mint(audience, subject="system:serviceaccount:ci:rotated"))
    clock.now += 3 * 3600
    second = get_at(clock, world.host, [])
    if world.kind == "none":  # the token is the password: what the registry (the stand-in) verifies
        verified = [world.issuer.verify(token, audience) for token in (first, second)]
        assert [first, second] == world.issuer.minted
    else:
        verified = world.exchange.verified
    assert [c["sub"] for c in verified] == ["system:serviceaccount:ci:builder", "system:serviceaccount:ci:rotated"]


# -- failures: one line naming the exchange and the status, transient or not --------------------------------------


@pytest.mark.parametrize("world", ["dockerhub"], indirect=True)
@pytest.mark.parametrize("fault, transient", [("500", True), ("503", True), ("429", True), ("400", False)])
def test_exchange_failures_name_the_exchange_and_status(world: World, fault: str, transient: bool) -> None:
    world.register()
    world.exchange.server.fault = fault
    result = call_helper("get", stdin=world.host)
    assert_one_line_error(result, "registration 'it' (oidc)", f"the dockerhub exchange at https://{world.host} "
                          f"answered HTTP {fault}", stream="out")
    again = call_helper("get", stdin=world.host)
    assert ("repeated from" in again.out) is transient, again
    assert world.exchange.count() == (1 if transient else 2)


@pytest.mark.parametrize("world", ["chainguard"], indirect=True)
def test_an_unreachable_exchange_is_transient(world: World) -> None:
    result = call_helper("registry", "add", "it", "--prefix", "cgr.dev/acme", "--type", "oidc", "--exchange",
                         "chainguard", "--identity", CHAINGUARD_ID, "--oidc-token", "github-actions",
                         "--exchange-url", "https://127.0.0.1:9/sts/exchange", "--timeout", "2")
    assert result.code == 0, result
    failed = call_helper("get", stdin="cgr.dev")
    assert_one_line_error(failed, "the chainguard exchange at https://127.0.0.1:9 did not answer", stream="out")
    assert "repeated from" in call_helper("get", stdin="cgr.dev").out
    assert world.github.count() == 1


@pytest.mark.parametrize("world", ["jfrog"], indirect=True)
def test_an_answer_without_a_token_is_one_line(world: World) -> None:
    world.register()
    world.exchange.server.fault = "garbage"
    assert_one_line_error(call_helper("get", stdin=world.host), "the jfrog exchange", "not JSON", stream="out")


def test_github_endpoint_refusing_the_request_token_names_the_permission(tmp_path, monkeypatch) -> None:
    world = World("dockerhub", tmp_path, monkeypatch)
    try:
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "not-the-request-token")
        world.register()
        result = call_helper("get", stdin=world.host)
        assert_one_line_error(result, "GitHub Actions' OIDC token endpoint answered HTTP 401", "id-token: write",
                              stream="out")
        assert world.exchange.count() == 0
    finally:
        world.stop()


# -- lifetimes: as each service documents them ---------------------------------------------------------------------


def fetch(world: World, *extra: str, now: float) -> Any:
    """The provider's answer for a registration `registry add` made, at `now`."""
    world.register("it", "github-actions", *extra)
    settings = json.loads(call_helper("registry", "show", "it", "--json").out)["settings"]
    registration = Registration("it", world.host, "oidc", settings)
    context = FetchContext(host=world.host, env=dict(os.environ), timeout=5, now=lambda: now, transport=send)
    return PROVIDER.fetch(registration, context)


NOW = 1_900_000_000.0


@pytest.mark.parametrize("world, extra, lifetime", [
    ("dockerhub", (), 3600),                        # asked for --expire's default, 1 h: identity.docker.com's most
    ("dockerhub", ("--expire", "20m"), 1200),       # asked for 1200 s, and expires_in says so
], indirect=["world"])
def test_dockerhub_asks_for_the_lifetime_and_keeps_expires_in(world: World, extra: tuple[str, ...], lifetime: int) -> None:
    credential = fetch(world, *extra, now=NOW)
    assert credential.expires_at == NOW + lifetime


def test_jfrog_expires_in_then_the_username_it_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = World("jfrog", tmp_path / "w", monkeypatch, username="jfrog-mapped-user", expires_in=1800)
    try:
        credential = fetch(world, now=NOW)
    finally:
        world.stop()
    assert (credential.username, credential.expires_at) == ("jfrog-mapped-user", NOW + 1800)


@pytest.mark.parametrize("kind, lifetime", [("quay", 3600), ("chainguard", 600), ("jfrog", 3600)])
def test_an_answer_without_expires_in_lives_as_its_jwt_says_else_the_documented_default(
        kind: str, lifetime: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exp = int(NOW) + 1234
    for name, answer, expected in (("jwt", lambda: fake_jwt({"exp": exp, "sub": "robot"}), exp),
                                   ("opaque", lambda: f"{kind}-opaque-token-0001", NOW + lifetime)):
        world = World(kind, tmp_path / name, monkeypatch, answer=answer)
        try:
            assert fetch(world, "--replace", now=NOW).expires_at == expected, name
        finally:
            world.stop()


@pytest.mark.parametrize("world", ["none"], indirect=True)
def test_none_lives_as_long_as_the_identity_token(world: World) -> None:
    credential = fetch(world, now=NOW)
    assert credential.expires_at == world.issuer.verify(credential.secret, "harbor.example.com")["exp"]


def test_kubelet_source_takes_the_pods_token_from_the_request() -> None:
    issuer = Issuer()
    pod_token = issuer.mint("harbor.example.com", subject="system:serviceaccount:apps:web")
    registration = Registration("k", "harbor.example.com", "oidc", {"exchange": "none", "oidc_token": "kubelet"})
    credential = PROVIDER.fetch(registration, FetchContext(identity_token=pod_token))
    assert (credential.username, credential.secret) == ("jwt", pod_token)
    with pytest.raises(Exception, match="kubelet"):
        PROVIDER.fetch(registration, FetchContext())


# -- registry add: each exchange's options, and nothing of another's -------------------------------------------------

BASE = ("registry", "add", "r", "--prefix", "registry.example.com", "--type", "oidc", "--oidc-token", "github-actions")


@pytest.mark.parametrize("args, fragments", [
    ((), ["--type oidc needs --exchange"]),
    (("--exchange", "gitlab"), ["--exchange takes one of: dockerhub, jfrog, quay, chainguard, none"]),
    (("--exchange", "dockerhub", "--username", "acme"), ["--exchange dockerhub needs --connection-id"]),
    (("--exchange", "dockerhub", "--connection-id", CONNECTION_ID), ["--exchange dockerhub needs --username"]),
    (("--exchange", "dockerhub", "--connection-id", "not-a-uuid", "--username", "a"), ["--connection-id is the"]),
    (("--exchange", "dockerhub", "--connection-id", CONNECTION_ID, "--username", "a", "--robot", ROBOT),
     ["--robot does not apply to --exchange dockerhub"]),
    (("--exchange", "dockerhub", "--connection-id", CONNECTION_ID, "--username", "a", "--expire", "2h"),
     ["5 to 60 minutes"]),
    (("--exchange", "jfrog", "--url", "https://acme.jfrog.io"), ["--exchange jfrog needs --provider-name"]),
    (("--exchange", "jfrog", "--url", "http://acme.jfrog.io", "--provider-name", "gh"), ["--url must be https"]),
    (("--exchange", "jfrog", "--url", "https://a.jfrog.io", "--provider-name", "gh", "--identity", "x"),
     ["--identity does not apply to --exchange jfrog"]),
    (("--exchange", "quay"), ["--exchange quay needs --robot"]),
    (("--exchange", "quay", "--robot", "acme"), ["--robot is a Quay robot account, ORGANISATION+NAME"]),
    (("--exchange", "quay", "--robot", ROBOT, "--connection-id", CONNECTION_ID),
     ["--connection-id does not apply to --exchange quay"]),
    (("--exchange", "quay", "--robot", ROBOT, "--exchange-url", "http://quay.example.com/x"),
     ["--exchange-url must be https"]),
    (("--exchange", "chainguard"), ["--exchange chainguard needs --identity"]),
    (("--exchange", "none"), ["--exchange none with --oidc-token github-actions needs --oidc-audience"]),
    (("--exchange", "none", "--oidc-audience", "a", "--exchange-url", "https://x.example.com"),
     ["--exchange-url does not apply to --exchange none"]),
    (("--exchange", "none", "--oidc-audience", "a", "--username", "a:b"), ["--username cannot"]),
])
def test_registry_add_refuses_what_an_exchange_cannot_use(args: tuple[str, ...], fragments: list[str]) -> None:
    result = call_helper(*BASE, *args)
    assert_one_line_error(result, *fragments)
    assert call_helper("registry", "list", "--json").out.strip() in ("[]", "{}")


def test_registry_add_needs_an_identity_token_source_and_never_quotes_a_token_given_there() -> None:
    assert_one_line_error(call_helper("registry", "add", "r", "--prefix", "cgr.dev", "--type", "oidc", "--exchange",
                                      "chainguard", "--identity", "abc"), "--type oidc needs --oidc-token")
    jwt = Issuer().mint("cgr.dev")
    result = call_helper("registry", "add", "r", "--prefix", "cgr.dev", "--type", "oidc", "--exchange", "chainguard",
                         "--identity", "abc", "--oidc-token", jwt)
    assert_one_line_error(result, "--oidc-token takes github-actions, env:VAR")
    assert jwt not in result.err and jwt[:20] not in result.err


def test_oidc_options_do_not_apply_to_other_types() -> None:
    result = call_helper("registry", "add", "r", "--prefix", "registry.example.com", "--type", "basic", "--username",
                         "u", "--password-stdin", "--robot", ROBOT, stdin="basic-password-1")
    assert_one_line_error(result, "--robot does not apply to --type basic")


@pytest.mark.parametrize("world", ["quay"], indirect=True)
def test_show_and_list_name_the_source_and_endpoint_never_a_token(world: World) -> None:
    world.register()
    assert call_helper("get", stdin=world.host).code == 0
    shown = json.loads(call_helper("registry", "show", "it", "--json").out)
    text = json.dumps(shown)
    assert "GitHub Actions' OIDC token endpoint" in text
    assert f"https://{world.host}/oauth2/federation/robot/token" in text
    assert shown.get("secrets", []) == []
    assert json.loads(call_helper("list").out) == {world.host: ROBOT}


# -- leaks: identity tokens and exchanged tokens appear in the answer only ------------------------------------------


@pytest.mark.parametrize("world", KINDS, indirect=True)
def test_tokens_appear_in_the_answer_only_even_with_debug_output(world: World, isolated_env: dict[str, str]) -> None:
    world.register()
    debug = {"DOCKER_CREDENTIAL_IDP_DEBUG": "1"}
    got = call_helper("get", stdin=world.host, env=debug)
    assert got.code == 0, got
    cached = call_helper("get", stdin=world.host, env=debug)
    outputs = [got.err, cached.err]
    for argv in (("registry", "show", "it", "--json"), ("registry", "list"), ("vault", "status"),
                 ("resolve", world.host), ("list",), ("doctor",)):
        result = call_helper(*argv, env=debug)
        outputs.append(result.out + result.err)
    secrets = [*world.issuer.minted, *world.exchange.issued, REQUEST_TOKEN]
    assert set(secrets) <= LEAKS.secrets  # the watch looks for every one of them after the test too
    for secret in secrets:
        assert not [text for text in outputs if secret in text]
    files = [p for d in ("DOCKER_CREDENTIAL_IDP_HOME", "HOME", "DOCKER_CONFIG")
             for p in Path(isolated_env[d]).rglob("*") if p.is_file()]
    assert files, "the vault and the token cache were written"
    for path in files:
        content = path.read_bytes()
        assert not [s for s in secrets if s.encode() in content], path


def test_doctor_names_a_missing_identity_token_source_without_calling_out() -> None:
    assert call_helper("registry", "add", "hb", "--prefix", "harbor.example.com", "--type", "oidc", "--exchange", "none",
                       "--oidc-token", "env:HARBOR_ID_TOKEN").code == 0
    assert call_helper("registry", "add", "q", "--prefix", "quay.io/acme", "--type", "oidc", "--exchange", "quay",
                       "--robot", ROBOT, "--oidc-token", "github-actions").code == 0
    report = call_helper("doctor")
    assert "registration hb (oidc): variable HARBOR_ID_TOKEN holds no identity token here" in report.out + report.err
    assert "registration q (oidc): no GitHub Actions identity token here" in report.out + report.err
    present = call_helper("doctor", env={"HARBOR_ID_TOKEN": Issuer().mint("harbor.example.com")})
    assert "HARBOR_ID_TOKEN" not in present.out + present.err
