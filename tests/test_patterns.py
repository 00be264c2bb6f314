"""Pattern registrations: `*` in a prefix's host labels, anchored matching, precedence, and one registration serving
every ECR account and region with each host's own token."""

from __future__ import annotations

import base64
import json
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docker_credential_idp.errors import AmbiguousRegistry, CredentialsNotFound, InvalidInput
from docker_credential_idp.matching import host_matches, parse_prefix, patterns_overlap, select

from .conftest import add_basic, assert_one_line_error, call_helper
from .servers import LocalServer, json_answer

ECR_PATTERN = "*.dkr.ecr.*.amazonaws.com"


@pytest.mark.parametrize("text, prefix", [
    ("*.dkr.ecr.*.amazonaws.com", "*.dkr.ecr.*.amazonaws.com"),
    ("*-docker.pkg.dev/my-project", "*-docker.pkg.dev/my-project"),
    ("*.AzureCR.io", "*.azurecr.io"),
    ("https://*.azurecr.io/", "*.azurecr.io"),
    ("reg*.example.com:5000", "reg*.example.com:5000"),
    ("*.my-org.github.io", "*.my-org.github.io"),  # github.io is public; my-org.github.io is somebody's
    ("123*.dkr.ecr.*.amazonaws.com", "123*.dkr.ecr.*.amazonaws.com"),
    ("*.dev.example.com:5000", "*.dev.example.com:5000"),
    ("*.*.dev.example.com", "*.*.dev.example.com"),  # every host it matches is under example.com
    ("*.dkr.ecr.eu-*.amazonaws.com", "*.dkr.ecr.eu-*.amazonaws.com"),
    ("1*2.dkr.ecr*.*.amazonaws.com.cn", "1*2.dkr.ecr*.*.amazonaws.com.cn"),
])
def test_patterns_are_prefixes(text, prefix):
    assert parse_prefix(text) == prefix


@pytest.mark.parametrize("text, fragment", [
    ("*.io", "literal domain"), ("*.*", "literal domain"), ("*", "literal domain"), ("*.example.*", "literal domain"),
    ("registry.example.com/*", "in its path"), ("registry.example.com/team*", "in its path"),
    ("*.example.com:50*", "in its port"), ("[::*]:5000", "IPv6"), ("a**b.example.com", "invalid pattern host"),
    ("*-.example.com", "start or end with '-'"), ("*.example.com/team:1", "tag or digest"),
])
def test_patterns_that_could_reach_too_far_are_refused(text, fragment):
    with pytest.raises(InvalidInput, match=re.escape(fragment)):
        parse_prefix(text)


@pytest.mark.parametrize("text, suffix", [
    ("*.co.uk", "co.uk"),  # ICANN section
    ("*.github.io", "github.io"),  # private section
    ("team*.github.io", "github.io"),
    ("*.s3.amazonaws.com", "s3.amazonaws.com"),
    # Under a wildcard rule: the rule is named as listed, never the label the pattern wrote where its `*` stands.
    ("*.eu-west-1.compute.amazonaws.com", "*.compute.amazonaws.com"),
    # A `*` before the literal tail stands for a label below a public suffix as well (the PSL rules s3.amazonaws.com,
    # s3.<region>.amazonaws.com and github.io): `*.*.amazonaws.com` matched evil.s3.amazonaws.com, a bucket's host.
    ("*.*.amazonaws.com", "amazonaws.com"),
    ("*.s3.*.amazonaws.com", "amazonaws.com"),
    ("x.*.github.io", "github.io"),
    ("*.x.*.co.uk", "co.uk"),
    ("www.*.com", "com"),
    ("*.compute.amazonaws.com", "*.compute.amazonaws.com"),  # each host it matches is a public suffix itself
    ("s3.*.amazonaws.com", "amazonaws.com"),  # s3.us-east-1.amazonaws.com, a public suffix itself, is a host of it
])
def test_a_pattern_must_keep_a_literal_label_below_the_public_suffix(text, suffix):
    """Only the rule as the list holds it is named (an s3.<region> one for the S3 patterns), never the typed text."""
    with pytest.raises(InvalidInput, match="the public suffix ") as caught:
        parse_prefix(text)
    named = caught.value.message.split("the public suffix ", 1)[1].split(" ", 1)[0]
    assert named == suffix or named.endswith("." + suffix), caught.value.message


