"""Pull secrets and kubelet answers, used by real clients against the authenticated registry: skopeo reads the
Secret's .dockerconfigjson as its --authfile, and the credentials kubelet would take from our answer (by its own
matching rules, tests/kubelet.py) pull with skopeo too."""

from __future__ import annotations

import base64
import json

import pytest

from ..conftest import add_basic, run_helper
from ..kubelet import exec_plugin
from .conftest import ALICE_PASSWORD, IMAGE, TAG, skopeo

pytestmark = pytest.mark.e2e


def inspect_with_authfile(registry, authfile) -> str:
    result = skopeo(registry, "inspect", "--authfile", str(authfile), "--cert-dir", str(registry.ca_dir),
                    f"docker://{registry.host}/{IMAGE}:{TAG}")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["Name"]


def test_pull_secret_applied_as_an_authfile_pulls(registry, tmp_path):
    add_basic("team", f"{registry.host}/team", "alice", ALICE_PASSWORD)
    result = run_helper("pull-secret", f"{registry.host}/{IMAGE}:{TAG}", "--format", "json")
    assert result.code == 0, result
    dockerconfig = base64.b64decode(json.loads(result.out)["data"][".dockerconfigjson"])
    authfile = tmp_path / "pull-secret.json"
    authfile.write_bytes(dockerconfig)  # what the kubelet or a CRI reads from the Secret
    assert inspect_with_authfile(registry, authfile) == f"{registry.host}/{IMAGE}"


def test_pull_secret_control_with_a_wrong_password_fails(registry, tmp_path):
    add_basic("team", registry.host, "alice", "not-alices-password")
    dockerconfig = base64.b64decode(json.loads(run_helper("pull-secret", registry.host, "--format", "json").out)
                                    ["data"][".dockerconfigjson"])
    authfile = tmp_path / "pull-secret.json"
    authfile.write_bytes(dockerconfig)
    result = skopeo(registry, "inspect", "--authfile", str(authfile), "--cert-dir", str(registry.ca_dir),
                    f"docker://{registry.host}/{IMAGE}:{TAG}")
    assert result.returncode != 0


def test_kubelet_answer_pulls(registry, tmp_path):
    add_basic("team", f"{registry.host}/team", "alice", ALICE_PASSWORD)
    add_basic("other", f"{registry.host}/other", "bob", "bobs-password-not-used")
    image = f"{registry.host}/{IMAGE}"
    answer = exec_plugin(image)
    username, password = answer.credential_for(image)
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    authfile = tmp_path / "kubelet-auth.json"
    authfile.write_text(json.dumps({"auths": {registry.host: {"auth": token}}}))
    assert answer.cache_key_type == "Image"
    assert inspect_with_authfile(registry, authfile) == image
