import pytest

from docker_credential_idp.errors import AmbiguousRegistry, CredentialsNotFound, InvalidInput
from docker_credential_idp.matching import (
    is_under,
    longest_prefix,
    parse_prefix,
    parse_reference,
    parse_server,
    select,
    server_key,
)


@pytest.mark.parametrize(
    "sent, expected",
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("registry.hub.docker.com", "docker.io"),
        ("https://registry-1.docker.io/v2/", "docker.io"),
        ("registry.example.com", "registry.example.com"),
        ("Registry.EXAMPLE.com", "registry.example.com"),
        ("https://registry.example.com/", "registry.example.com"),
        ("http://registry.example.com", "registry.example.com"),
        ("https://registry.example.com/v2/", "registry.example.com"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("localhost:5000", "localhost:5000"),
        ("[::1]:5000", "[::1]:5000"),
        ("  registry.example.com\n", "registry.example.com"),
        ("registry.example.com/team", "registry.example.com/team"),  # a key `list` returned
        ("registry.example.com/team/", "registry.example.com/team"),
        ("https://registry.example.com/team?x=1#frag", "registry.example.com/team"),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", "123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
        ("index.docker.io:443", "index.docker.io:443"),  # a port makes it another server
    ],
)
def test_parse_server(sent, expected):
    assert parse_server(sent) == expected


@pytest.mark.parametrize(
    "bad",
    ["", "   ", "ftp://registry.example.com", "registry example.com", "host:port", "host:0", "host:70000",
     "registry.example.com//team", "-bad.example.com", "[::1", "a\tb", "https://", "host:"],
)
def test_parse_server_rejects(bad):
    with pytest.raises(InvalidInput):
        parse_server(bad)


@pytest.mark.parametrize(
    "reference, expected",
    [
        ("nginx", "docker.io/library/nginx"),
        ("nginx:1.25", "docker.io/library/nginx"),
        ("nginx:1.25.3-alpine", "docker.io/library/nginx"),
        ("nginx@sha256:" + "a" * 64, "docker.io/library/nginx"),
        ("my-org/app", "docker.io/my-org/app"),
        ("my-org/app:2", "docker.io/my-org/app"),
        ("docker.io/nginx", "docker.io/library/nginx"),
        ("docker.io/my-org/app", "docker.io/my-org/app"),
        ("index.docker.io/my-org/app:latest", "docker.io/my-org/app"),
        ("registry.hub.docker.com/my-organization/app", "docker.io/my-organization/app"),
        ("registry.example.com/team/app", "registry.example.com/team/app"),
        ("registry.example.com/team/app:1.0", "registry.example.com/team/app"),
        ("registry.example.com:5000/team/app:1.0", "registry.example.com:5000/team/app"),
        ("registry.example.com/team/app@sha256:" + "b" * 64, "registry.example.com/team/app"),
        ("registry.example.com/team/app:1.0@sha256:" + "c" * 64, "registry.example.com/team/app"),
        ("localhost/app", "localhost/app"),
        ("localhost:5000/app:dev", "localhost:5000/app"),
        ("127.0.0.1:5000/team/app", "127.0.0.1:5000/team/app"),
        ("[::1]:5000/app:1", "[::1]:5000/app"),
        ("Registry.Example.com/team/app", "registry.example.com/team/app"),
        ("registry.example.com", "registry.example.com"),  # a bare host
        ("registry.example.com:5000", "registry.example.com:5000"),
        ("localhost:5000", "localhost:5000"),
        ("https://registry.example.com/team", "registry.example.com/team"),
        ("us-docker.pkg.dev/project/repo/image:tag", "us-docker.pkg.dev/project/repo/image"),
        ("ghcr.io/owner/image:sha-abc", "ghcr.io/owner/image"),
    ],
)
def test_parse_reference(reference, expected):
    assert parse_reference(reference) == expected