def test_the_public_suffix_check_is_fast_once_the_list_is_loaded():
    """A listed platform entry goes through parse_prefix too; the list is read once, each pattern walks it."""
    parse_prefix("*.azurecr.io")
    started = time.perf_counter()
    for _ in range(20):
        parse_prefix("*.dkr.ecr.*.amazonaws.com")
        parse_prefix("1*2.dkr.ecr*.*.amazonaws.com.cn")
    assert (time.perf_counter() - started) / 40 < 0.005


def test_a_pattern_reaching_an_s3_bucket_is_refused_and_never_answers_for_it():
    result = call_helper("registry", "add", "w", "--prefix", "*.*.amazonaws.com", "--type", "basic", "--username",
                         "u", "--password-stdin", stdin="bucket-pw-4d1e")
    assert_one_line_error(result, "below the public suffix", "write that label out")
    result = call_helper("registry", "add", "w", "--prefix", "*.s3.*.amazonaws.com", "--type", "basic", "--username",
                         "u", "--password-stdin", stdin="bucket-pw-4d1e")
    assert_one_line_error(result, "below the public suffix", "write that label out")
    for host in ("evil.s3.amazonaws.com", "evilbucket.s3.us-east-1.amazonaws.com"):
        assert_one_line_error(call_helper("get", stdin=host), "credentials not found", stream="out")


def test_a_top_level_label_the_list_does_not_know_counts_as_public_and_is_not_quoted():
    """A suffix the Public Suffix List holds is public data and may be named; an unknown one is only what was typed."""
    with pytest.raises(InvalidInput, match="a top-level domain the Public Suffix List does not know") as caught:
        parse_prefix("*.internal")
    assert "internal" not in caught.value.message.replace("Public Suffix", "")


@pytest.mark.parametrize("text", ["r*", "local*:5000", "*", "*:5000"])
def test_a_single_label_pattern_is_refused(text):
    """A one-label name is completed by the resolver's search domains or answered by anybody on the LAN (mDNS,
    LLMNR): `local*:5000` would hand a password to `local-evil:5000`."""
    with pytest.raises(InvalidInput, match="literal domain after its last"):
        parse_prefix(text)


def test_registry_add_and_a_listed_pattern_go_through_the_same_rule():
    result = call_helper("registry", "add", "uk", "--prefix", "*.co.uk", "--type", "basic", "--username", "robot",
                        "--password-stdin", stdin="static-pw-for-uk")
    assert_one_line_error(result, "below the public suffix co.uk", "*.yourdomain.co.uk")


def test_a_listed_pattern_on_a_public_suffix_is_skipped_by_a_sync():
    from docker_credential_idp.sources import Source, apply

    source = Source(id="plat", url="https://platform.example.com", org="acme", token="t")
    listing = [{"id": "pages", "registry": "*.github.io", "enable_ci": True},
               {"id": "ours", "registry": "*.my-org.github.io", "enable_ci": True}]
    table: dict = {}
    _, report = apply(source, listing, table)
    assert [registration.prefix for registration in table.values()] == ["*.my-org.github.io"]
    assert len(report.invalid) == 1 and "below the public suffix github.io" in report.invalid[0]


@pytest.mark.parametrize("text", [
    "a" * 64 + ".example.com", "x*" + "a" * 62 + ".example.com", "https://" + "a" * 64 + ".example.com/team",
    ".".join(["a" * 60] * 5) + ".example.com",
])
def test_a_prefix_host_beyond_dns_lengths_is_refused(text):
    with pytest.raises(InvalidInput, match="characters DNS allows"):
        parse_prefix(text)


