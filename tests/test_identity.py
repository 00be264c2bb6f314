"""identity.py: where identity tokens come from, read afresh each time, and never shown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from docker_credential_idp import identity
from docker_credential_idp.errors import InvalidInput, ProviderError
from docker_credential_idp.httpclient import send
from docker_credential_idp.providers.base import FetchContext
from tests.oidc import Issuer, github_env, github_token_endpoint

AUDIENCE = "sts.amazonaws.com"


@pytest.mark.parametrize("text", ["github-actions", "kubelet", "env:CI_JOB_JWT_V2", "file:/var/run/secrets/token"])
def test_parse_source_accepts_each_form(text: str) -> None:
    assert identity.parse_source(f" {text} ") == text


@pytest.mark.parametrize("text", ["", "github", "env:", "env:1BAD", "file:relative/token", "eyJhbGciOi.eyJzdWIi.c2ln"])
def test_parse_source_refuses_without_quoting_the_value(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        identity.parse_source(text)
    assert "--oidc-token" in refused.value.message
    if text not in identity.SOURCE_FORMS:  # what the message lists anyway
        assert text not in refused.value.message


def test_github_actions_mints_for_the_audience_on_every_call() -> None:
    issuer = Issuer()
    endpoint = github_token_endpoint(issuer, "request-secret")
    try:
        context = FetchContext(env=github_env(endpoint, "request-secret"), transport=send, timeout=5)
        first = identity.obtain(identity.GITHUB_ACTIONS, AUDIENCE, context)
        second = identity.obtain(identity.GITHUB_ACTIONS, AUDIENCE, context)
    finally:
        endpoint.stop()
    assert endpoint.count("/_apis/token") == 2
    assert issuer.verify(first, AUDIENCE)["iss"] == issuer.iss
    assert issuer.verify(second, AUDIENCE)


def test_github_actions_refused_request_token_is_one_line_without_it() -> None:
    issuer = Issuer()
    endpoint = github_token_endpoint(issuer, "request-secret")
    try:
        context = FetchContext(env=github_env(endpoint, "wrong-request-secret"), transport=send, timeout=5)
        with pytest.raises(ProviderError) as failed:
            identity.obtain(identity.GITHUB_ACTIONS, AUDIENCE, context)
    finally:
        endpoint.stop()
    assert "HTTP 401" in failed.value.message and "id-token: write" in failed.value.message
    assert "wrong-request-secret" not in failed.value.message
    assert not failed.value.transient


def test_github_actions_without_its_variables_names_the_permission() -> None:
    with pytest.raises(ProviderError, match="id-token: write"):
        identity.obtain(identity.GITHUB_ACTIONS, AUDIENCE, FetchContext(env={}))


def test_github_actions_endpoint_over_plain_http_elsewhere_than_loopback_is_refused() -> None:
    env = {"ACTIONS_ID_TOKEN_REQUEST_URL": "http://runner.example/_apis/token?x=1",
           "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-secret"}
    with pytest.raises(ProviderError, match="https"):
        identity.obtain(identity.GITHUB_ACTIONS, AUDIENCE, FetchContext(env=env))


def test_a_variable_is_read_on_each_call() -> None:
    issuer = Issuer()
    env = {"CI_JOB_JWT": issuer.mint(AUDIENCE)}
    assert identity.obtain("env:CI_JOB_JWT", AUDIENCE, FetchContext(env=env)) == env["CI_JOB_JWT"]
    env["CI_JOB_JWT"] = issuer.mint(AUDIENCE, subject="other")
    assert identity.claims(identity.obtain("env:CI_JOB_JWT", AUDIENCE, FetchContext(env=env)))["sub"] == "other"


def test_a_missing_variable_names_it() -> None:
    with pytest.raises(ProviderError, match="variable CIRCLE_OIDC_TOKEN_V2 holds no identity token"):
        identity.obtain("env:CIRCLE_OIDC_TOKEN_V2", AUDIENCE, FetchContext(env={}))


def test_something_that_is_not_a_jwt_is_refused_without_being_shown() -> None:
    with pytest.raises(ProviderError) as failed:
        identity.obtain("env:TOKEN", AUDIENCE, FetchContext(env={"TOKEN": "hunter2 not a token"}))
    assert "does not hold a JWT" in failed.value.message and "hunter2" not in failed.value.message


def test_a_projected_token_is_read_through_its_links(tmp_path: Path) -> None:
    issuer = Issuer()
    data = tmp_path / "..2026_12_08" / "token"
    data.parent.mkdir(mode=0o755)
    data.write_text(issuer.mint(AUDIENCE))
    (tmp_path / "..data").symlink_to(data.parent.name)
    (tmp_path / "token").symlink_to("..data/token")
    token = identity.obtain(f"file:{tmp_path / 'token'}", AUDIENCE, FetchContext())
    assert issuer.verify(token, AUDIENCE)
    data.write_text(issuer.mint(AUDIENCE, subject="rotated"))
    assert identity.claims(identity.obtain(f"file:{tmp_path / 'token'}", AUDIENCE, FetchContext()))["sub"] == "rotated"


def test_a_token_file_others_can_write_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(Issuer().mint(AUDIENCE))
    os.chmod(path, 0o666)
    with pytest.raises(ProviderError, match="writable by group or others; fix: chmod go-w"):
        identity.obtain(f"file:{path}", AUDIENCE, FetchContext())


def test_a_token_file_in_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    (shared / "token").write_text(Issuer().mint(AUDIENCE))
    with pytest.raises(ProviderError, match=f"directory {shared} is writable"):
        identity.obtain(f"file:{shared / 'token'}", AUDIENCE, FetchContext())


def good_token_file(tmp_path: Path) -> Path:
    """A token file of ours in a directory of ours: what another user would like us to read in place of theirs."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    path = private / "token"
    path.write_text(Issuer().mint("sts.amazonaws.com"))
    return path


