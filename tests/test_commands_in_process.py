"""The commands in this process: `commands.run` takes the streams it reads and writes, so a command's whole
behaviour (output, warnings, errors, what the table holds afterwards) is checked without starting a program.
tests/test_commands.py drives the same commands through the installed program."""

from __future__ import annotations

import base64
import io
import json
import os

import pytest

from docker_credential_idp import commands
from docker_credential_idp.errors import InvalidInput, NotRegistered

HOST = "registry.example.com"


class Run:
    def __init__(self, argv: list[str], stdin: bytes = b"", env: dict[str, str] | None = None) -> None:
        self.out = io.StringIO()
        self.warnings: list[str] = []
        self.read: list[int] = []

        def read_stdin(limit: int) -> bytes:
            self.read.append(limit)
            return stdin[:limit]

        self.status = commands.run(argv, {**os.environ, **(env or {})}, out=self.out, warn=self.warnings.append,
                                   read_stdin=read_stdin, stdin_is_terminal=lambda: False)

    @property
    def text(self) -> str:
        return self.out.getvalue()


def add(registration_id: str, prefix: str, password: str, *extra: str) -> Run:
    return Run(["registry", "add", registration_id, "--prefix", prefix, "--type", "basic", "--username", "robot",
                "--password-stdin", *extra], stdin=password.encode() + b"\n")


def test_add_list_resolve_creds_and_remove_through_the_given_streams():
    added = add("team-a", f"{HOST}/team-a", "in-process-pw-1")
    assert added.status == 0 and added.text == f"Registered team-a: {HOST}/team-a (basic)\n"
    assert added.warnings == ["To let docker use it, run: docker-credential-idp configure-docker"]
    listed = json.loads(Run(["registry", "list", "--json"]).text)
    assert [(r["id"], r["prefix"], r["secrets"]) for r in listed] == [("team-a", f"{HOST}/team-a", ["password"])]
    resolved = json.loads(Run(["resolve", f"{HOST}/team-a/app:1.0", "--json"]).text)
    assert resolved["id"] == "team-a" and resolved["request"] == f"{HOST}/team-a/app"
    creds = json.loads(Run(["creds", f"{HOST}/team-a/app"]).text)
    assert (creds["username"], creds["password"]) == ("robot", "in-process-pw-1")
    assert Run(["cache", "clear"]).text == "Dropped 1 cached token\n"
    assert Run(["registry", "remove", "team-a"]).text == "Removed team-a\n"
    assert json.loads(Run(["registry", "list", "--json"]).text) == []


def test_a_second_registration_on_the_host_warns_of_host_only_requests():
    add("team-a", f"{HOST}/team-a", "pw-a")
    second = add("team-b", f"{HOST}/team-b", "pw-b")
    assert second.status == 0
    assert any("send only the host" in w and "DOCKER_CREDENTIAL_IDP_SCOPE" in w for w in second.warnings)


def test_an_invalid_id_is_refused_before_any_secret_is_read():
    read: list[int] = []
    with pytest.raises(InvalidInput, match="invalid registration id"):
        commands.run(["registry", "add", "Bad_Id", "--prefix", HOST, "--type", "basic", "--username", "u",
                      "--password-stdin"], os.environ, out=io.StringIO(), warn=lambda line: None,
                     read_stdin=lambda limit: read.append(limit) or b"pw", stdin_is_terminal=lambda: False)
    assert read == []


@pytest.mark.parametrize("registration_id", ["a..b", "idp..dot", "a.-b", "a-.b", ".a", "a.", "-a", "a-", "."])
def test_an_id_with_an_empty_dotted_part_or_one_ending_in_a_dash_is_refused(registration_id):
    """The Kubernetes rule ids follow (a DNS subdomain): each '.'-separated part starts and ends with a letter or
    digit, so a listed platform id `.dot` does not become `idp..dot`."""
    from docker_credential_idp.model import validate_id

    with pytest.raises(InvalidInput, match="invalid registration id"):
        validate_id(registration_id)


@pytest.mark.parametrize("registration_id", ["a", "idp.team-registry", "a-b.c-d", "1.2.3", "x--y", "a" * 253])
def test_ids_as_documented_stay_valid(registration_id):
    from docker_credential_idp.model import validate_id

    assert validate_id(registration_id) == registration_id


def test_help_goes_to_the_output_stream_and_errors_are_exceptions():
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        commands.run(["registry", "add", "--help"], os.environ, out=out, warn=lambda line: None)
    assert exit_.value.code == 0 and "--password-stdin" in out.getvalue()
    with pytest.raises(NotRegistered, match="no registration with id 'nothing'"):
        Run(["registry", "show", "nothing"])
    with pytest.raises(InvalidInput, match="registry needs a command: add, list, show, test, remove"):
        Run(["registry"])
    unknown = Run(["registy"])
    assert unknown.status == 1 and unknown.text == "docker-credential-idp: unknown action: registy\n"
    assert unknown.warnings and "did you mean registry?" in unknown.warnings[0]


def test_kubelet_reads_its_request_from_the_given_stdin():
    add("team-a", f"{HOST}/team-a", "kubelet-pw-1")
    request = {"apiVersion": "credentialprovider.kubelet.k8s.io/v1", "kind": "CredentialProviderRequest",
               "image": f"{HOST}/team-a/app:1.0"}
    run = Run(["kubelet"], stdin=json.dumps(request).encode())
    answer = json.loads(run.text)
    assert answer["auth"] == {f"{HOST}/team-a": {"username": "robot", "password": "kubelet-pw-1"}}
    assert answer["cacheKeyType"] == "Image" and run.read


def test_creds_docker_config_has_one_entry_per_registry_host():
    add("team-a", f"{HOST}/team-a", "config-pw-a")
    add("hub", "docker.io/acme", "config-pw-hub")
    run = Run(["creds", f"{HOST}/team-a/app:1", f"{HOST}/team-a/tool", "acme/app", "--format", "docker-config"])
    auths = json.loads(run.text)["auths"]
    assert set(auths) == {HOST, "https://index.docker.io/v1/"}
    assert base64.b64decode(auths[HOST]["auth"]).decode() == "robot:config-pw-a"
    assert base64.b64decode(auths["https://index.docker.io/v1/"]["auth"]).decode() == "robot:config-pw-hub"
    assert set(auths[HOST]) == {"auth"}


def test_creds_docker_config_refuses_two_credentials_for_one_host():
    add("team-a", f"{HOST}/team-a", "config-pw-a")
    add("team-b", f"{HOST}/team-b", "config-pw-b")
    with pytest.raises(InvalidInput, match="registration 'team-b' and an earlier REF on registry.example.com by "
                                           "'team-a'") as refused:
        Run(["creds", f"{HOST}/team-a/app", f"{HOST}/team-b/app", "--format", "docker-config"])
    assert "config-pw" not in str(refused.value)
    with pytest.raises(InvalidInput, match="give one REF, or use --format docker-config"):
        Run(["creds", f"{HOST}/team-a/app", f"{HOST}/team-b/app"])