@pytest.mark.parametrize(
    "written, expected",
    [
        ("registry.example.com/team", "registry.example.com/team"),
        ("registry.example.com/team/", "registry.example.com/team"),
        ("https://registry.example.com/team/", "registry.example.com/team"),
        ("REGISTRY.example.com/team", "registry.example.com/team"),
        ("registry.hub.docker.com/my-organization", "docker.io/my-organization"),
        ("index.docker.io/my-organization", "docker.io/my-organization"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("docker.io", "docker.io"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("localhost", "localhost"),
        ("us.icr.io/namespace", "us.icr.io/namespace"),
    ],
)
def test_parse_prefix(written, expected):
    assert parse_prefix(written) == expected


@pytest.mark.parametrize(
    "bad", ["my-org", "team/app", "registry.example.com/team/app:1.0", "registry.example.com/app@sha256:abc", "", "ftp://x.io"]
)
def test_parse_prefix_rejects(bad):
    with pytest.raises(InvalidInput):
        parse_prefix(bad)


def test_hub_server_key_is_dockers_index_url():
    assert server_key("docker.io") == "https://index.docker.io/v1/"
    assert server_key("docker.io/my-org") == "docker.io/my-org"
    assert server_key("registry.example.com") == "registry.example.com"


@pytest.mark.parametrize(
    "location, prefix, expected",
    [
        ("registry.example.com/team/app", "registry.example.com/team", True),
        ("registry.example.com/team", "registry.example.com/team", True),
        ("registry.example.com/teammates/app", "registry.example.com/team", False),
        ("registry.example.com/team/app", "registry.example.com", True),
        ("registry.example.com:5000/team", "registry.example.com", False),
        ("registry.example.com/team", "registry.example.com:5000", False),
        ("registry.example.co/x", "registry.example.com", False),
        ("registry.example.com", "registry.example.com/team", False),
    ],
)
def test_is_under_whole_segments_and_exact_host(location, prefix, expected):
    assert is_under(location, prefix) is expected


def test_longest_prefix_wins_whatever_the_order():
    candidates = [("registry.gitlab.com", "root"), ("registry.gitlab.com/rigdev", "rig"), ("registry.gitlab.com/rigdev/x", "x")]
    for ordering in (candidates, list(reversed(candidates))):
        assert longest_prefix("registry.gitlab.com/rigdev/foobar", ordering) == ("registry.gitlab.com/rigdev", "rig")
        assert longest_prefix("registry.gitlab.com/rigdev/x/y", ordering) == ("registry.gitlab.com/rigdev/x", "x")
        assert longest_prefix("registry.gitlab.com/other", ordering) == ("registry.gitlab.com", "root")
    assert longest_prefix("quay.io/x", candidates) is None


TEAMS = [("registry.example.com/team", "team-a"), ("registry.example.com/teammates", "team-b")]


def test_select_path_request_uses_longest_prefix():
    assert select("registry.example.com/team/app", TEAMS).registration_id == "team-a"
    assert select("registry.example.com/teammates/app", TEAMS).registration_id == "team-b"
    with pytest.raises(CredentialsNotFound):
        select("registry.example.com/other/app", TEAMS)


def test_select_path_request_ignores_scope():
    assert select("registry.example.com/team/app", TEAMS, scope="team-b").registration_id == "team-a"


def test_select_host_only_ambiguous_names_candidates_and_variable():
    with pytest.raises(AmbiguousRegistry) as caught:
        select("registry.example.com", TEAMS)
    message = caught.value.message
    assert "team-a (registry.example.com/team)" in message and "team-b" in message
    assert "DOCKER_CREDENTIAL_IDP_SCOPE" in message


def test_select_host_only_scope_by_id_or_image_prefix():
    assert select("registry.example.com", TEAMS, scope="team-b").registration_id == "team-b"
    assert select("registry.example.com", TEAMS, scope="registry.example.com/team/app:1").registration_id == "team-a"
    # a scope for another host is ignored, so one variable can serve a job that talks to several registries
    assert select("registry.example.com", TEAMS + [("quay.io", "q")], scope="quay.io/x,team-b").registration_id == "team-b"
    with pytest.raises(AmbiguousRegistry):
        select("registry.example.com", TEAMS, scope="quay.io/x")


def test_select_host_only_scope_naming_two_registrations_on_the_host_is_an_error_naming_both():
    # A job's scope listing two teams of one registry would otherwise hand the first team's credential to the
    # second team's pull (a 401 with no word of why), whichever order the teams are listed in.
    for scope in ("team-a,team-b", "team-b team-a", "registry.example.com/teammates/app,team-a"):
        with pytest.raises(AmbiguousRegistry) as caught:
            select("registry.example.com", TEAMS, scope=scope)
        message = caught.value.message
        assert "team-a (registry.example.com/team)" in message and "team-b (registry.example.com/teammates)" in message
        assert "DOCKER_CREDENTIAL_IDP_SCOPE" in message and "one" in message
    # one registration named twice, or one per host, is no ambiguity
    assert select("registry.example.com", TEAMS, scope="team-a,registry.example.com/team/x").registration_id == "team-a"
    both_hosts = TEAMS + [("quay.io/org", "q")]
    assert select("quay.io", both_hosts, scope="team-b,q").registration_id == "q"
    assert select("registry.example.com", both_hosts, scope="team-b,q").registration_id == "team-b"


def test_select_scope_naming_two_is_not_shown_raw():
    with pytest.raises(AmbiguousRegistry) as caught:
        select("registry.example.com", TEAMS, scope="team-a,team-b,\x1b[31mred")
    assert "\x1b" not in caught.value.message


def test_select_host_only_prefers_bare_host_then_only_one():
    with_bare = TEAMS + [("registry.example.com", "whole")]
    assert select("registry.example.com", with_bare).registration_id == "whole"
    assert select("registry.example.com", TEAMS[:1]).registration_id == "team-a"
    assert "only registration" in select("registry.example.com", TEAMS[:1]).reason


def test_select_host_and_port_exact():
    candidates = [("registry.example.com:5000", "with-port")]
    with pytest.raises(CredentialsNotFound):
        select("registry.example.com", candidates)
    assert select("registry.example.com:5000", candidates).registration_id == "with-port"


def test_select_docker_hub_under_all_its_names():
    candidates = [("docker.io/my-organization", "hub-org"), ("docker.io", "hub")]
    assert select(parse_server("https://index.docker.io/v1/"), candidates).registration_id == "hub"
    assert select(parse_reference("my-organization/app:1"), candidates).registration_id == "hub-org"
    assert select(parse_reference("nginx"), candidates).registration_id == "hub"
    assert select(parse_reference("registry.hub.docker.com/my-organization/app"), candidates).registration_id == "hub-org"


def test_select_no_candidates_is_not_found():
    with pytest.raises(CredentialsNotFound):
        select("quay.io", TEAMS)


# -- what failed to parse is never quoted back (issue 19 §5) -----------------------------------------------------------
# A user may pipe a password to `get` or paste a token where a host belongs: the message names the part that is wrong
# and what is expected, and holds nothing of the text, not even in part, not even lowercased.

MARKER = "s3cr3t-marker-7f3a"


def refused_without_quoting(parse, text: str, *fragments: str) -> str:
    with pytest.raises(InvalidInput) as caught:
        parse(text)
    message = caught.value.message
    assert MARKER not in message.lower(), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


@pytest.mark.parametrize("text, fragments", [
    (f"{MARKER}!pw", ["the server URL is not a registry host[:port]", "a character other than letters, digits"]),
    (f"{MARKER}.example.com:99999", ["the port must be a number from 1 to 65535"]),
    (f"{MARKER}.example.com:", ["the port after ':' is empty"]),
    (f"-{MARKER}.example.com", ["starts or ends with '.' or '-'"]),
    (f"[{MARKER}]:5000", ["IPv6 address holds only hex digits"]),
    (f"[::1{MARKER}", ["no closing ']'"]),
    (f"[::1]{MARKER}", ["only ':' and a port may follow"]),
    (f"{MARKER}://registry.example.com", ["scheme other than http:// or https://"]),
    (f"https://{MARKER}%.example.com/v2/", ["not a registry host[:port]"]),
    (f"/{MARKER}", ["no registry host before its first '/'"]),
    (f"registry.example.com//{MARKER}", ["the server URL on registry.example.com", "empty segment"]),
    (f"registry.example.com/{MARKER} x", ["the server URL on registry.example.com", "a space, tab"]),
    (f"registry.example.com/../{MARKER}", ["'.' or '..' segment"]),
    (f"registry.example.com/{MARKER}\nx", ["a control character"]),
])
def test_a_server_that_fails_to_parse_is_not_quoted_back(text, fragments):
    refused_without_quoting(parse_server, text, *fragments)


@pytest.mark.parametrize("text, fragments", [
    (f"{MARKER.upper()}!/app", ["the image reference is not a registry host[:port]", "a character other than"]),
    (f"{MARKER}.example.com:{MARKER}/app", ["the port must be a number from 1 to 65535"]),
    (f"registry.example.com:5000/team/{MARKER}?x=1", ["the image reference on registry.example.com:5000",
                                                      "repository path"]),
    (f"team//{MARKER}", ["the image reference on docker.io", "empty segment"]),
    (f"{MARKER} secret", ["a space, tab"]),
])
def test_an_image_reference_that_fails_to_parse_is_not_quoted_back(text, fragments):
    refused_without_quoting(parse_reference, text, *fragments)


@pytest.mark.parametrize("text, fragments", [
    (MARKER, ["the prefix does not start with a registry host", "write the host first"]),
    (f"{MARKER}/team", ["the prefix does not start with a registry host"]),
    (f"registry.example.com:{MARKER}", ["the prefix is not a registry host[:port]", "port"]),
    (f"{MARKER}$.example.com", ["the prefix is not a registry host[:port]", "a character other than"]),
    (f"registry.example.com/team/{MARKER}:1.0", ["the prefix on registry.example.com carries a tag or digest"]),
    (f"registry.example.com/{MARKER}@sha256:abc", ["carries a tag or digest"]),
    (f"registry.example.com/{MARKER.upper()}", ["the prefix on registry.example.com has upper-case letters in its "
                                                "path", "lower case"]),
    (f"{MARKER}{'a' * 60}.example.com", ["a label of 78 characters", "longer than the 63 characters DNS allows"]),
    (".".join([MARKER + "a" * 40] * 6), ["longer than the 253 characters DNS allows"]),
    (f"registry.example.com/{MARKER}/ /x", ["the prefix on registry.example.com", "repository path"]),
    (f"oci://{MARKER}", ["scheme other than http:// or https://"]),
])
def test_a_prefix_that_fails_to_parse_is_not_quoted_back(text, fragments):
    refused_without_quoting(parse_prefix, text, *fragments)


def test_a_scope_that_names_nothing_is_not_printed():
    scope = f"ghcr.io/other,{MARKER}\x1b[2J"
    with pytest.raises(AmbiguousRegistry) as caught:
        select("registry.example.com", [("registry.example.com/a", "a"), ("registry.example.com/b", "b")], scope)
    message = caught.value.message
    assert MARKER not in message and "\x1b" not in message and "ghcr.io/other" not in message, message
    assert message.startswith("DOCKER_CREDENTIAL_IDP_SCOPE names no registration under registry.example.com")
    assert "a (registry.example.com/a)" in message and "b (registry.example.com/b)" in message


def test_a_scope_item_is_named_in_its_normalised_form():
    chosen = select("registry.example.com", [("registry.example.com/a", "a"), ("registry.example.com/b", "b")],
                    f"Registry.Example.com/a/app:{MARKER}")
    assert chosen.registration_id == "a"
    assert MARKER not in chosen.reason and "registry.example.com/a/app" in chosen.reason, chosen.reason