def test_a_link_in_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    """The path given is checked, not only the file it ends at: whoever can write the directory a link sits in (or any
    above it) chooses which of our files is read as our identity, and sent where the token goes."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    (shared / "token").symlink_to(good_token_file(tmp_path))
    with pytest.raises(ProviderError, match=f"directory {shared} is writable by group or others"):
        identity.obtain(f"file:{shared / 'token'}", AUDIENCE, FetchContext())
    hop = tmp_path / "hop"  # a link to that link is refused alike
    hop.symlink_to(shared / "token")
    with pytest.raises(ProviderError, match=f"directory {shared} is writable by group or others"):
        identity.obtain(f"file:{hop}", AUDIENCE, FetchContext())


@pytest.mark.skipif(os.geteuid() != 0, reason="planting another uid's link takes root")
def test_a_link_another_user_planted_in_a_sticky_directory_is_refused(tmp_path: Path) -> None:
    """As the kernel's fs.protected_symlinks would (the helper resolves links itself, which that setting does not
    cover): in /tmp-like directories, a link is followed only if it is ours or root's."""
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    link = sticky / "ci-token"
    link.symlink_to(good_token_file(tmp_path))
    os.lchown(link, 65534, 65534)
    with pytest.raises(ProviderError, match=f"link {link} is owned by uid 65534"):
        identity.obtain(f"file:{link}", AUDIENCE, FetchContext())
    os.lchown(link, 0, 0)
    assert identity.obtain(f"file:{link}", AUDIENCE, FetchContext())


def test_links_to_themselves_are_one_line(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(ProviderError, match=f"cannot read identity token file {loop}: too many levels of links"):
        identity.obtain(f"file:{loop}", AUDIENCE, FetchContext())


def test_a_missing_or_huge_token_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="does not exist"):
        identity.obtain(f"file:{tmp_path / 'absent'}", AUDIENCE, FetchContext())
    (tmp_path / "huge").write_bytes(b"a" * (identity.MAX_TOKEN_BYTES + 1))
    with pytest.raises(ProviderError, match="larger than"):
        identity.obtain(f"file:{tmp_path / 'huge'}", AUDIENCE, FetchContext())
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ProviderError, match="not a regular file"):
        identity.obtain(f"file:{tmp_path / 'fifo'}", AUDIENCE, FetchContext())


def test_kubelet_source_needs_the_requests_token() -> None:
    with pytest.raises(ProviderError, match="kubelet-config"):
        identity.obtain(identity.KUBELET, AUDIENCE, FetchContext())
    token = Issuer(iss="https://kubernetes.default.svc").mint(AUDIENCE, subject="system:serviceaccount:ci:builder")
    assert identity.obtain(identity.KUBELET, AUDIENCE, FetchContext(identity_token=token)) == token


def test_expiry_reads_exp_and_ignores_what_is_not_a_time() -> None:
    issuer = Issuer(now=lambda: 1_000_000.0)
    assert identity.expiry(issuer.mint(AUDIENCE, lifetime=300)) == 1_000_300.0
    assert identity.expiry("a.b.c") is None
    assert identity.expiry(issuer.mint(AUDIENCE, exp=True)) is None


def test_job_name_points_back_to_the_ci_job() -> None:
    github = {"GITHUB_RUN_ID": "4242", "GITHUB_RUN_ATTEMPT": "2", "GITHUB_REPOSITORY": "example/app"}
    assert identity.job_name(github, {}) == "gha-4242-2-example-app"
    gitlab = {"CI_PIPELINE_ID": "77", "CI_JOB_ID": "901", "CI_PROJECT_PATH": "group/sub/project"}
    assert identity.job_name(gitlab, {}) == "gitlab-77-901-group-sub-project"
    assert identity.job_name({}, {"sub": "system:serviceaccount:ci:builder"}) == "k8s-ci-builder"
    long = identity.job_name({"GITHUB_RUN_ID": "1" * 20, "GITHUB_REPOSITORY": "o/" + "r" * 100}, {})
    assert len(long) == 64 and long.startswith("gha-" + "1" * 20)
    assert identity.job_name({}, {}) == "docker-credential-idp"
