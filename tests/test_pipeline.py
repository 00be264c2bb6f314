"""The one `get` pipeline (pipeline.py): light until it must fetch, one fetch for many callers, each rule once."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from docker_credential_idp import crypto, protocol
from docker_credential_idp.model import Registration, Secrets
from docker_credential_idp.paths import home_dir
from docker_credential_idp.pipeline import GetPipeline
from docker_credential_idp.token_cache import CachedToken
from docker_credential_idp.vault import Vault
from docker_credential_idp.vault_table import PAYLOAD_HEADER

from .conftest import add_basic, assert_one_line_error, call_helper, run_helper
from .servers import ecr_api_endpoint, platform_creds_api
from .test_token_cache import HEAVY_MODULES, imports_of_get
from .tls import make_tls

HOST = "registry.example.com"
ECR_HOST = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"


def steps_of_get(server: str = HOST) -> tuple[str, list[str]]:
    """(the secret, the debug lines) of one in-process get: a new vault and pipeline, as in a new process."""
    lines: list[str] = []
    pipeline = GetPipeline(Vault(home_dir(os.environ), os.environ), os.environ, debug=lines.append)
    return pipeline.get(server).secret, lines


def from_cache(lines: list[str]) -> bool:
    return any("answered from the answer cache" in line for line in lines)


text = st.one_of(st.text(st.characters(max_codepoint=127), min_size=1, max_size=40),  # the translate path
                 st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40))


@settings(max_examples=200, deadline=None)
@given(server=text, username=text, secret=text)
def test_the_get_answer_is_what_json_dumps_writes(server, username, secret):
    """render_get writes without loading json (ASCII through a translate table, the rest through _json); the
    bytes are the same."""
    expected = (json.dumps({"ServerURL": server, "Username": username, "Secret": secret}) + "\n").encode()
    assert protocol.render_get(server, CachedToken(username, secret, None, 0.0)) == expected


def test_static_and_cached_ecr_hits_load_nothing_heavy():
    add_basic("static", HOST, "robot", "pw")
    api = ecr_api_endpoint("ecr-fast-password")
    try:
        result = run_helper("registry", "add", "ecr", "--prefix", ECR_HOST, "--type", "ecr", "--endpoint-url", api.url,
                            "--access-key-id", "AKIAIOSFODNN7EXAMPLE", "--secret-access-key-stdin", stdin="s")
        assert result.code == 0, result
        for host in (HOST, ECR_HOST):
            assert run_helper("get", stdin=host).code == 0  # a cold get: fetches, caches
            imported = imports_of_get(host)
            assert "docker_credential_idp.pipeline" in imported  # the profile did record our imports
            assert imported & (HEAVY_MODULES | {"docker_credential_idp.fetching"}) == set(), host
        assert api.count() == 1
    finally:
        api.stop()


# What a cold fetch of a `script` or `platform` registration never needs (issue 22 §1; docs/performance.md): urllib's
# client brings http.client, email and tempfile; dataclasses brings inspect and ast; the rest are typing, json and
# what only some answers need (datetime for an ISO expiry, ipaddress and urllib.parse for a registry add's checks,
# the idna codec for a non-ASCII host). A `script` fetch does not load the HTTP client, ssl or socket either.
UNUSED_ON_A_COLD_FETCH = frozenset({
    "urllib.request", "urllib.error", "urllib.parse", "http.client", "email", "email.parser", "tempfile",
    "dataclasses", "inspect", "ast", "typing", "json", "datetime", "ipaddress", "encodings.idna",
})


def test_cold_script_and_platform_fetches_load_only_what_they_use(tmp_path):
    ca, cert, key = make_tls(tmp_path / "tls")
    api = platform_creds_api(token="platform-token-7", org="acme", tls=(cert, key),
                             registries={"team": {"username": "robot", "password": "platform-pw-7"}})
    try:
        result = call_helper("registry", "add", "s", "--prefix", "script.example.com", "--type", "script",
                             "--script-stdin", stdin="echo u:script-pw-7")
        assert result.code == 0, result
        result = call_helper("registry", "add", "p", "--prefix", HOST, "--type", "platform", "--url", api.url, "--org",
                             "acme", "--registry-id", "team", "--token-stdin", "--ca-file", str(ca),
                             stdin="platform-token-7")
        assert result.code == 0, result
        script = imports_of_get("script.example.com")  # nothing cached: each fetches
        platform = imports_of_get(HOST)
        assert api.count() == 1
        for imported in (script, platform):
            assert "docker_credential_idp.fetching" in imported  # the profile did record a fetch
            assert imported & UNUSED_ON_A_COLD_FETCH == set()
        # (importlib.import_module, which loads a provider, is not in the profile; what the provider imports is)
        assert "subprocess" in script and script & {"ssl", "socket", "docker_credential_idp.httpclient"} == set()
        assert {"ssl", "docker_credential_idp.httpclient", "docker_credential_idp.platform_api"} <= platform
    finally:
        api.stop()


def test_no_vault_and_an_ambiguous_host_are_one_line_each():
    assert_one_line_error(call_helper("get", stdin=HOST), "credentials not found", stream="out")
    add_basic("a", f"{HOST}/team-a", "robot", "pw")
    add_basic("b", f"{HOST}/team-b", "robot", "pw")
    assert_one_line_error(call_helper("get", stdin=HOST), "DOCKER_CREDENTIAL_IDP_SCOPE", stream="out")


def test_a_cache_hit_decrypts_no_registration():
    """The answer cache is keyed by the vault's generation (its serial and a digest of the whole file), so a hit
    needs the data key but not the registrations: 10,000 of them would be 3.5 MB to decrypt on every pull."""
    add_basic("r", HOST, "robot", "hit-pw-1")
    for expect_hit in (False, True):
        vault = Vault(home_dir(os.environ), os.environ)
        lines: list[str] = []
        assert GetPipeline(vault, os.environ, debug=lines.append).get(HOST).secret == "hit-pw-1"
        opened = vault.open()
        assert opened is not None and from_cache(lines) is expect_hit and opened.decrypted is not expect_hit


def test_a_changed_registration_is_not_answered_from_its_old_entry():
    add_basic("r", HOST, "robot", "old-password")
    assert steps_of_get()[0] == "old-password"
    secret, lines = steps_of_get()
    assert secret == "old-password" and from_cache(lines)
    result = call_helper("registry", "add", "r", "--prefix", HOST, "--type", "basic", "--username", "robot",
                        "--password-stdin", "--replace", stdin="new-password")
    assert result.code == 0, result
    secret, lines = steps_of_get()
    assert secret == "new-password" and not from_cache(lines)
    assert from_cache(steps_of_get()[1])


def test_a_broken_answer_cache_is_ignored_not_fatal():
    add_basic("r", HOST, "robot", "pw")
    assert call_helper("get", stdin=HOST).code == 0
    tokens = Path(os.environ["DOCKER_CREDENTIAL_IDP_HOME"]) / "tokens.bin"
    tokens.write_bytes(tokens.read_bytes()[:-3] + b"xyz")
    secret, lines = steps_of_get()
    assert secret == "pw" and not from_cache(lines)


def test_a_vault_changed_on_disk_fails_its_integrity_check_even_with_a_cached_answer():
    add_basic("r", HOST, "robot", "pw")
    assert call_helper("get", stdin=HOST).code == 0
    path = Path(os.environ["DOCKER_CREDENTIAL_IDP_HOME"]) / "vault.bin"
    data = bytearray(path.read_bytes())
    data[-40] ^= 0x01  # inside the registrations, far from the header
    path.write_bytes(bytes(data))
    assert_one_line_error(call_helper("get", stdin=HOST), "integrity check", stream="out")


def test_parallel_cold_callers_wait_for_one_fetch_without_loading_the_providers():
    api = ecr_api_endpoint("ecr-cold-password")
    api.delay = 0.5  # every caller arrives while the one fetch is in flight
    try:
        result = run_helper("registry", "add", "ecr", "--prefix", ECR_HOST, "--type", "ecr", "--endpoint-url", api.url,
                            "--access-key-id", "AKIAIOSFODNN7EXAMPLE", "--secret-access-key-stdin", stdin="s")
        assert result.code == 0, result
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(lambda _: run_helper("get", stdin=ECR_HOST, env={"PYTHONPROFILEIMPORTTIME": "1"}),
                                    range(16)))
        assert all(r.code == 0 and json.loads(r.out)["Secret"] == "ecr-cold-password" for r in results), results
        fetched = [r for r in results if "docker_credential_idp.fetching" in r.err]
        assert len(fetched) == 1 and api.count() == 1  # one caller loaded the providers and fetched
    finally:
        api.stop()


def test_the_fetch_timeout_is_a_vault_column_with_one_rule():
    """The lock wait derives from the registration's fetch timeout, which the vault stores beside the record:
    --timeout when given, else the type's default (script 30 s, others 10 s), on every path."""
    add_basic("plain", f"{HOST}/plain", "robot", "pw")
    add_basic("quick", f"{HOST}/quick", "robot", "pw", "--timeout", "4.5")
    result = call_helper("registry", "add", "slow", "--prefix", f"{HOST}/slow", "--type", "script",
                        "--script-stdin", stdin="echo user:pw")
    assert result.code == 0, result
    vault = Vault(home_dir(os.environ), os.environ)
    columns = {line.id: line.fetch_timeout for line in vault.lines_on_host(HOST)}
    assert columns == {"plain": 10.0, "quick": 4.5, "slow": 30.0}
    assert {r.id: r.fetch_timeout for r in vault.registrations().values()} == columns
    for path, registration_id in (("plain", "plain"), ("slow", "slow")):
        pipeline = GetPipeline(Vault(home_dir(os.environ), os.environ), os.environ)
        assert pipeline.resolve(f"{HOST}/{path}/app").fetch_timeout == columns[registration_id]


