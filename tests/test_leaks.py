"""The leak watch in conftest.py runs after every test: these tests show it sees what it must. And what it cannot
see, a secret typed where a host or a name belongs, is never quoted back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import LEAKS, LeakWatch, add_basic, assert_one_line_error, run_helper


def test_watch_finds_a_secret_in_a_file_and_in_an_output(tmp_path):
    watch = LeakWatch()
    watch.watch("s3cret-value-1")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "state.json").write_text('{"token": "s3cret-value-1"}')
    with pytest.raises(AssertionError, match="state.json"):
        watch.check([tmp_path])
    watch = LeakWatch()
    watch.watch("s3cret-value-2")
    watch.saw("registry show", "password: s3cret-value-2")
    with pytest.raises(AssertionError, match="registry show"):
        watch.check([])


def test_secrets_handed_to_the_helper_are_watched_and_answers_are_allowed():
    add_basic("r", "registry.example.com", "robot", "watched-password-1")
    run_helper("registry", "add", "s", "--prefix", "other.example.com", "--type", "basic", "--username", "u",
               "--password-env", "SOME_VAR", env={"SOME_VAR": "watched-password-2"})
    assert {"watched-password-1", "watched-password-2"} <= LEAKS.secrets
    result = run_helper("get", stdin="registry.example.com")
    assert "watched-password-1" in result.out  # an answer may carry it; the watch allows it there
    run_helper("registry", "show", "r", "--json")
    assert not [label for label, text in LEAKS.outputs if "watched-password-1" in text]


def test_identity_tokens_and_exchanged_tokens_are_watched_in_outputs_and_under_home(isolated_env):
    """tests/oidc.py hands the watch every JWT its issuer mints, GitHub's request token and every token an exchange
    stand-in answers: in a file under $HOME (or the helper's home) or in any output but an answer, each is found."""
    import base64
    import urllib.request

    from .conftest import leak_directories
    from .oidc import Exchange, Issuer, github_token_endpoint

    issuer = Issuer()
    jwt = issuer.mint("quay.example.com")
    endpoint = github_token_endpoint(issuer, "request-token-to-watch")
    exchange = Exchange("quay", issuer, "quay.example.com", "quay-exchanged-token-77", robot="acme+ci")
    try:
        basic = base64.b64encode(f"acme+ci:{jwt}".encode()).decode()
        request = urllib.request.Request(f"{exchange.url}/oauth2/federation/robot/token",
                                         headers={"Authorization": f"Basic {basic}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.loads(answer.read()) == {"token": "quay-exchanged-token-77"}
    finally:
        endpoint.stop()
        exchange.stop()
    assert {jwt, "request-token-to-watch", "quay-exchanged-token-77"} <= LEAKS.secrets
    for secret in (jwt, "quay-exchanged-token-77"):
        kept = Path(isolated_env["HOME"]) / ".cache" / "kept"
        kept.parent.mkdir(exist_ok=True)
        kept.write_text(f"token={secret}")
        with pytest.raises(AssertionError, match="kept"):
            LEAKS.check(leak_directories(isolated_env))
        kept.unlink()
    watch = LeakWatch()
    watch.secrets = set(LEAKS.secrets)
    watch.saw("docker-credential-idp get (stderr)", f"debug: exchanged {jwt}")
    with pytest.raises(AssertionError, match="get"):
        watch.check([])


# -- nothing typed where a host, prefix, reference or variable name belongs is quoted back (issue 19 §5) --------------

MARKER = "s3cr3t-marker-7f3a"  # looked for in any case: a lowercased or normalised copy is a copy all the same
ADD = ("registry", "add", "r", "--type", "basic", "--username", "u")


@pytest.mark.parametrize("args, stdin, stream, fragments", [
    # the protocol: docker sends a server URL; a user pipes a password to `get` by mistake
    (("get",), f"{MARKER}!pw", "out", ["the server URL is not a registry host[:port]", "a character other than"]),
    (("get",), f"registry.example.com:{MARKER}", "out", ["the port must be a number from 1 to 65535"]),
    (("get",), f"{MARKER}://registry.example.com", "out", ["scheme other than http:// or https://"]),
    (("get",), f"registry.example.com/{MARKER} x", "out", ["the server URL on registry.example.com", "a space"]),
    (("store",), json.dumps({"ServerURL": f"[{MARKER}]", "Username": "u", "Secret": "pw"}), "out", ["IPv6"]),
    (("erase",), f"{MARKER}.example.com:0", "out", ["the port must be a number from 1 to 65535"]),
    # the commands: an image reference, a prefix, a host, a variable name
    (("resolve", f"{MARKER}:x/app"), "", "err", ["the image reference is not a registry host[:port]", "port"]),
    (("resolve", f"registry.example.com/team/{MARKER}?"), "", "err", ["the image reference on registry.example.com"]),
    (("creds", f"{MARKER.upper()}$/app"), "", "err", ["the image reference is not a registry host[:port]"]),
    (("creds", "--format", "docker-config", "nginx", f"{MARKER.upper()}!/app"), "", "err", ["REF 2 of 2: the image reference"]),
    (("pull-secret", "nginx", f"registry.example.com:{MARKER}/app"), "", "err",
     ["REF 2 of 2: the image reference is not a registry host[:port]: the port must be"]),
    (("kubelet",), json.dumps({"apiVersion": "credentialprovider.kubelet.k8s.io/v1",
                               "kind": "CredentialProviderRequest", "image": f"{MARKER.upper()}!/app"}), "err",
     ["the image reference is not a registry host[:port]"]),
    # a secret given as REF often parses (a Docker Hub name), but as no repository name docker accepts: not named
    (("resolve", f"{MARKER.upper()}!x"), "", "err", ["its repository path on docker.io is not one docker accepts"]),
    (("creds", "--format", "env", f"registry.example.com/{MARKER}%"), "", "err",
     ["its repository path on registry.example.com is not one docker accepts"]),
    (("registry", "test", MARKER.upper()), "", "err", ["which is no image name docker accepts either"]),
    ((*ADD, "--password-stdin", "--prefix", MARKER), "pw-1", "err",
     ["the prefix does not start with a registry host"]),
    ((*ADD, "--password-stdin", "--prefix", f"registry.example.com/{MARKER.upper()}"), "pw-1", "err",
     ["the prefix on registry.example.com has upper-case letters in its path"]),
    ((*ADD, "--password-stdin", "--prefix", f"registry.example.com/{MARKER}:1.0"), "pw-1", "err",
     ["carries a tag or digest"]),
    ((*ADD, "--password-stdin", "--prefix", f"{MARKER}{'a' * 50}.example.com"), "pw-1", "err",
     ["longer than the 63 characters DNS allows"]),
    ((*ADD, "--password-stdin", "--prefix", f"*.{MARKER}"), "pw-1", "err", ["Public Suffix List"]),
    ((*ADD, "--password-stdin", "--prefix", f"registry.example.com/{MARKER}*"), "pw-1", "err", ["'*' in its path"]),
    ((*ADD, "--password-env", MARKER, "--prefix", "registry.example.com"), "", "err",
     ["--password-env takes the name of an environment variable", "never the value"]),
    ((*ADD, "--password-env", MARKER.upper().replace("-", "_"), "--prefix", "registry.example.com"), "", "err",
     ["--password-env: the variable it names is not set or empty"]),
    (("configure-docker", f"{MARKER}.example.com:99999"), "", "err", ["the port must be a number from 1 to 65535"]),
    (("configure-docker", f"{MARKER}"), "", "err", ["does not start with a registry host"]),
])
def test_nothing_typed_where_a_host_or_a_name_belongs_is_quoted_back(args, stdin, stream, fragments):
    """A password piped to `get`, a token pasted into --prefix, --password-env given the value: the line says which
    part is wrong and what is expected, and holds nothing of what was typed (CI logs keep stdout and stderr)."""
    result = run_helper(*args, stdin=stdin)
    assert_one_line_error(result, *fragments, stream=stream)
    assert MARKER not in (result.out + result.err).lower().replace("_", "-"), result


def test_a_scope_naming_no_registration_names_the_variable_not_its_value():
    add_basic("team-a", "registry.example.com/team-a", "alice", "secret-a-1")
    add_basic("team-b", "registry.example.com/team-b", "bob", "secret-b-1")
    result = run_helper("get", stdin="registry.example.com",
                        env={"DOCKER_CREDENTIAL_IDP_SCOPE": f"ghcr.io/other,{MARKER}\x1b]0;title\x07"})
    line = assert_one_line_error(result, "DOCKER_CREDENTIAL_IDP_SCOPE names no registration under "
                                 "registry.example.com", "team-a (registry.example.com/team-a)", stream="out")
    assert MARKER not in result.out + result.err and "\x1b" not in result.out + result.err, result
    assert "ghcr.io/other" not in line
    resolved = run_helper("resolve", "registry.example.com",
                          env={"DOCKER_CREDENTIAL_IDP_SCOPE": f"registry.example.com/team-a/app:{MARKER}"})
    assert resolved.code == 0 and "team-a" in resolved.out and MARKER not in resolved.out + resolved.err, resolved