def test_a_prefix_host_at_dns_lengths_is_accepted():
    assert parse_prefix("a" * 63 + ".example.com") == "a" * 63 + ".example.com"
    assert parse_prefix("x*" + "a" * 61 + ".example.com") == "x*" + "a" * 61 + ".example.com"


@pytest.mark.parametrize("host, expected", [
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", True),
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example", False),
    ("a.b.dkr.ecr.eu-west-1.amazonaws.com", False),
    ("dkr.ecr.eu-west-1.amazonaws.com", False),
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com:443", False),
    ("123456789012.dkr.ecr..amazonaws.com", False),
    ("evil.example", False),
])
def test_matching_is_anchored_label_by_label(host, expected):
    assert host_matches(ECR_PATTERN, host) is expected


def reference(pattern: str, host: str) -> bool:
    name, _, port = pattern.partition(":")
    regex = r"\.".join("".join("[^.:/]+" if c == "*" else re.escape(c) for c in label) for label in name.split("."))
    return re.fullmatch(regex + (re.escape(":" + port) if port else ""), host) is not None


labels = st.text("ab-*", min_size=1, max_size=4).filter(lambda label: "**" not in label)
hosts = st.lists(st.text("ab-", min_size=1, max_size=5), min_size=1, max_size=3).map(".".join)


@settings(max_examples=400, deadline=None)
@given(pattern=st.lists(labels, min_size=1, max_size=3).map(".".join), host=hosts)
def test_a_star_is_one_or_more_characters_of_one_label(pattern, host):
    assert host_matches(pattern, host) is reference(pattern, host)


@settings(max_examples=300, deadline=None)
@given(first=st.lists(labels, min_size=2, max_size=2).map(".".join),
       second=st.lists(labels, min_size=2, max_size=2).map(".".join))
def test_two_patterns_overlap_when_some_host_matches_both(first, second):
    words = ["".join(w) for n in range(1, 7) for w in __import__("itertools").product("ab-", repeat=n)]
    some = any(reference(first, f"{x}.{y}") and reference(second, f"{x}.{y}") for x in words for y in words[:40])
    if some:
        assert patterns_overlap(first, second)


def test_precedence_literal_prefix_then_more_literal_pattern_then_longer_path():
    candidates = [("*.azurecr.io", "any"), ("team*.azurecr.io", "teams"), ("teamx.azurecr.io/app", "exact"),
                  ("team*.azurecr.io/tools", "tools")]
    assert select("teamx.azurecr.io/app/web", candidates).registration_id == "exact"
    assert select("teamx.azurecr.io/other", candidates).registration_id == "teams"
    assert select("teamy.azurecr.io/tools/x", candidates).registration_id == "tools"
    assert select("other.azurecr.io/x", candidates).registration_id == "any"
    chosen = select("teamy.azurecr.io/other", candidates)
    assert chosen.prefix == "team*.azurecr.io" and "pattern team*.azurecr.io matches teamy.azurecr.io" in chosen.reason
    with pytest.raises(CredentialsNotFound):
        select("evil.example/other.azurecr.io/x", candidates)
    # A host-only request follows the host-only rules among the most literal patterns that match it: the pattern
    # for the whole host, the scope's choice, the only one; two path-scoped ones and no scope is ambiguous.
    assert select("teamy.azurecr.io", candidates).registration_id == "teams"
    assert select("teamy.azurecr.io", candidates, scope="tools").registration_id == "tools"
    assert select("zzz.azurecr.io", candidates).registration_id == "any"
    scoped = [("*.azurecr.io/team-a", "a"), ("*.azurecr.io/team-b", "b")]
    with pytest.raises(AmbiguousRegistry, match="team-a"):
        select("myreg.azurecr.io", scoped)
    assert select("myreg.azurecr.io", scoped, scope="myreg.azurecr.io/team-b/app").registration_id == "b"


