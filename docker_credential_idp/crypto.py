"""AES-256-GCM and SHA-256, the only primitives this program uses, behind a few functions so the backend can change
in one place.

The backend is the system's OpenSSL libcrypto through ctypes when it can be loaded, else the `cryptography`
package. Both are OpenSSL's AES-GCM; the difference is start-up cost: loading cryptography's bindings takes about
15 ms, which a cache-hit `get` (run on every pull) cannot afford, while ctypes and libcrypto take about 4 ms.
tests/test_crypto.py checks the two backends against each other.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # ctypes loads only when the libcrypto backend does
if TYPE_CHECKING:
    import ctypes

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
BACKEND_VARIABLE = "DOCKER_CREDENTIAL_IDP_CRYPTO"  # "cryptography" forces the fallback (tests, odd systems)
# Only versioned Linux names: on macOS an unversioned libcrypto.dylib is Apple's stub, which aborts the process
# when loaded, and every docker pull would die; there, and anywhere else, `cryptography` serves.
_LIBCRYPTO_NAMES = {"linux": ("libcrypto.so.3", "libcrypto.so.1.1")}


def libcrypto_names(platform: str) -> tuple[str, ...]:
    """The libcrypto names known safe to load through ctypes on `platform` (sys.platform)."""
    return _LIBCRYPTO_NAMES.get("linux" if platform.startswith("linux") else platform, ())
_EVP_CTRL_GCM_GET_TAG = 0x10
_EVP_CTRL_GCM_SET_TAG = 0x11


class DecryptionFailed(Exception):
    """Wrong key, or the ciphertext, nonce or associated data were altered."""


def random_key() -> bytes:
    return os.urandom(KEY_BYTES)


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


class _Libcrypto:
    """AES-256-GCM through OpenSSL's EVP interface, SHA-256 through its one-shot function."""

    name = "libcrypto"

    def __init__(self, library: ctypes.CDLL) -> None:
        import ctypes

        self._ctypes = ctypes
        self._lib = lib = library
        pointer, c_int, buffer = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
        int_pointer = ctypes.POINTER(c_int)
        signatures = {
            "EVP_CIPHER_CTX_new": ([], pointer),
            "EVP_CIPHER_CTX_free": ([pointer], None),
            "EVP_aes_256_gcm": ([], pointer),
            "EVP_EncryptInit_ex": ([pointer, pointer, pointer, buffer, buffer], c_int),
            "EVP_DecryptInit_ex": ([pointer, pointer, pointer, buffer, buffer], c_int),
            "EVP_EncryptUpdate": ([pointer, pointer, int_pointer, buffer, c_int], c_int),
            "EVP_DecryptUpdate": ([pointer, pointer, int_pointer, buffer, c_int], c_int),
            "EVP_EncryptFinal_ex": ([pointer, pointer, int_pointer], c_int),
            "EVP_DecryptFinal_ex": ([pointer, pointer, int_pointer], c_int),
            "EVP_CIPHER_CTX_ctrl": ([pointer, c_int, c_int, pointer], c_int),
            "SHA256": ([buffer, ctypes.c_size_t, pointer], pointer),
        }
        for function, (arguments, result) in signatures.items():
            entry = getattr(lib, function)
            entry.argtypes, entry.restype = arguments, result
        self._cipher = lib.EVP_aes_256_gcm()

    def _run(self, encrypting: bool, key: bytes, nonce: bytes, data: bytes, associated: bytes, tag: bytes) -> bytes:
        ctypes, lib = self._ctypes, self._lib
        if len(key) != KEY_BYTES or len(nonce) != NONCE_BYTES:
            raise ValueError("AES-256-GCM takes a 32-byte key and a 12-byte nonce")
        init, update, final = ((lib.EVP_EncryptInit_ex, lib.EVP_EncryptUpdate, lib.EVP_EncryptFinal_ex) if encrypting
                               else (lib.EVP_DecryptInit_ex, lib.EVP_DecryptUpdate, lib.EVP_DecryptFinal_ex))
        context = lib.EVP_CIPHER_CTX_new()
        if not context:
            raise MemoryError("EVP_CIPHER_CTX_new failed")
        try:
            length = ctypes.c_int(0)
            output = ctypes.create_string_buffer(len(data) + 16)
            ok = init(context, self._cipher, None, key, nonce) == 1
            if ok and associated:
                ok = update(context, None, ctypes.byref(length), associated, len(associated)) == 1
            ok = ok and update(context, output, ctypes.byref(length), data, len(data)) == 1
            written = length.value
            if ok and not encrypting:
                tag_buffer = ctypes.create_string_buffer(tag, TAG_BYTES)
                ok = lib.EVP_CIPHER_CTX_ctrl(context, _EVP_CTRL_GCM_SET_TAG, TAG_BYTES, tag_buffer) == 1
            # For decryption, Final is where the tag is checked: anything but 1 means tampered or the wrong key.
            ok = ok and final(context, ctypes.byref(output, written), ctypes.byref(length)) == 1
            if not ok:
                if encrypting:
                    raise RuntimeError("OpenSSL failed to encrypt")
                raise DecryptionFailed()
            result: bytes = output.raw[: written + length.value]
            if encrypting:
                tag_out = ctypes.create_string_buffer(TAG_BYTES)
                if lib.EVP_CIPHER_CTX_ctrl(context, _EVP_CTRL_GCM_GET_TAG, TAG_BYTES, tag_out) != 1:
                    raise RuntimeError("OpenSSL failed to produce the GCM tag")
                result += tag_out.raw
            return result
        finally:
            lib.EVP_CIPHER_CTX_free(context)

    def encrypt(self, key: bytes, nonce: bytes, plaintext: bytes, associated: bytes) -> bytes:
        return self._run(True, key, nonce, plaintext, associated, b"")

    def decrypt(self, key: bytes, nonce: bytes, ciphertext: bytes, associated: bytes) -> bytes:
        if len(ciphertext) < TAG_BYTES:
            raise DecryptionFailed()
        return self._run(False, key, nonce, ciphertext[:-TAG_BYTES], associated, ciphertext[-TAG_BYTES:])

    def sha256(self, data: bytes) -> bytes:
        digest = self._ctypes.create_string_buffer(32)
        self._lib.SHA256(data, len(data), digest)
        return digest.raw


