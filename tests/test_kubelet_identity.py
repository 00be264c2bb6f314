"""Per-pod identity in kubelet mode (KEP-4412): the kubelet's CredentialProviderRequest carries the pod's
service-account token and its service account's annotations; a registration with --oidc-token kubelet exchanges that
token, its answer cached per service account, never shared with another one or with a `get`. Requests are piped as
the kubelet sends them (tests/kubelet.py), with tokens signed by a stand-in cluster issuer (tests/oidc.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from docker_credential_idp import identity, kubernetes
from docker_credential_idp.errors import InvalidInput, ProviderError
from docker_credential_idp.fetching import annotated
from docker_credential_idp.model import Registration
from docker_credential_idp.providers.base import Option, Provider

from .conftest import LEAKS, add_basic, assert_one_line_error, call_helper
from .kubelet import exec_plugin, request_of
from .oidc import Exchange, Issuer
from .tls import make_tls

CLUSTER = "https://kubernetes.default.svc"
HARBOR = "harbor.example.com"  # its workload identity federation takes the pod's token as the password
HUB_AUDIENCE = "https://identity.docker.com"
CONNECTION_ID = "0f5b7e0c-3d8a-4c61-9b7e-2a1d4c5e6f70"


def pod_token(issuer: Issuer, namespace: str, account: str, uid: str, audience: str, pod: str = "app-0") -> str:
    """A projected service-account token as the kubelet asks the API server for it (TokenRequest bound to the pod)."""
    token = issuer.mint(audience, subject=f"system:serviceaccount:{namespace}:{account}", lifetime=3600,
                        **{"kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": account, "uid": uid},
                                             "pod": {"name": pod, "uid": f"{pod}-uid"}}})
    LEAKS.watch(token)  # the answer to the kubelet may hold it; no message, log or file may
    return token


def kubelet_config() -> list[dict[str, Any]]:
    result = call_helper("kubelet-config", "--no-home")
    assert result.code == 0, result
    return yaml.safe_load(result.out)["providers"]


@pytest.fixture
def cluster() -> Issuer:
    return Issuer(iss=CLUSTER)


# -- the token is the password (--exchange none): each pod gets its own ---------------------------------------------


def test_each_pod_gets_its_own_token_and_a_request_without_one_is_refused(cluster: Issuer) -> None:
    result = call_helper("registry", "add", "harbor", "--prefix", HARBOR, "--type", "oidc", "--exchange", "none",
                         "--oidc-token", "kubelet", "--oidc-audience", HARBOR)
    assert result.code == 0, result
    [entry] = kubelet_config()
    assert entry["tokenAttributes"] == {"serviceAccountTokenAudience": HARBOR, "requireServiceAccount": True,
                                        "cacheType": "Token"}  # kubelet drops an echoed token under ServiceAccount
    image = f"{HARBOR}/team/app:1"
    tokens = {(ns, pod): pod_token(cluster, ns, "builder", f"{ns}-uid", HARBOR, pod)
              for ns, pod in (("team-a", "a-0"), ("team-b", "b-0"), ("team-a", "a-1"))}
    answers = {}
    for key, token in tokens.items():
        answer = exec_plugin(image, token=token, cache_type="Token")
        username, password = answer.credential_for(image)
        assert (username, password) == ("jwt", token), key  # that pod's own token, never another pod's
        assert cluster.verify(password, HARBOR)["sub"] == f"system:serviceaccount:{key[0]}:builder"
        answers[key] = password
    assert len(set(answers.values())) == 3
    with pytest.raises(Exception, match="cacheType ServiceAccount"):  # why kubelet-config says Token
        exec_plugin(image, token=tokens[("team-a", "a-0")])

    refused = call_helper("kubelet", stdin=request_of(image))
    line = assert_one_line_error(refused, "registration 'harbor'", "--oidc-token kubelet", "tokenAttributes")
    assert "kubelet-config" in line
    response = json.loads(refused.out)  # the kubelet still reads a complete "no credentials" answer, not cached
    assert (response["kind"], response["auth"], response["cacheDuration"]) == ("CredentialProviderResponse", {}, "0s")
    got = call_helper("get", stdin=HARBOR)  # docker's get has no pod: it is not handed a pod's token either
    assert got.code == 1 and not any(token in got.out + got.err for token in tokens.values())


# -- an exchange: one per service account, never shared -----------------------------------------------------------


@pytest.fixture
def hub(cluster: Issuer, tmp_path: Path) -> Iterator[Exchange]:
    ca, cert, key = make_tls(tmp_path / "tls")
    counter = iter(range(1, 100))
    exchange = Exchange("dockerhub", cluster, HUB_AUDIENCE, lambda: f"hub-access-token-{next(counter):04d}",
                        tls=(cert, key), connection_id=CONNECTION_ID)
    result = call_helper("registry", "add", "hub", "--prefix", "docker.io/acme", "--type", "oidc", "--exchange",
                         "dockerhub", "--oidc-token", "kubelet", "--connection-id", CONNECTION_ID, "--username", "acme",
                         "--exchange-url", f"{exchange.url}/oauth/token", "--ca-file", str(ca))
    assert result.code == 0, result
    yield exchange
    exchange.stop()


def test_an_exchange_is_made_once_per_service_account_and_never_shared(cluster: Issuer, hub: Exchange) -> None:
    [entry] = kubelet_config()
    assert entry["tokenAttributes"]["cacheType"] == "ServiceAccount"
    assert entry["tokenAttributes"]["serviceAccountTokenAudience"] == HUB_AUDIENCE  # the exchange's own default
    image = "docker.io/acme/app:1"

    def password(namespace: str, account: str, uid: str, pod: str) -> str:
        answer = exec_plugin(image, token=pod_token(cluster, namespace, account, uid, HUB_AUDIENCE, pod))
        return answer.credential_for(image)[1]

    first = password("team-a", "builder", "uid-a", "a-0")
    assert first == "hub-access-token-0001" and hub.count() == 1
    assert password("team-a", "builder", "uid-a", "a-1") == first and hub.count() == 1  # same account: cached
    assert password("team-b", "builder", "uid-b", "b-0") == "hub-access-token-0002" and hub.count() == 2
    assert password("team-a", "deployer", "uid-d", "d-0") == "hub-access-token-0003"
    # The account deleted and made again under the same name is another account (its uid).
    assert password("team-a", "builder", "uid-a2", "a-2") == "hub-access-token-0004" and hub.count() == 4
    assert [claims["sub"] for claims in hub.verified] == [
        "system:serviceaccount:team-a:builder", "system:serviceaccount:team-b:builder",
        "system:serviceaccount:team-a:deployer", "system:serviceaccount:team-a:builder"]
    got = call_helper("get", stdin="docker.io")  # a get is no service account: no cached answer, and no token
    assert_one_line_error(got, "kubelet", stream="out")
    assert "hub-access-token" not in got.out and hub.count() == 4


# -- kubelet-config ------------------------------------------------------------------------------------------------


def test_kubelet_config_gives_each_audience_an_entry_and_says_how_to_name_it(cluster: Issuer, hub: Exchange) -> None:
    add_basic("static", "registry.example.com", "robot", "static-config-pw")
    result = call_helper("registry", "add", "harbor", "--prefix", HARBOR, "--type", "oidc", "--exchange", "none",
                         "--oidc-token", "kubelet", "--oidc-audience", HARBOR)
    assert result.code == 0, result
    config = call_helper("kubelet-config", "--no-home")
    assert config.code == 0, config
    first, second = yaml.safe_load(config.out)["providers"]
    assert first["name"] == "docker-credential-idp" and second["name"] == "docker-credential-idp-2"
    # Audiences in order, the first sharing the binary's own name with the registrations that need no token.
    assert first["matchImages"] == [HARBOR, "registry.example.com"]
    assert first["tokenAttributes"] == {"serviceAccountTokenAudience": HARBOR, "cacheType": "Token",
                                        "requireServiceAccount": False}  # pods without an account still reach static
    assert second["matchImages"] == ["docker.io/acme"]
    assert second["tokenAttributes"] == {"serviceAccountTokenAudience": HUB_AUDIENCE, "cacheType": "ServiceAccount",
                                         "requireServiceAccount": True}
    assert all(entry["args"] == ["kubelet"] and entry["apiVersion"].endswith("/v1") for entry in (first, second))
    lines = config.err.strip().splitlines()
    assert len(lines) == 1 and "docker-credential-idp-2" in lines[0] and "ln -s docker-credential-idp" in lines[0]


def test_kubelet_config_without_token_registrations_is_as_before() -> None:
    add_basic("static", "registry.example.com", "robot", "static-config-pw")
    config = call_helper("kubelet-config", "--no-home")
    assert config.code == 0 and config.err == "", config
    [entry] = yaml.safe_load(config.out)["providers"]
    assert "tokenAttributes" not in entry and entry["matchImages"] == ["registry.example.com"]


def test_annotation_keys_become_optional_annotation_keys() -> None:
    entries, note = kubernetes.plan_entries([
        ("a.example.com", kubernetes.TokenUse("sts.amazonaws.com", False, ("eks.amazonaws.com/role-arn",))),
        ("b.example.com", kubernetes.TokenUse("sts.amazonaws.com", False, ("example.com/other",)))])
    assert note is None
    [entry] = yaml.safe_load(kubernetes.provider_config(entries, None, "1h"))["providers"]
    assert entry["tokenAttributes"]["optionalServiceAccountAnnotationKeys"] == ["eks.amazonaws.com/role-arn",
                                                                                "example.com/other"]
    assert entry["tokenAttributes"]["requireServiceAccount"] is True


def test_a_token_registration_without_an_audience_is_named_at_kubelet_config() -> None:
    result = call_helper("registry", "add", "hub", "--prefix", "docker.io/acme", "--type", "oidc", "--exchange",
                         "quay", "--robot", "acme+ci", "--oidc-token", "kubelet")
    assert result.code == 0, result
    assert_one_line_error(call_helper("kubelet-config"), "registration 'hub'", "--oidc-audience")


# -- who the answer is for, and the annotations ---------------------------------------------------------------------


def test_the_principal_is_the_service_account_and_the_annotations_used(cluster: Issuer) -> None:
    a0 = pod_token(cluster, "team-a", "builder", "uid-a", "aud", "a-0")
    a1 = pod_token(cluster, "team-a", "builder", "uid-a", "aud", "a-1")
    assert kubernetes.service_account(a0) == ("team-a", "builder", "uid-a")
    assert kubernetes.principal(a0, {}) == kubernetes.principal(a1, {})
    role = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/a"}
    other = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/b"}
    assert len({kubernetes.principal(a0, {}), kubernetes.principal(a0, role), kubernetes.principal(a0, other),
                kubernetes.principal(pod_token(cluster, "team-b", "builder", "uid-a", "aud"), {}),
                kubernetes.principal(pod_token(cluster, "team-a", "builder", "uid-x", "aud"), {})}) == 5
    subject_only = cluster.mint("aud", subject="system:serviceaccount:ns:sa")
    assert kubernetes.service_account(subject_only) == ("ns", "sa", "")
    stranger = cluster.mint("aud", subject="repo:example/app")
    assert kubernetes.service_account(stranger) is None
    assert kubernetes.principal(stranger, {}) != kubernetes.principal(cluster.mint("aud", subject="repo:x/y"), {})


class RoleProvider(Provider):
    """A provider reading the role its token is exchanged for from the service account's annotation, as the AWS
    types do with eks.amazonaws.com/role-arn."""

    type_name = "role-test"
    summary = "test"
    options = (Option("role-arn", "role", convert=str.strip), *identity.OPTIONS)
    annotation_keys = {"role_arn": "eks.amazonaws.com/role-arn"}

    def validate(self, settings: dict[str, Any], secrets: dict[str, str]) -> None:
        if not str(settings.get("role_arn", "")).startswith("arn:aws:iam::"):
            raise InvalidInput("--role-arn must look like arn:aws:iam::123456789012:role/NAME")


def registration(**settings: Any) -> Registration:
    return Registration("eks", "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "role-test",
                        {"role_arn": "arn:aws:iam::123456789012:role/default", **settings})


def test_an_annotation_stands_in_for_the_setting_it_names_else_the_registration_s_own() -> None:
    provider = RoleProvider()
    mine = registration(oidc_token="kubelet")
    annotations = {"eks.amazonaws.com/role-arn": " arn:aws:iam::123456789012:role/team-a ", "unrelated": "x"}
    assert annotated(mine, provider, annotations).settings["role_arn"] == "arn:aws:iam::123456789012:role/team-a"
    assert annotated(mine, provider, {"unrelated": "x"}) is mine
    # With the node's identity (no pod token), an annotation would let whoever edits a service account pick a role.
    node = registration(oidc_token="file:/var/run/secrets/token")
    assert annotated(node, provider, annotations) is node
    with pytest.raises(ProviderError) as bad:
        annotated(mine, provider, {"eks.amazonaws.com/role-arn": "team-a"})
    assert "service account annotation eks.amazonaws.com/role-arn" in bad.value.message
    assert len(bad.value.message.splitlines()) == 1


# -- the request, bounded --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field, value, fragment", [
    ("serviceAccountToken", "x" * (64 * 1024 + 1), "serviceAccountToken"),
    ("serviceAccountToken", {"token": "t"}, "serviceAccountToken"),
    ("serviceAccountAnnotations", ["a"], "serviceAccountAnnotations"),
    ("serviceAccountAnnotations", {f"k{i}": "v" for i in range(65)}, "serviceAccountAnnotations"),
    ("serviceAccountAnnotations", {"k": 1}, "serviceAccountAnnotations"),
])
def test_a_malformed_token_or_annotations_is_one_line_never_quoted(field: str, value: Any, fragment: str) -> None:
    add_basic("r", "registry.example.com", "robot", "malformed-pw")
    request = json.loads(request_of("registry.example.com/app"))
    request[field] = value
    result = call_helper("kubelet", stdin=json.dumps(request))
    line = assert_one_line_error(result, fragment)
    assert "xxxxxxxx" not in line and result.out == ""


def test_a_registration_without_the_token_ignores_it() -> None:
    add_basic("r", "registry.example.com", "robot", "ignores-token-pw")
    token = pod_token(Issuer(iss=CLUSTER), "team-a", "builder", "uid-a", "aud")
    answer = exec_plugin("registry.example.com/app", token=token, annotations={"eks.amazonaws.com/role-arn": "x"})
    assert answer.credential_for("registry.example.com/app") == ("robot", "ignores-token-pw")