@settings(max_examples=100, deadline=None)
@given(timeout=st.one_of(st.none(), st.floats(0.5, 3600).map(lambda f: round(f, 3))),
       values=st.lists(st.text(max_size=30), max_size=4), kind=st.sampled_from(["basic", "script", "platform"]))
def test_the_column_is_the_record_s_own_figure(timeout, values, kind):
    from docker_credential_idp.vault_table import format_table, lines_on_host

    settings_ = {f"s{i}": v for i, v in enumerate(values)} | {"note": '"timeout":99,\t\n'}
    if timeout is not None:
        settings_["timeout"] = timeout
    registration = Registration("r", HOST, kind, settings_, Secrets({"password": '{"timeout":7}\t'}))
    [line] = lines_on_host(format_table({"r": registration}), HOST)
    assert line.fetch_timeout == registration.fetch_timeout == (timeout or (30.0 if kind == "script" else 10.0))


def rewrite_as_format_2(home: Path) -> None:
    """The vault as an earlier release wrote it: no timeout column, format line 2."""
    vault = Vault(home, os.environ)
    opened = vault.open()
    assert opened is not None
    rows = [line.split("\t") for line in opened.text.splitlines()[1:]]
    text = "docker-credential-idp registrations 2\n" + "".join(f"{p}\t{i}\t{record}\n" for p, i, _, record in rows)
    data = Path(vault.path).read_bytes()
    sealed_header = data[: len(data) - len(opened.text.encode()) - crypto.TAG_BYTES]
    ciphertext = crypto.encrypt(opened.data_key, sealed_header[-crypto.NONCE_BYTES :], text.encode(), sealed_header)
    Path(vault.path).write_bytes(sealed_header + ciphertext)


