"""vault.bin's bytes: its header, the wrapping of its data key, the sealing of its payload.

Layout (all integers one byte):

    magic "IDPVAULT" | version | key kind | scrypt log2n, r, p | serial[8] | salt[16] | key check[8]
    | wrap nonce[12] | wrapped data key[48] | payload nonce[12] | payload ciphertext + tag

(version 1 had no serial). A random data key encrypts the payload with AES-256-GCM; the key-encryption key (key
file, environment key or passphrase) wraps the data key. The whole header is authenticated as associated data, so
no byte of it can change unnoticed. What the payload says is vault_table's; this module only seals and opens it.
On the cache-hit path: `os` and the crypto backend only.
"""

from __future__ import annotations

import os

from . import crypto, keysource
from .errors import VaultError

TYPE_CHECKING = False  # typing itself is not imported: it costs a cache hit several ms
if TYPE_CHECKING:
    from typing import Mapping

MAGIC = b"IDPVAULT"
VERSION = 2  # 2 added the serial number; version 1 vaults are still read, and written back as version 2
READABLE_VERSIONS = (1, 2)
SERIAL_BYTES = 8
VAULT_FILE_NAME = "vault.bin"
LOCK_FILE_NAME = "vault.lock"  # held by every write of the home's vault files


def _layout(version: int) -> tuple[int, int, int, int]:
    """(end of the salt, end of the key check, end of the wrapped key, header size) for a format version."""
    params_end = len(MAGIC) + 1 + 1 + 3 + (SERIAL_BYTES if version >= 2 else 0) + 16  # ..., scrypt, serial, salt
    check_end = params_end + 8
    wrap_end = check_end + crypto.NONCE_BYTES + crypto.KEY_BYTES + crypto.TAG_BYTES
    return params_end, check_end, wrap_end, wrap_end + crypto.NONCE_BYTES


HEADER_BYTES = _layout(VERSION)[3]


def _key_check(kek: bytes) -> bytes:
    # Tells "wrong key" apart from "tampered file" without revealing anything about the key.
    return crypto.sha256(b"docker-credential-idp key check\0" + kek)[:8]


def _integrity_failed(where: str) -> VaultError:
    return VaultError(f"{where} failed its integrity check (tampered or corrupted); restore it from a backup")


class Sealed:
    """A parsed vault header plus its ciphertext."""

    def __init__(self, data: bytes, where: str) -> None:
        if len(data) <= len(MAGIC) or not data.startswith(MAGIC):
            raise VaultError(f"{where} is not a docker-credential-idp vault or is truncated; restore it from a backup")
        self.version = data[len(MAGIC)]
        if self.version not in READABLE_VERSIONS:
            raise VaultError(
                f"{where} has format version {self.version}, this docker-credential-idp reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}; use a matching docker-credential-idp release"
            )
        params_end, self.check_end, wrap_end, self.header_bytes = _layout(self.version)
        if len(data) < self.header_bytes + crypto.TAG_BYTES:
            raise VaultError(f"{where} is not a docker-credential-idp vault or is truncated; restore it from a backup")
        self.kind = data[len(MAGIC) + 1]
        if self.kind not in (keysource.RAW_KEY, keysource.PASSPHRASE):
            raise VaultError(f"{where} names an unknown key kind {self.kind}; restore it from a backup")
        offset = len(MAGIC) + 2
        self.params = keysource.ScryptParams(*data[offset : offset + 3])
        self.serial = int.from_bytes(data[offset + 3 : params_end - 16], "big")  # 0 for version 1
        self.salt = data[params_end - 16 : params_end]
        self.check = data[params_end : self.check_end]
        self.wrap_nonce = data[self.check_end : self.check_end + crypto.NONCE_BYTES]
        self.wrapped_key = data[self.check_end + crypto.NONCE_BYTES : wrap_end]
        self.payload_nonce = data[wrap_end : self.header_bytes]
        self.header = data[: self.header_bytes]
        self.where = where
        self._data = data

    def generation(self) -> str:
        # The serial grows with every write; a cryptographic digest of the whole file changes with any change to it,
        # which no edit can avoid (a CRC could be kept by an edit made for it).
        return f"{self.serial}.{crypto.sha256(self._data).hex()[:40]}"

    def unwrap(self, home: str | os.PathLike[str], env: Mapping[str, str]) -> tuple[bytes, str]:
        """(data key, key description): the key source checked against the header, then the data key unwrapped."""
        source = keysource.for_existing_vault(self.kind, home, env)
        if self.kind == keysource.PASSPHRASE:
            self.params.check(self.where)
        kek = source.kek(self.salt, self.params)
        if _key_check(kek) != self.check:
            raise VaultError(f"the {source.description} does not open {self.where}; use the key the vault was created "
                             "with")
        try:
            return crypto.decrypt(kek, self.wrap_nonce, self.wrapped_key, self._data[: self.check_end]), source.description
        except crypto.DecryptionFailed:
            raise _integrity_failed(self.where) from None

    def payload(self, data_key: bytes) -> str:
        """The payload's text; every byte of the file is authenticated here."""
        ciphertext = self._data[self.header_bytes :]  # a copy of the whole payload: made only when it is decrypted
        try:
            return crypto.decrypt(data_key, self.payload_nonce, ciphertext, self.header).decode()
        except (crypto.DecryptionFailed, UnicodeDecodeError):
            raise _integrity_failed(self.where) from None


def seal(source: keysource.KeySource, data_key: bytes, serial: int, payload: str) -> bytes:
    """A whole vault.bin: a header for `source` (a new salt for a passphrase) with `serial`, and the payload."""
    if source.kind == keysource.PASSPHRASE:
        salt, params = os.urandom(16), keysource.ScryptParams(*keysource.SCRYPT_DEFAULT)
    else:
        salt, params = bytes(16), keysource.ScryptParams(0, 0, 0)
    kek = source.kek(salt, params)
    prefix = MAGIC + bytes([VERSION, source.kind, *params]) + serial.to_bytes(SERIAL_BYTES, "big") + salt + _key_check(kek)
    wrap_nonce = crypto.new_nonce()
    header = prefix + wrap_nonce + crypto.encrypt(kek, wrap_nonce, data_key, prefix) + crypto.new_nonce()
    return header + crypto.encrypt(data_key, header[-crypto.NONCE_BYTES :], payload.encode("utf-8"), header)
