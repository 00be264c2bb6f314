"""The kubelet credential provider, the kubelet config and pull secrets, held to kubelet's own rules (tests/kubelet.py)."""

from __future__ import annotations

import base64
import json
import os

import pytest

from .conftest import add_basic, assert_one_line_error, call_helper
from .kubelet import API_VERSION, Rejected, exec_plugin, urls_match
from .servers import ecr_api_endpoint

ECR_HOST = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"


@pytest.mark.parametrize("glob, target, expected", [
    ("registry.example.com", "registry.example.com/team/app", True),
    ("registry.example.com/team", "registry.example.com/team/app", True),
    ("registry.example.com/team", "registry.example.com/other/app", False),
    ("*.example.com", "registry.example.com/app", True),
    ("*.example.com", "example.com/app", False),
    ("registry.example.com:5000", "registry.example.com/app", False),
    ("docker.io", "docker.io/library/nginx", True),
])
def test_the_kubelet_rules_we_hold_ourselves_to(glob, target, expected):
    assert urls_match(glob, target) is expected


def test_path_scoped_registrations_are_told_apart_and_cached_per_image():
    add_basic("team-a", "registry.example.com/team-a", "robot-a", "kubelet-secret-a")
    add_basic("team-b", "registry.example.com/team-b", "robot-b", "kubelet-secret-b")
    for team in ("a", "b"):
        image = f"registry.example.com/team-{team}/app:1.0"
        answer = exec_plugin(image)
        assert answer.credential_for(image) == (f"robot-{team}", f"kubelet-secret-{team}")
        assert answer.cache_key_type == "Image" and answer.cache_duration is None  # kubelet's default applies
        assert list(answer.auth) == [f"registry.example.com/team-{team}"]


def test_whole_registry_registration_is_cached_per_registry_unless_it_shares_its_host():
    add_basic("hub", "docker.io/acme", "acme-robot", "kubelet-secret-hub")
    add_basic("whole", "registry.example.com", "robot", "kubelet-secret-whole")
    answer = exec_plugin("registry.example.com/any/app")
    assert answer.cache_key_type == "Registry" and answer.cache_key == "registry.example.com"
    assert answer.credential_for("registry.example.com/any/app") == ("robot", "kubelet-secret-whole")
    hub = exec_plugin("docker.io/acme/app")  # kubelet normalises images before asking
    assert hub.credential_for("docker.io/acme/app") == ("acme-robot", "kubelet-secret-hub")
    add_basic("team", "registry.example.com/team", "team-robot", "kubelet-secret-team")
    shared = exec_plugin("registry.example.com/any/app")
    assert shared.cache_key_type == "Image"  # else kubelet would reuse it for registry.example.com/team/...


def test_token_cache_duration_is_its_life_less_the_refresh_margin():
    api = ecr_api_endpoint("kubelet-ecr-password", lifetime=3600)
    try:
        result = call_helper("registry", "add", "ecr", "--prefix", ECR_HOST, "--type", "ecr", "--endpoint-url", api.url,
                            "--access-key-id", "AKIAIOSFODNN7EXAMPLE", "--secret-access-key-stdin",
                            "--refresh-margin", "600", stdin="kubelet-aws-secret")
        assert result.code == 0, result
        image = f"{ECR_HOST}/app:1"
        answer = exec_plugin(image)
        assert answer.credential_for(image) == ("AWS", "kubelet-ecr-password")
        assert answer.cache_key_type == "Registry"
        assert 3000 - 30 <= answer.cache_duration <= 3000
    finally:
        api.stop()


def test_no_match_is_an_empty_answer_kubelet_does_not_cache():
    add_basic("r", "registry.example.com/team", "robot", "kubelet-secret-r")
    answer = exec_plugin("other.example.com/app:1")
    assert answer.auth == {} and answer.cache_duration == 0
    assert exec_plugin("quay.io/x/y").auth == {}


def test_v1beta1_requests_get_v1beta1_answers():
    add_basic("r", "registry.example.com", "robot", "kubelet-secret-r")
    answer = exec_plugin("registry.example.com/app", api_version="credentialprovider.kubelet.k8s.io/v1beta1")
    assert answer.response["apiVersion"] == "credentialprovider.kubelet.k8s.io/v1beta1"


@pytest.mark.parametrize("stdin, fragment", [
    ("", "not a JSON CredentialProviderRequest"),
    ("[]", "expected a CredentialProviderRequest"),
    ('{"kind": "CredentialProviderRequest", "apiVersion": "v9", "image": "x/y"}', "unsupported apiVersion"),
    ('{"kind": "CredentialProviderRequest", "apiVersion": "' + API_VERSION + '"}', "no image"),
])
def test_bad_requests_are_one_line_on_stderr(stdin, fragment):
    result = call_helper("kubelet", stdin=stdin)
    assert_one_line_error(result, fragment)
    assert result.out == ""


