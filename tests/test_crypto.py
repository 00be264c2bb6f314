"""The two crypto backends (OpenSSL's libcrypto through ctypes, and the cryptography package) are the same AES-GCM:
each opens what the other sealed, both refuse any change, and the vault opens under either."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docker_credential_idp import crypto

from .conftest import add_basic, run_helper

LIBCRYPTO = crypto.load_libcrypto()
CRYPTOGRAPHY = crypto._Cryptography()
pytestmark = pytest.mark.skipif(LIBCRYPTO is None, reason="no system libcrypto to compare with")


@settings(max_examples=200, deadline=None)
@given(key=st.binary(min_size=32, max_size=32), nonce=st.binary(min_size=12, max_size=12),
       plaintext=st.binary(max_size=4096), associated=st.binary(max_size=256))
def test_backends_agree_both_ways(key, nonce, plaintext, associated):
    sealed = LIBCRYPTO.encrypt(key, nonce, plaintext, associated)
    assert sealed == CRYPTOGRAPHY.encrypt(key, nonce, plaintext, associated)
    assert LIBCRYPTO.decrypt(key, nonce, sealed, associated) == plaintext
    assert CRYPTOGRAPHY.decrypt(key, nonce, sealed, associated) == plaintext
    assert LIBCRYPTO.sha256(plaintext) == CRYPTOGRAPHY.sha256(plaintext)


@settings(max_examples=200, deadline=None)
@given(plaintext=st.binary(max_size=512), associated=st.binary(max_size=64), data=st.data())
def test_libcrypto_refuses_every_change(plaintext, associated, data):
    key, nonce = os.urandom(32), os.urandom(12)
    sealed = bytearray(CRYPTOGRAPHY.encrypt(key, nonce, plaintext, associated))
    what = data.draw(st.sampled_from(["ciphertext", "associated", "key", "nonce", "truncate"]))
    if what == "ciphertext":
        index = data.draw(st.integers(0, len(sealed) - 1))
        sealed[index] ^= 1 << data.draw(st.integers(0, 7))
    elif what == "associated":
        associated = associated + b"\0"
    elif what == "key":
        key = bytes([key[0] ^ 1]) + key[1:]
    elif what == "nonce":
        nonce = bytes([nonce[0] ^ 1]) + nonce[1:]
    else:
        sealed = sealed[: data.draw(st.integers(0, len(sealed) - 1))]
    with pytest.raises(crypto.DecryptionFailed):
        LIBCRYPTO.decrypt(key, nonce, bytes(sealed), associated)


def test_vault_written_by_one_backend_opens_with_the_other():
    add_basic("r", "registry.example.com", "robot", "pw-both")
    forced = {crypto.BACKEND_VARIABLE: "cryptography"}
    for env in (forced, {}):
        result = run_helper("get", stdin="registry.example.com", env=env)
        assert result.code == 0 and json.loads(result.out)["Secret"] == "pw-both", result
    result = run_helper("registry", "add", "s", "--prefix", "other.example.com", "--type", "basic", "--username", "u",
                        "--password-stdin", stdin="pw-other", env=forced)
    assert result.code == 0, result
    assert json.loads(run_helper("get", stdin="other.example.com").out)["Secret"] == "pw-other"
