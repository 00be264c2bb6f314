"""AES-256-GCM, the one cipher this program uses, behind two functions so the backend can change in one place."""

from __future__ import annotations

import os

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


class DecryptionFailed(Exception):
    """Wrong key, or the ciphertext, nonce or associated data were altered."""


def random_key() -> bytes:
    return os.urandom(KEY_BYTES)


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


def encrypt(key: bytes, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """Ciphertext with its tag appended. Never reuse a nonce with the same key: take each from new_nonce()."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key).encrypt(nonce, plaintext, associated_data)


def decrypt(key: bytes, nonce: bytes, ciphertext: bytes, associated_data: bytes) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        return AESGCM(key).decrypt(nonce, ciphertext, associated_data)
    except InvalidTag:
        raise DecryptionFailed() from None
