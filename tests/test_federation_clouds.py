"""Workload identity federation for GCR/Artifact Registry and ACR (issue 21): an identity token from each source
(GitHub Actions' endpoint, a variable, a file, the kubelet's) is obtained afresh on every fetch and exchanged — at a
Google STS and IAM Credentials stand-in, at an Entra ID stand-in — that verifies it as the clouds do (signature,
audience, expiry: tests/oidc.Issuer). Nothing is stored: no identity token or exchanged token in the home in clear,
nor in any output but the answer. In process (call_helper) against stand-ins on 127.0.0.1."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from docker_credential_idp import fetching
from docker_credential_idp.errors import InvalidInput, ProviderError
from docker_credential_idp.model import Registration
from docker_credential_idp.providers import get_provider
from docker_credential_idp.providers.base import FetchContext

from .conftest import LEAKS, assert_one_line_error, call_helper, run_helper
from .oidc import Issuer, github_env, github_token_endpoint
from .servers import ENTRA_FEDERATION_AUDIENCE, entra_and_acr_exchange, fake_jwt, google_sts_and_iam

GAR = "europe-docker.pkg.dev"
PROVIDER = "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/ci-pool/providers/github"
GOOGLE_AUDIENCE = "https://iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/ci-pool/providers/github"
BUILDER = "builder@my-project.iam.gserviceaccount.com"
POD_ACCOUNT = "pod-builder@my-project.iam.gserviceaccount.com"
ACR = "myregistry.azurecr.io"
ACR_USERNAME = "00000000-0000-0000-0000-000000000000"
REQUEST_TOKEN = "gha-request-token-4e1d"


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
def github(issuer):
    server = github_token_endpoint(issuer, REQUEST_TOKEN)
    yield server
    server.stop()


@pytest.fixture
def google(issuer):
    server = google_sts_and_iam(issuer, provider=PROVIDER, audience=GOOGLE_AUDIENCE,
                                service_accounts=(BUILDER, POD_ACCOUNT))
    yield server
    server.stop()


@pytest.fixture
def entra(issuer):
    refresh = iter(range(1, 1000))
    server = entra_and_acr_exchange(tenant="t1", client_secret="unused-secret-1", registry_host=ACR, issuer=issuer,
                                    client_ids=("app-1", "app-pod"),
                                    refresh_token=lambda: fake_jwt({"exp": 4102444800, "n": next(refresh)}))
    yield server
    server.stop()


def watch_tokens(issuer: Issuer, *servers: Any) -> None:
    """Every identity token minted and every token the exchanges issued: the leak watch (conftest) then looks for
    them in the home, docker's config and every output but the answer when the test ends."""
    for token in issuer.minted:
        LEAKS.watch(token)
    for server in servers:
        for token in getattr(server, "issued", []):
            LEAKS.watch(token)


def add(*argv: str, env: dict[str, str] | None = None) -> None:
    result = call_helper("registry", "add", *argv, env=env)
    assert result.code == 0, result


