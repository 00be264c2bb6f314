"""The cache-hit path (fastpath.py): the same answer as the full protocol path, byte for byte, and none of the
heavy imports; anything it cannot answer goes to the full path, which explains."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from docker_credential_idp import fastpath, protocol
from docker_credential_idp.paths import home_dir
from docker_credential_idp.service import CredentialService
from docker_credential_idp.vault import Vault

from .conftest import add_basic, assert_one_line_error, run_helper
from .servers import ecr_api_endpoint
from .test_token_cache import HEAVY_MODULES, imports_of_get

HOST = "registry.example.com"


def service() -> CredentialService:
    return CredentialService(Vault(home_dir(os.environ), os.environ), os.environ)


def full_answer(stdin: bytes) -> bytes:
    out, status = protocol.handle("get", stdin, service)
    assert status == 0, out
    return out


text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(username=text, secret=text, suffix=st.sampled_from(["", "\n", "  \r\n", "/"]))
def test_fast_answer_is_the_protocol_answer(username, secret, suffix):
    service().store(HOST, username, secret)
    stdin = f"https://{HOST}{suffix}".encode()
    expected = full_answer(stdin)  # the first get fills the answer cache
    assert fastpath.answer(stdin, os.environ) == expected
    assert json.loads(expected)["Secret"] == secret


def test_static_and_cached_ecr_hits_load_nothing_heavy():
    add_basic("static", HOST, "robot", "pw")
    api = ecr_api_endpoint("ecr-fast-password")
    try:
        ecr_host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
        result = run_helper("registry", "add", "ecr", "--prefix", ecr_host, "--type", "ecr", "--endpoint-url", api.url,
                            "--access-key-id", "AKIAIOSFODNN7EXAMPLE", "--secret-access-key-stdin", stdin="s")
        assert result.code == 0, result
        for host in (HOST, ecr_host):
            assert run_helper("get", stdin=host).code == 0  # fills the cache through the full path
            imported = imports_of_get(host)
            assert "docker_credential_idp.fastpath" in imported
            assert imported & HEAVY_MODULES == set(), host
        assert api.count() == 1
    finally:
        api.stop()


def test_what_the_cache_cannot_answer_goes_to_the_full_path(tmp_path):
    env = os.environ
    assert fastpath.answer(HOST.encode(), env) is None  # no vault yet
    assert_one_line_error(run_helper("get", stdin=HOST), "credentials not found", stream="out")
    add_basic("a", f"{HOST}/team-a", "robot", "pw")
    add_basic("b", f"{HOST}/team-b", "robot", "pw")
    assert fastpath.answer(HOST.encode(), env) is None  # ambiguous: the full path names the candidates
    assert_one_line_error(run_helper("get", stdin=HOST), "DOCKER_CREDENTIAL_IDP_SCOPE", stream="out")
    assert fastpath.answer(b"\xff\xfe", env) is None
    assert fastpath.answer(b"", env) is None


def test_changed_registration_is_not_answered_from_its_old_entry():
    add_basic("r", HOST, "robot", "old-password")
    assert json.loads(run_helper("get", stdin=HOST).out)["Secret"] == "old-password"
    result = run_helper("registry", "add", "r", "--prefix", HOST, "--type", "basic", "--username", "robot",
                        "--password-stdin", "--replace", stdin="new-password")
    assert result.code == 0, result
    assert fastpath.answer(HOST.encode(), os.environ) is None
    assert json.loads(run_helper("get", stdin=HOST).out)["Secret"] == "new-password"
    assert b"new-password" in fastpath.answer(HOST.encode(), os.environ)


def test_broken_answer_cache_is_ignored_not_fatal():
    add_basic("r", HOST, "robot", "pw")
    assert run_helper("get", stdin=HOST).code == 0
    tokens = Path(os.environ["DOCKER_CREDENTIAL_IDP_HOME"]) / "tokens.bin"
    tokens.write_bytes(tokens.read_bytes()[:-3] + b"xyz")
    assert fastpath.answer(HOST.encode(), os.environ) is None
    result = run_helper("get", stdin=HOST)
    assert result.code == 0 and json.loads(result.out)["Secret"] == "pw"


def test_a_vault_changed_on_disk_is_read_in_full_again():
    """The cache-hit path does not decrypt the registrations; any change to the file sends the next get through the
    full path, which authenticates every byte."""
    add_basic("r", HOST, "robot", "pw")
    assert run_helper("get", stdin=HOST).code == 0
    assert fastpath.answer(HOST.encode(), os.environ) is not None
    path = Path(os.environ["DOCKER_CREDENTIAL_IDP_HOME"]) / "vault.bin"
    data = bytearray(path.read_bytes())
    data[-40] ^= 0x01  # inside the registrations, far from the header
    path.write_bytes(bytes(data))
    assert fastpath.answer(HOST.encode(), os.environ) is None
    assert_one_line_error(run_helper("get", stdin=HOST), "integrity check", stream="out")


def test_parallel_cold_callers_wait_in_the_light_path_while_one_fetches():
    api = ecr_api_endpoint("ecr-cold-password")
    api.delay = 0.5  # every caller arrives while the one fetch is in flight
    try:
        ecr_host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
        result = run_helper("registry", "add", "ecr", "--prefix", ecr_host, "--type", "ecr", "--endpoint-url", api.url,
                            "--access-key-id", "AKIAIOSFODNN7EXAMPLE", "--secret-access-key-stdin", stdin="s")
        assert result.code == 0, result
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(lambda _: run_helper("get", stdin=ecr_host, env={"PYTHONPROFILEIMPORTTIME": "1"}),
                                    range(16)))
        assert all(r.code == 0 and json.loads(r.out)["Secret"] == "ecr-cold-password" for r in results), results
        full_path = [r for r in results if "docker_credential_idp.service" in r.err]
        assert len(full_path) == 1 and api.count() == 1  # one caller loaded the service and fetched
    finally:
        api.stop()


@settings(max_examples=200, deadline=None)
@given(timeout=st.one_of(st.none(), st.floats(0.5, 3600).map(lambda f: round(f, 3))),
       values=st.lists(st.text(max_size=30), max_size=4))
def test_record_timeout_reads_only_the_setting(timeout, values):
    from docker_credential_idp.model import Registration, Secrets
    from docker_credential_idp.vault import record_text, record_timeout

    settings_ = {f"s{i}": v for i, v in enumerate(values)} | {"note": '"timeout":99,'}
    if timeout is not None:
        settings_["timeout"] = timeout
    registration = Registration("r", "registry.example.com", "basic", settings_,
                                Secrets({"password": '{"timeout":7}'}))
    assert record_timeout(record_text(registration)) == timeout


def test_with_debug_the_cache_hit_path_says_why_it_gave_up():
    add_basic("a", f"{HOST}/team-a", "robot", "debug-pw-a")
    add_basic("b", f"{HOST}/team-b", "robot", "debug-pw-b")
    quiet = run_helper("get", stdin=HOST)
    assert "debug:" not in quiet.err
    told = run_helper("get", stdin=HOST, env={"DOCKER_CREDENTIAL_IDP_DEBUG": "1"})
    reasons = [line for line in told.err.splitlines() if "debug: the cache-hit path gave up" in line]
    assert len(reasons) == 1 and "resolves to no single registration" in reasons[0], told.err
    assert "debug-pw" not in told.err


def test_a_passphrase_vault_derives_its_key_once_per_call(monkeypatch):
    """A cold get reads the vault on the cache-hit path, to resolve, and in the service: scrypt (about 100 ms) once."""
    import hashlib

    from .test_breaking import call

    monkeypatch.setenv("DOCKER_CREDENTIAL_IDP_PASSPHRASE", "correct horse battery staple")
    add_basic("r", HOST, "robot", "passphrase-pw-1")
    from docker_credential_idp import keysource

    keysource._derived.clear()  # a new process
    derivations = []
    real = hashlib.scrypt
    monkeypatch.setattr(hashlib, "scrypt", lambda *a, **k: derivations.append(1) or real(*a, **k))
    status, out, _ = call("get", stdin=HOST.encode())
    assert status == 0 and json.loads(out)["Secret"] == "passphrase-pw-1"
    assert len(derivations) == 1