def test_source_failure_is_one_line_on_stderr_for_kubelet_to_log():
    result = call_helper("registry", "add", "broken", "--prefix", "registry.example.com", "--type", "script",
                        "--script-stdin", stdin="echo 'vault sealed' >&2; exit 3\n")
    assert result.code == 0
    request = json.dumps({"apiVersion": API_VERSION, "kind": "CredentialProviderRequest", "image": "registry.example.com/a"})
    failed = call_helper("kubelet", stdin=request)
    assert_one_line_error(failed, "registration 'broken'", "vault sealed")
    with pytest.raises(Rejected):
        exec_plugin("registry.example.com/a")


def test_kubelet_config_matches_every_registration_and_installs_the_plugin():
    add_basic("team", "registry.example.com/team", "robot", "kubelet-secret-1")
    add_basic("hub", "docker.io/acme", "robot", "kubelet-secret-2")
    add_basic("local", "127.0.0.1:5000", "robot", "kubelet-secret-3")
    result = call_helper("kubelet-config", "--default-cache-duration", "30m")
    assert result.code == 0, result
    text = result.out
    assert text.startswith("apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\n")
    assert "  - name: docker-credential-idp\n" in text and "    args: [kubelet]\n" in text
    assert f'    apiVersion: {API_VERSION}\n' in text and 'defaultCacheDuration: "30m"' in text
    match_images = [json.loads(line.split("- ", 1)[1]) for line in text.splitlines() if line.startswith("      - \"")]
    assert match_images == ["127.0.0.1:5000", "docker.io/acme", "registry.example.com/team"]
    for image in ("registry.example.com/team/app", "docker.io/acme/tool", "127.0.0.1:5000/x/y"):
        assert any(urls_match(glob, image) for glob in match_images), image
    assert f'value: {json.dumps(os.environ["DOCKER_CREDENTIAL_IDP_HOME"])}' in text
    assert "kubelet-secret" not in text


def test_kubelet_config_without_registrations_says_what_to_do():
    assert_one_line_error(call_helper("kubelet-config"), "no registrations yet", "registry add")


def test_pull_secret_yaml_and_json_hold_the_credentials():
    add_basic("team", "registry.example.com/team", "robot", "pull-secret-pw-1")
    add_basic("hub", "docker.io", "hubber", "pull-secret-pw-2")
    result = call_helper("pull-secret", "registry.example.com/team/app:1", "nginx", "--namespace", "ci", "--format", "json")
    assert result.code == 0 and result.err == "", result
    secret = json.loads(result.out)
    assert secret["type"] == "kubernetes.io/dockerconfigjson" and secret["metadata"] == {
        "name": "idp-registry-credentials", "namespace": "ci"}
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert config["auths"]["registry.example.com/team"]["password"] == "pull-secret-pw-1"
    hub = config["auths"]["https://index.docker.io/v1/"]
    assert base64.b64decode(hub["auth"]).decode() == "hubber:pull-secret-pw-2"
    yaml = call_helper("pull-secret", "registry.example.com/team/app", "--name", "regcred")
    assert 'name: "regcred"' in yaml.out and "type: kubernetes.io/dockerconfigjson" in yaml.out
    encoded = yaml.out.split(".dockerconfigjson: ", 1)[1].strip()
    assert json.loads(base64.b64decode(encoded))["auths"]["registry.example.com/team"]["username"] == "robot"


def test_pull_secret_warns_when_its_credential_expires():
    result = call_helper("registry", "add", "s", "--prefix", "registry.example.com", "--type", "script", "--expire", "2h",
                        "--script-stdin", stdin="echo robot:expiring-pw-1\n")
    assert result.code == 0
    secret = call_helper("pull-secret", "registry.example.com/app")
    assert secret.code == 0
    warning = [line for line in secret.err.splitlines() if line]
    assert len(warning) == 1 and "expires at" in warning[0] and "does not refresh itself" in warning[0]
    assert "in 1h59m" in warning[0] or "in 2h00m" in warning[0]


def test_pull_secret_for_an_unregistered_image_fails_clearly():
    add_basic("r", "registry.example.com", "robot", "pull-secret-pw-3")
    assert_one_line_error(call_helper("pull-secret", "quay.io/x/y"), "quay.io")


def test_every_kind_of_registration_gets_an_answer_kubelet_accepts(tmp_path, service_account_key, moto_url):
    from .setups import PREFIXES, StandIns

    stand_ins = StandIns(tmp_path, service_account_key, "kubelet", moto_url=moto_url)
    try:
        setups = [stand_ins.setup(type_name) for type_name in PREFIXES]
        for setup in setups:
            setup.register(setup.type_name)
        for setup in setups:
            image = f"{setup.prefix}/app:1"
            answer = exec_plugin(image)
            got = answer.credential_for(image)
            assert got is not None and got[0] == setup.username, (setup.type_name, got)
            assert setup.password is None or got[1] == setup.password, (setup.type_name, got)
            assert answer.cache_key_type == ("Image" if "/" in setup.prefix else "Registry"), setup.type_name
            assert (answer.cache_duration is None) is (setup.type_name == "basic"), (setup.type_name, answer.response)
    finally:
        stand_ins.stop()