def test_a_format_2_vault_is_read_and_written_back_as_format_3():
    add_basic("r", HOST, "robot", "format-2-pw", "--timeout", "7")
    home = home_dir(os.environ)
    rewrite_as_format_2(home)
    opened = Vault(home, os.environ).open()
    assert opened is not None and opened.text.startswith("docker-credential-idp registrations 2\n")
    assert json.loads(call_helper("get", stdin=HOST).out)["Secret"] == "format-2-pw"
    assert [line.fetch_timeout for line in Vault(home, os.environ).lines_on_host(HOST)] == [7.0]
    add_basic("other", "other.example.com", "robot", "pw")
    opened = Vault(home, os.environ).open()
    assert opened is not None and opened.text.startswith(PAYLOAD_HEADER)
    assert json.loads(call_helper("get", stdin=HOST).out)["Secret"] == "format-2-pw"


def test_with_debug_get_says_which_step_answered_and_never_a_secret():
    add_basic("r", HOST, "robot", "debug-pw-1")
    quiet = call_helper("get", stdin=HOST)
    assert quiet.code == 0 and "debug:" not in quiet.err
    cold = call_helper("get", stdin=HOST, env={"DOCKER_CREDENTIAL_IDP_DEBUG": "1"})
    warm = call_helper("get", stdin=HOST, env={"DOCKER_CREDENTIAL_IDP_DEBUG": "1"})
    assert "answered from the answer cache" in cold.err and "fetching" not in cold.err  # the quiet get cached it
    call_helper("cache", "clear")
    fetched = call_helper("get", stdin=HOST, env={"DOCKER_CREDENTIAL_IDP_DEBUG": "1"})
    assert "from the vault's lines" in fetched.err and "fetching from the source of registration 'r'" in fetched.err
    assert "answered from the answer cache" in warm.err
    assert "debug-pw" not in cold.err + warm.err + fetched.err