class _Cryptography:
    name = "cryptography"

    def encrypt(self, key: bytes, nonce: bytes, plaintext: bytes, associated: bytes) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        return AESGCM(key).encrypt(nonce, plaintext, associated)

    def decrypt(self, key: bytes, nonce: bytes, ciphertext: bytes, associated: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            return AESGCM(key).decrypt(nonce, ciphertext, associated)
        except InvalidTag:
            raise DecryptionFailed() from None

    def sha256(self, data: bytes) -> bytes:
        import hashlib

        return hashlib.sha256(data).digest()


_backend: _Libcrypto | _Cryptography | None = None


def load_libcrypto() -> _Libcrypto | None:
    """libcrypto with every function we call, or None (not found, too old, or missing a symbol)."""
    try:
        import ctypes
    except ImportError:
        return None
    import sys

    for name in libcrypto_names(sys.platform):
        try:
            return _Libcrypto(ctypes.CDLL(name))
        except (OSError, AttributeError):
            continue
    return None


def backend() -> _Libcrypto | _Cryptography:
    global _backend
    if _backend is None:
        forced = os.environ.get(BACKEND_VARIABLE) == "cryptography"
        _backend = (None if forced else load_libcrypto()) or _Cryptography()
    return _backend


def encrypt(key: bytes, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """Ciphertext with its tag appended. Never reuse a nonce with the same key: take each from new_nonce()."""
    return backend().encrypt(key, nonce, plaintext, associated_data)


def decrypt(key: bytes, nonce: bytes, ciphertext: bytes, associated_data: bytes) -> bytes:
    return backend().decrypt(key, nonce, ciphertext, associated_data)


def sha256(data: bytes) -> bytes:
    return backend().sha256(data)