def test_an_equally_specific_overlapping_pattern_is_refused_naming_the_other():
    add_basic("team-star", "team*.example.com", "robot", "pw")
    result = call_helper("registry", "add", "star-team", "--prefix", "*team.example.com", "--type", "basic",
                        "--username", "robot", "--password-stdin", stdin="pw")
    assert_one_line_error(result, "*team.example.com can match the same hosts as team*.example.com",
                          "registration 'team-star'")
    add_basic("more-literal", "teams*.example.com", "robot", "pw")  # more literal: it wins where both match
    add_basic("other-path", "*team.example.com/tools", "robot", "pw")  # another path: it wins below it
    add_basic("no-overlap", "*.other.example.com", "robot", "pw")


def test_list_leaves_patterns_out_and_resolve_names_the_pattern():
    add_basic("any-acr", "*.azurecr.io", "robot", "pattern-pw-1")
    add_basic("plain", "registry.example.com", "robot", "plain-pw-1")
    assert json.loads(call_helper("list").out) == {"registry.example.com": "robot"}
    resolved = json.loads(call_helper("resolve", "myreg.azurecr.io/team/app:1", "--json").out)
    assert resolved["id"] == "any-acr" and resolved["prefix"] == "*.azurecr.io"
    assert "pattern *.azurecr.io matches myreg.azurecr.io" in resolved["reason"]
    got = json.loads(call_helper("get", stdin="myreg.azurecr.io").out)
    assert got == {"ServerURL": "myreg.azurecr.io", "Username": "robot", "Secret": "pattern-pw-1"}
    assert "*.azurecr.io" in call_helper("kubelet-config").out
    configured = call_helper("configure-docker")
    assert configured.code == 0 and "*.azurecr.io cannot go into credHelpers" in configured.err


def per_account_ecr() -> LocalServer:
    """ECR's GetAuthorizationToken, minting a password that names the account and region asked for."""

    def route(method, path, headers, body):
        account = (json.loads(body or b"{}").get("registryIds") or ["?"])[0]
        region = headers.get("Host", "").split(".")[1] if headers.get("Host", "").startswith("api.") else "?"
        token = base64.b64encode(f"AWS:pw-{account}-{region}".encode()).decode()
        return json_answer({"authorizationData": [{"authorizationToken": token, "expiresAt": time.time() + 43200,
                                                   "proxyEndpoint": f"https://{account}.dkr.ecr.x.amazonaws.com"}]},
                           headers={"Content-Type": "application/x-amz-json-1.1"})

    return LocalServer(route)


def test_one_ecr_pattern_serves_every_account_with_its_own_token():
    api = per_account_ecr()
    try:
        result = call_helper("registry", "add", "all-ecr", "--prefix", ECR_PATTERN, "--type", "ecr", "--endpoint-url",
                            api.url, "--access-key-id", "AKIAIOSFODNN7EXAMPLE", "--secret-access-key-stdin", stdin="s")
        assert result.code == 0, result
        hosts = {"111111111111.dkr.ecr.eu-west-1.amazonaws.com": "pw-111111111111",
                 "222222222222.dkr.ecr.us-east-2.amazonaws.com": "pw-222222222222"}
        for _ in range(2):
            for host, password in hosts.items():
                answer = json.loads(call_helper("get", stdin=host).out)
                assert answer["Username"] == "AWS" and answer["Secret"].startswith(password), answer
        assert api.count() == 2  # one fetch per account, then each from the cache
        creds = json.loads(call_helper("creds", "222222222222.dkr.ecr.us-east-2.amazonaws.com/app").out)
        assert creds["registry"] == "222222222222.dkr.ecr.us-east-2.amazonaws.com"
        assert creds["password"].startswith("pw-222222222222")
        assert api.count() == 2
        assert_one_line_error(call_helper("get", stdin="123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example"),
                              "credentials not found", stream="out")
    finally:
        api.stop()