def test_a_passphrase_vault_derives_its_key_once_per_call(monkeypatch):
    """A cold get reads and opens the vault once, to resolve and to fetch: scrypt (about 100 ms) runs once."""
    import hashlib

    from .conftest import call_main

    monkeypatch.setenv("DOCKER_CREDENTIAL_IDP_PASSPHRASE", "correct horse battery staple")
    add_basic("r", HOST, "robot", "passphrase-pw-1")
    from docker_credential_idp import keysource
    from docker_credential_idp import vault as vault_module

    keysource._derived.clear()  # a new process
    derivations, reads = [], []
    real_scrypt, real_open = hashlib.scrypt, vault_module.open_payload
    monkeypatch.setattr(hashlib, "scrypt", lambda *a, **k: derivations.append(1) or real_scrypt(*a, **k))
    monkeypatch.setattr(vault_module, "open_payload", lambda *a, **k: reads.append(1) or real_open(*a, **k))
    status, out, _ = call_main("get", stdin=HOST.encode())
    assert status == 0 and json.loads(out)["Secret"] == "passphrase-pw-1"
    assert len(derivations) == 1 and len(reads) == 1


def test_malformed_json_in_a_process_that_never_imported_json_is_a_value_error():
    """jsontext.loads runs _json's scanner without importing json; the scanner reports malformed input through
    json.decoder, so in a process where nothing imported json (a real `get`) it must still raise json's ValueError,
    not a SystemError from the C scanner. In-process tests have json imported and cannot see this."""
    import subprocess
    import sys

    program = ("import sys\nfrom docker_credential_idp import jsontext\nassert 'json' not in sys.modules\n"
               "for text in ('{not json', '{\"a\": 1', '[1,]', '\"open'):\n"
               "    try:\n        jsontext.loads(text)\n    except ValueError as error:\n"
               "        print(type(error).__name__)\n")
    result = subprocess.run([sys.executable, "-I", "-c", program], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["JSONDecodeError"] * 4