def get(host: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = call_helper("get", stdin=host, env=env)
    assert result.code == 0, result
    return json.loads(result.out)


def token_file(tmp_path: Path, token: str) -> Path:
    path = tmp_path / "tokens" / "token"
    path.parent.mkdir(exist_ok=True, mode=0o700)
    path.write_text(token)
    path.chmod(0o600)
    return path


# -- Google: STS, then IAM Credentials with a service account --------------------------------------------------------


def add_gar(google, *extra: str, env: dict[str, str] | None = None) -> None:
    add("gar", "--prefix", f"{GAR}/my-project", "--type", "gar", "--workload-identity-provider", PROVIDER,
        "--sts-url", f"{google.url}/v1/token", *extra, env=env)


def test_gar_github_actions_mints_a_new_identity_token_for_every_fetch(issuer, github, google):
    env = github_env(github, REQUEST_TOKEN)
    add_gar(google, "--oidc-token", "github-actions")
    first = get(GAR, env)
    assert first["Username"] == "oauth2accesstoken" and first["Secret"] == google.issued[0]
    assert get(GAR, env) == first  # a cache hit: no mint, no exchange
    assert (github.count("/_apis/token"), google.count("/v1/token")) == (1, 1)
    call_helper("cache", "clear")
    second = get(GAR, env)
    assert (github.count("/_apis/token"), google.count("/v1/token")) == (2, 2)
    assert second["Secret"] == google.issued[1] != first["Secret"]
    assert google.subjects == ["repo:example/app:ref:refs/heads/main"] * 2
    assert len(issuer.minted) == 2  # each exchange had a token minted for it, for the provider's default audience
    assert all(issuer.verify(token, GOOGLE_AUDIENCE) for token in issuer.minted)
    watch_tokens(issuer, google)


def test_a_federated_cache_hit_imports_no_sdk_and_obtains_no_token(issuer, github, google):
    from .test_token_cache import imports_of_get

    add_gar(google, "--oidc-token", "env:GCP_ID_TOKEN")
    env = {"GCP_ID_TOKEN": issuer.mint(GOOGLE_AUDIENCE)}
    get(GAR, env)
    imported = imports_of_get(GAR)  # a new process, without the variable: the cached answer is all it needs
    assert "docker_credential_idp.pipeline" in imported
    assert not {m for m in imported if m.startswith(("google", "azure", "requests", "docker_credential_idp.identity"))}
    assert google.count("/v1/token") == 1
    watch_tokens(issuer, google)


def test_gar_impersonates_the_service_account(issuer, github, google):
    add_gar(google, "--oidc-token", "github-actions", "--service-account", BUILDER, "--impersonation-url", google.url)
    answer = get(GAR, github_env(github, REQUEST_TOKEN))
    assert answer["Secret"] == google.issued[1] and answer["Secret"].startswith("ya29.impersonated-")
    assert google.impersonated == [BUILDER] and google.count(":generateAccessToken") == 1
    show = json.loads(call_helper("registry", "show", "gar", "--json").out)
    assert show["identity"] == (f"workload identity federation through {PROVIDER} with GitHub Actions' OIDC token "
                                f"endpoint, as {BUILDER}")
    watch_tokens(issuer, google)


def test_gar_refused_impersonation_names_the_account_and_both_exchanges(issuer, github, google):
    stranger = "stranger@my-project.iam.gserviceaccount.com"
    add_gar(google, "--oidc-token", "github-actions", "--service-account", stranger, "--impersonation-url", google.url)
    line = assert_one_line_error(call_helper("get", stdin=GAR, env=github_env(github, REQUEST_TOKEN)),
                                 "registration 'gar' (gcr)", f"IAM Credentials (http://127.0.0.1:{google.address.split(':')[1]})",
                                 f"refused to impersonate {stranger}", "Google STS", "HTTP 403", "PERMISSION_DENIED",
                                 stream="out")
    assert google.subjects and not google.impersonated
    assert not any(token in line for token in issuer.minted + google.issued)
    watch_tokens(issuer, google)


def test_gar_from_a_variable(issuer, google):
    add_gar(google, "--oidc-token", "env:GITLAB_ID_TOKEN")
    env = {"GITLAB_ID_TOKEN": issuer.mint(GOOGLE_AUDIENCE, subject="project_path:group/app:ref_type:branch:ref:main")}
    assert get(GAR, env)["Secret"] == google.issued[0]
    assert google.subjects == ["project_path:group/app:ref_type:branch:ref:main"]
    watch_tokens(issuer, google)


def test_gar_from_a_file_read_again_for_each_fetch(issuer, google, tmp_path):
    path = token_file(tmp_path, issuer.mint(GOOGLE_AUDIENCE, subject="first"))
    add_gar(google, "--oidc-token", f"file:{path}")
    get(GAR)
    path.write_text(issuer.mint(GOOGLE_AUDIENCE, subject="rotated"))
    call_helper("cache", "clear")
    get(GAR)
    assert google.subjects == ["first", "rotated"]
    watch_tokens(issuer, google)


def test_gar_wrong_audience_is_one_line_naming_the_source_and_the_exchange_never_the_token(issuer, github, google):
    add_gar(google, "--oidc-token", "github-actions", "--oidc-audience", "https://wrong.example.com")
    result = call_helper("get", stdin=GAR, env=github_env(github, REQUEST_TOKEN))
    line = assert_one_line_error(result, "registration 'gar' (gcr)", "Google STS (http://127.0.0.1:",
                                 "refused the identity token from GitHub Actions' OIDC token endpoint", PROVIDER,
                                 "HTTP 400", "invalid_grant", stream="out")
    assert github.count("/_apis/token") == 1 and not google.subjects
    assert issuer.minted and not any(token in line for token in issuer.minted)
    watch_tokens(issuer, google)


def test_gar_expired_identity_token_is_refused_by_the_exchange(issuer, google, tmp_path):
    path = token_file(tmp_path, issuer.mint(GOOGLE_AUDIENCE, lifetime=-10))
    add_gar(google, "--oidc-token", f"file:{path}")
    assert_one_line_error(call_helper("get", stdin=GAR), f"refused the identity token from file {path}", "expired",
                          stream="out")
    watch_tokens(issuer, google)


def fetch_directly(type_name: str, values: dict[str, Any], host: str, context: FetchContext):
    """The pipeline's fetch step as the kubelet's request makes it (the pod's token and its service account's
    annotations), for a registration built as `registry add` builds it."""
    provider = get_provider(type_name)
    settings, secrets = provider.configure({k: v for k, v in values.items() if k != "ca_file"})
    settings.update({"ca_file": values["ca_file"]} if "ca_file" in values else {})  # a common option, not the type's
    return fetching.fetch(Registration("k", host, provider.type_name, settings), context.env, time.time, host,
                          identity_token=context.identity_token, annotations=context.annotations)


@pytest.mark.parametrize("annotations, expected", [
    ({"iam.gke.io/gcp-service-account": POD_ACCOUNT}, POD_ACCOUNT),
    ({}, BUILDER),  # no annotation: the registration's --service-account
])
def test_gar_kubelet_annotation_chooses_the_service_account(issuer, google, annotations, expected):
    pod_token = issuer.mint(GOOGLE_AUDIENCE, subject="system:serviceaccount:ci:builder")
    context = FetchContext(identity_token=pod_token, annotations=annotations, timeout=10)
    credential = fetch_directly("gar", {
        "workload_identity_provider": PROVIDER, "oidc_token": "kubelet", "service_account": BUILDER,
        "sts_url": f"{google.url}/v1/token", "impersonation_url": google.url}, GAR, context)
    assert google.impersonated == [expected] and credential.secret == google.issued[-1]
    assert google.subjects == ["system:serviceaccount:ci:builder"]
    assert get_provider("gcr").annotation_keys == {"service_account": "iam.gke.io/gcp-service-account"}


def test_gar_annotations_are_ignored_unless_the_token_is_the_pods(issuer, google):
    """A pod's annotation must not choose whom another identity (here the job's variable) impersonates."""
    context = FetchContext(env={"ID_TOKEN": issuer.mint(GOOGLE_AUDIENCE)}, timeout=10,
                           annotations={"iam.gke.io/gcp-service-account": POD_ACCOUNT})
    fetch_directly("gar", {"workload_identity_provider": PROVIDER, "oidc_token": "env:ID_TOKEN",
                           "service_account": BUILDER, "sts_url": f"{google.url}/v1/token",
                           "impersonation_url": google.url}, GAR, context)
    assert google.impersonated == [BUILDER]


def test_gar_a_malformed_annotation_is_one_line(issuer, google):
    context = FetchContext(identity_token=issuer.mint(GOOGLE_AUDIENCE), timeout=10,
                           annotations={"iam.gke.io/gcp-service-account": "not an email/../x"})
    with pytest.raises(ProviderError, match="service account annotation iam.gke.io/gcp-service-account: --service-account takes "
                                            "the service account's email"):
        fetch_directly("gar", {"workload_identity_provider": PROVIDER, "oidc_token": "kubelet",
                               "sts_url": f"{google.url}/v1/token"}, GAR, context)
    assert not google.calls


SECRET_LOOKING = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNlY3JldA"


@pytest.mark.parametrize("argv, fragment", [
    (("--workload-identity-provider", PROVIDER), "needs both --workload-identity-provider and --oidc-token"),
    (("--oidc-token", "github-actions"), "needs both --workload-identity-provider and --oidc-token"),
    (("--workload-identity-provider", SECRET_LOOKING, "--oidc-token", "github-actions"),
     "--workload-identity-provider takes //iam.googleapis.com/projects/NUMBER"),
    (("--workload-identity-provider", PROVIDER.replace("/global/", "/europe-west1/"), "--oidc-token", "github-actions"),
     "--workload-identity-provider takes"),
    (("--workload-identity-provider", PROVIDER, "--oidc-token", "github-actions", "--service-account", "builder"),
     "--service-account takes the service account's email"),
    (("--workload-identity-provider", PROVIDER, "--oidc-token", "github-actions", "--sts-url",
      "http://sts.example.com/v1/token"), "--sts-url must be https"),
    (("--workload-identity-provider", PROVIDER, "--oidc-token", "github-actions", "--impersonation-url",
      "https://iam.example.com"), "--impersonation-url goes with --service-account"),
    (("--service-account", BUILDER), "--service-account goes with --workload-identity-provider and --oidc-token"),
    (("--key-stdin", "--workload-identity-provider", PROVIDER, "--oidc-token", "github-actions"), "takes one identity"),
])
def test_gar_federation_options_are_checked_at_registry_add(argv, fragment):
    result = call_helper("registry", "add", "g", "--prefix", "gcr.io/p", "--type", "gar", *argv,
                         stdin='{"type": "service_account"}')
    line = assert_one_line_error(result, fragment)
    assert SECRET_LOOKING not in line


def test_gar_provider_name_without_the_iam_prefix_is_taken_as_google_github_actions_writes_it(google):
    add("g", "--prefix", "gcr.io/p", "--type", "gcr", "--workload-identity-provider", PROVIDER.removeprefix(
        "//iam.googleapis.com/"), "--oidc-token", "env:T")
    show = json.loads(call_helper("registry", "show", "g", "--json").out)
    assert show["settings"]["workload_identity_provider"] == PROVIDER


# -- Azure: Entra ID's client assertion, then ACR's exchange ---------------------------------------------------------


def add_acr(entra, *identity: str) -> None:
    add("acr", "--prefix", ACR, "--type", "acr", "--tenant", "t1", *identity, "--authority-host", entra.url,
        "--exchange-url", f"{entra.url}/oauth2/exchange", "--ca-file", str(entra.ca))


def test_acr_github_actions_mints_a_new_identity_token_for_every_fetch(issuer, github, entra):
    env = github_env(github, REQUEST_TOKEN)
    add_acr(entra, "--client-id", "app-1", "--oidc-token", "github-actions")
    first = get(ACR, env)
    assert first["Username"] == ACR_USERNAME
    call_helper("cache", "clear")
    second = get(ACR, env)
    assert second["Secret"] != first["Secret"]
    assert github.count("/_apis/token") == 2 and entra.count("/oauth2/exchange") == 2
    assert entra.assertions == [("app-1", "repo:example/app:ref:refs/heads/main")] * 2
    assert len(issuer.minted) == 2 and all(issuer.verify(t, ENTRA_FEDERATION_AUDIENCE) for t in issuer.minted)
    show = json.loads(call_helper("registry", "show", "acr", "--json").out)
    assert show["identity"] == "workload identity app-1 in tenant t1 (GitHub Actions' OIDC token endpoint)"
    watch_tokens(issuer)


def test_acr_from_a_variable(issuer, entra):
    add_acr(entra, "--client-id", "app-1", "--oidc-token", "env:CIRCLE_OIDC_TOKEN_V2")
    get(ACR, {"CIRCLE_OIDC_TOKEN_V2": issuer.mint(ENTRA_FEDERATION_AUDIENCE, subject="org/o/project/p/user/u")})
    assert entra.assertions == [("app-1", "org/o/project/p/user/u")]
    watch_tokens(issuer)


@pytest.mark.parametrize("flag", ["--oidc-token", "--federated-token-file"])
def test_acr_from_a_file_read_again_for_each_fetch_through_either_flag(issuer, entra, tmp_path, flag):
    path = token_file(tmp_path, issuer.mint(ENTRA_FEDERATION_AUDIENCE, subject="first"))
    add_acr(entra, "--client-id", "app-1", flag, f"file:{path}" if flag == "--oidc-token" else str(path))
    get(ACR)
    path.write_text(issuer.mint(ENTRA_FEDERATION_AUDIENCE, subject="rotated"))
    call_helper("cache", "clear")
    get(ACR)
    assert entra.assertions == [("app-1", "first"), ("app-1", "rotated")]
    watch_tokens(issuer)


def test_acr_federated_token_file_obeys_the_token_file_rules(issuer, entra, tmp_path):
    """--federated-token-file is --oidc-token file:PATH: a file others may write is refused alike."""
    path = token_file(tmp_path, issuer.mint(ENTRA_FEDERATION_AUDIENCE))
    path.chmod(0o666)
    add_acr(entra, "--client-id", "app-1", "--federated-token-file", str(path))
    assert_one_line_error(call_helper("get", stdin=ACR), "writable by group or others", stream="out")
    assert not entra.assertions
    watch_tokens(issuer)


def test_acr_wrong_audience_is_one_line_naming_the_source_and_the_exchange_never_the_token(issuer, github, entra):
    add_acr(entra, "--client-id", "app-1", "--oidc-token", "github-actions", "--oidc-audience", "api://wrong")
    result = call_helper("get", stdin=ACR, env=github_env(github, REQUEST_TOKEN))
    line = assert_one_line_error(result, "registration 'acr' (acr)",
                                 "workload identity app-1 in tenant t1 (GitHub Actions' OIDC token endpoint)",
                                 "refused a token by Entra ID (127.0.0.1:", "AADSTS700212", stream="out")
    assert github.count("/_apis/token") == 1 and not entra.assertions and not entra.count("/oauth2/exchange")
    assert not any(token in line for token in issuer.minted)
    watch_tokens(issuer)


@pytest.mark.parametrize("type_name", ["gar", "acr"])
def test_a_refusal_in_the_real_process_is_one_line_on_stdout_and_nothing_on_stderr(issuer, github, google, entra,
                                                                                     type_name):
    """What docker sees: the one line on stdout, repeated on stderr (which docker shows on pull and push), and nothing
    else: the SDKs' own logging (azure-identity warns of each failure) stays quiet; no token shows."""
    if type_name == "gar":
        add_gar(google, "--oidc-token", "github-actions", "--oidc-audience", "https://wrong.example.com")
    else:
        add_acr(entra, "--client-id", "app-1", "--oidc-token", "github-actions", "--oidc-audience", "api://wrong")
    result = run_helper("get", stdin=GAR if type_name == "gar" else ACR, env=github_env(github, REQUEST_TOKEN))
    assert_one_line_error(result, "GitHub Actions' OIDC token endpoint", "refused", stream="out")
    assert result.err == result.out and github.count("/_apis/token") == 1
    watch_tokens(issuer, google)


@pytest.mark.parametrize("annotations, expected", [
    ({"azure.workload.identity/client-id": "app-pod"}, "app-pod"),
    ({}, "app-1"),  # no annotation: the registration's --client-id
])
def test_acr_kubelet_annotation_chooses_the_client_id(issuer, entra, annotations, expected):
    pod_token = issuer.mint(ENTRA_FEDERATION_AUDIENCE, subject="system:serviceaccount:ci:builder")
    context = FetchContext(identity_token=pod_token, annotations=annotations, timeout=10, host=ACR)
    credential = fetch_directly("acr", {
        "tenant": "t1", "client_id": "app-1", "oidc_token": "kubelet", "authority_host": entra.url,
        "exchange_url": f"{entra.url}/oauth2/exchange", "ca_file": str(entra.ca)}, ACR, context)
    assert entra.assertions == [(expected, "system:serviceaccount:ci:builder")] and credential.username == ACR_USERNAME
    assert get_provider("acr").annotation_keys == {"client_id": "azure.workload.identity/client-id"}


@pytest.mark.parametrize("value", ["not a client id/../x", SECRET_LOOKING + "+" + "x" * 200])
def test_acr_a_malformed_client_id_annotation_is_one_line_never_quoted(issuer, entra, value):
    """Whoever may annotate a service account chooses the client id the pod's token signs in as: it is checked as
    --client-id is, before Entra ID is asked, and never quoted (a message goes to the kubelet's log)."""
    context = FetchContext(identity_token=issuer.mint(ENTRA_FEDERATION_AUDIENCE), timeout=10, host=ACR,
                           annotations={"azure.workload.identity/client-id": value})
    with pytest.raises(ProviderError, match="service account annotation azure.workload.identity/client-id: "
                                            "--client-id is") as raised:
        fetch_directly("acr", {"tenant": "t1", "oidc_token": "kubelet", "authority_host": entra.url,
                               "exchange_url": f"{entra.url}/oauth2/exchange", "ca_file": str(entra.ca)}, ACR, context)
    assert not entra.calls and value not in raised.value.message and SECRET_LOOKING not in raised.value.message


def test_acr_kubelet_without_client_id_or_annotation_is_one_line(issuer, entra):
    context = FetchContext(identity_token=issuer.mint(ENTRA_FEDERATION_AUDIENCE), timeout=10, host=ACR)
    with pytest.raises(ProviderError, match="no azure.workload.identity/client-id annotation and the registration no "
                                            "--client-id"):
        fetch_directly("acr", {"tenant": "t1", "oidc_token": "kubelet", "authority_host": entra.url,
                               "ca_file": str(entra.ca)}, ACR, context)
    assert not entra.calls


def test_acr_annotations_are_ignored_unless_the_token_is_the_pods(issuer, entra):
    context = FetchContext(env={"ID_TOKEN": issuer.mint(ENTRA_FEDERATION_AUDIENCE)}, timeout=10, host=ACR,
                           annotations={"azure.workload.identity/client-id": "app-pod"})
    fetch_directly("acr", {"tenant": "t1", "client_id": "app-1", "oidc_token": "env:ID_TOKEN",
                           "authority_host": entra.url, "exchange_url": f"{entra.url}/oauth2/exchange",
                           "ca_file": str(entra.ca)}, ACR, context)
    assert [client for client, _ in entra.assertions] == ["app-1"]


@pytest.mark.parametrize("argv, fragment", [
    (("--tenant", "t", "--client-id", "c", "--oidc-token", "env:T", "--client-secret-stdin"),
     "takes one identity, not --client-secret-stdin/-env and --oidc-token"),
    (("--tenant", "t", "--client-id", "c", "--oidc-token", "env:T", "--federated-token-file", "/x"),
     "takes one identity, not --federated-token-file and --oidc-token"),
    (("--oidc-token", "env:T", "--managed-identity"), "takes one identity"),
    (("--client-id", "c", "--oidc-token", "env:T"), "--oidc-token needs --tenant and --client-id"),
    (("--tenant", "t", "--oidc-token", "github-actions"), "--oidc-token needs --tenant and --client-id"),
    (("--tenant", "t", "--oidc-token", "kubelet"), None),  # the client id may come from the pod's annotation
    (("--managed-identity", "--oidc-audience", "api://x"), "--oidc-audience goes with --oidc-token"),
    (("--tenant", "t", "--client-id", "c", "--oidc-token", SECRET_LOOKING), "--oidc-token takes"),
])
def test_acr_federation_options_are_checked_at_registry_add(argv, fragment):
    result = call_helper("registry", "add", "a", "--prefix", ACR, "--type", "acr", *argv, stdin="s")
    if fragment is None:
        assert result.code == 0, result
        return
    line = assert_one_line_error(result, fragment)
    assert SECRET_LOOKING not in line


def test_configure_refuses_what_registry_add_refuses():
    with pytest.raises(InvalidInput, match="one identity"):
        get_provider("acr").configure({"tenant": "t", "client_id": "c", "oidc_token": "env:T",
                                       "federated_token_file": "/x"})


def test_doctor_names_what_keeps_each_source_from_giving_a_token(issuer, tmp_path):
    """Found without calling out: a variable unset, a missing file, GitHub's variables absent; the kubelet's token
    comes with each request, so nothing is missing for it."""
    add("g-env", "--prefix", "gcr.io/a", "--type", "gcr", "--workload-identity-provider", PROVIDER, "--oidc-token",
        "env:GCP_ID_TOKEN")
    add("g-gha", "--prefix", "gcr.io/b", "--type", "gcr", "--workload-identity-provider", PROVIDER, "--oidc-token",
        "github-actions")
    add("a-file", "--prefix", "x.azurecr.io", "--type", "acr", "--tenant", "t", "--client-id", "c", "--oidc-token",
        f"file:{tmp_path / 'absent'}")
    add("a-kubelet", "--prefix", "y.azurecr.io", "--type", "acr", "--tenant", "t", "--oidc-token", "kubelet")
    result = call_helper("doctor", "--json")
    assert result.out, result
    problems = {p["subject"]: p["problem"] for p in json.loads(result.out) if p["check"] == "identity"}
    assert "variable GCP_ID_TOKEN holds no identity token" in problems["registration g-env (gcr)"]
    assert "ACTIONS_ID_TOKEN_REQUEST_URL" in problems["registration g-gha (gcr)"]
    assert f"{tmp_path / 'absent'} does not exist" in problems["registration a-file (acr)"]
    assert "registration a-kubelet (acr)" not in problems
    token = issuer.mint(GOOGLE_AUDIENCE)
    fixed = call_helper("doctor", "--json", env={"GCP_ID_TOKEN": token})
    assert "registration g-env (gcr)" not in {p["subject"] for p in json.loads(fixed.out)}
    assert token not in fixed.out + fixed.err