@pytest.mark.parametrize("extra, fragment", [
    (("--region", "eu-west-1"), "drop --registry-id and --region"),
    (("--registry-id", "123456789012"), "drop --registry-id and --region"),
])
def test_an_ecr_pattern_takes_account_and_region_from_the_host(extra, fragment):
    result = call_helper("registry", "add", "p", "--prefix", ECR_PATTERN, "--type", "ecr", *extra)
    assert_one_line_error(result, fragment)
    result = call_helper("registry", "add", "p", "--prefix", "*.example.com", "--type", "ecr")
    assert_one_line_error(result, "does not match ECR hosts")


@pytest.mark.parametrize("pattern", ["123*.dkr.ecr.*.amazonaws.com", "*.dkr.ecr.eu-*.amazonaws.com",
                                     "1*2.dkr.ecr*.*.amazonaws.com.cn"])
def test_a_narrowed_ecr_pattern_is_accepted(pattern):
    result = call_helper("registry", "add", "some-ecr", "--prefix", pattern, "--type", "ecr")
    assert result.code == 0, result


@pytest.mark.parametrize("pattern", ["1234567890123*.dkr.ecr.*.amazonaws.com", "*.dkr.gcr.*.amazonaws.com",
                                     "x*.dkr.ecr.*.amazonaws.com"])
def test_an_ecr_pattern_that_matches_no_ecr_host_is_refused(pattern):
    assert_one_line_error(call_helper("registry", "add", "p", "--prefix", pattern, "--type", "ecr"),
                          "does not match ECR hosts")


def test_the_kubelet_gets_a_pattern_s_credential_under_the_host_it_served():
    from .kubelet import exec_plugin

    add_basic("any-acr", "*.azurecr.io", "robot", "kubelet-pattern-pw")
    image = "myreg.azurecr.io/team/app:1"
    answer = exec_plugin(image)
    assert list(answer.auth) == ["myreg.azurecr.io"]
    assert answer.credential_for(image) == ("robot", "kubelet-pattern-pw")
    assert answer.credential_for("other.azurecr.io/team/app:1") is None


# A refused pattern is not quoted back either (issue 19 §5): the message names the rule it breaks.
MARKER = "s3cr3t-marker-7f3a"


@pytest.mark.parametrize("text, fragments", [
    (f"registry.example.com/{MARKER}*", ["the prefix has '*' in its path"]),
    (f"[::{MARKER}*]:5000", ["IPv6"]),
    (f"*.example.com:{MARKER}*", ["the prefix has '*' in its port"]),
    (f"*{MARKER}!.example.com", ["invalid pattern host", "a character other than"]),
    (f"*.{MARKER}..example.com", ["invalid pattern host", "empty"]),
    (f"*{MARKER}**.example.com", ["invalid pattern host", "'**'"]),
    (f"*.{MARKER}-.example.com", ["start or end with '-'"]),
    (f"{MARKER}.*", ["literal domain after its last '*'"]),
    (f"*.{MARKER}", ["top-level domain the Public Suffix List does not know"]),
    (f"*.{MARKER}.compute.amazonaws.com", ["below the public suffix *.compute.amazonaws.com "]),  # the rule as listed
    (f"*.example.com:{MARKER}", ["the prefix is not a registry host[:port]", "port"]),
    (f"*{MARKER}{'a' * 60}.example.com", ["longer than the 63 characters DNS allows"]),
    (f"*.example.com/team/{MARKER}:1", ["the prefix on *.example.com carries a tag or digest"]),
    (f"*.example.com/{MARKER.upper()}", ["the prefix on *.example.com has upper-case letters"]),
    (f"*.example.com/{MARKER}//x", ["the prefix on *.example.com", "repository path"]),
])
def test_a_refused_pattern_is_not_quoted_back(text, fragments):
    with pytest.raises(InvalidInput) as caught:
        parse_prefix(text)
    assert MARKER not in caught.value.message.lower(), caught.value.message
    for fragment in fragments:
        assert fragment in caught.value.message, (fragment, caught.value.message)
