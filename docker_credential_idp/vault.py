"""The encrypted vault: one file holding every registration and its secrets.

Layout (all integers one byte):

    magic "IDPVAULT" | version | key kind | scrypt log2n, r, p | salt[16] | key check[8]
    | wrap nonce[12] | wrapped data key[48] | payload nonce[12] | payload ciphertext + tag

A random data key encrypts the payload with AES-256-GCM; the key-encryption key (key file, environment key or
passphrase) wraps the data key. The whole header is authenticated as associated data, so no byte of it can change
unnoticed. The payload is text: a first line naming its format, then one line per registration,
`<prefix>\\t<json record>`, so that `get` finds its host's lines with a string search instead of parsing them all.

The vault knows registrations as records; it knows nothing of providers.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Mapping, Optional, TypeVar

from . import crypto, keysource
from .errors import VaultError
from .fsutil import atomic_write, exclusive_lock, read_file
from .model import Registration

MAGIC = b"IDPVAULT"
VERSION = 1
_PARAMS_END = len(MAGIC) + 1 + 1 + 3 + 16  # magic, version, kind, scrypt params, salt
_CHECK_END = _PARAMS_END + 8
_WRAP_END = _CHECK_END + crypto.NONCE_BYTES + crypto.KEY_BYTES + crypto.TAG_BYTES
HEADER_BYTES = _WRAP_END + crypto.NONCE_BYTES
PAYLOAD_HEADER = "docker-credential-idp registrations 1\n"
MAX_VAULT_BYTES = 64 * 1024 * 1024
VAULT_FILE_NAME = "vault.bin"
LOCK_FILE_NAME = "vault.lock"

T = TypeVar("T")
Table = dict[str, Registration]


def _key_check(kek: bytes) -> bytes:
    # Tells "wrong key" apart from "tampered file" without revealing anything about the key.
    return hashlib.sha256(b"docker-credential-idp key check\0" + kek).digest()[:8]


class _Sealed:
    """A parsed vault header plus its ciphertext."""

    def __init__(self, data: bytes, where: str) -> None:
        if len(data) < HEADER_BYTES + crypto.TAG_BYTES or not data.startswith(MAGIC):
            raise VaultError(f"{where} is not a docker-credential-idp vault or is truncated; restore it from a backup")
        self.version = data[len(MAGIC)]
        if self.version != VERSION:
            raise VaultError(
                f"{where} has format version {self.version}, this docker-credential-idp reads version {VERSION}; "
                "use a matching docker-credential-idp release"
            )
        self.kind = data[len(MAGIC) + 1]
        if self.kind not in (keysource.RAW_KEY, keysource.PASSPHRASE):
            raise VaultError(f"{where} names an unknown key kind {self.kind}; restore it from a backup")
        offset = len(MAGIC) + 2
        self.params = keysource.ScryptParams(*data[offset : offset + 3])
        self.salt = data[offset + 3 : _PARAMS_END]
        self.check = data[_PARAMS_END:_CHECK_END]
        self.wrap_nonce = data[_CHECK_END : _CHECK_END + crypto.NONCE_BYTES]
        self.wrapped_key = data[_CHECK_END + crypto.NONCE_BYTES : _WRAP_END]
        self.payload_nonce = data[_WRAP_END:HEADER_BYTES]
        self.header = data[:HEADER_BYTES]
        self.ciphertext = data[HEADER_BYTES:]


class Vault:
    def __init__(self, home: Path, env: Mapping[str, str]) -> None:
        self.home = home
        self.path = home / VAULT_FILE_NAME
        self.lock_path = home / LOCK_FILE_NAME
        self._env = env
        self._opened: Optional[tuple[int, bytes, str, str]] = None  # kind, data key, payload, key description

    # -- reading -----------------------------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.path.exists()

    def _read(self) -> Optional[tuple[int, bytes, str, str]]:
        try:
            data = read_file(self.path, MAX_VAULT_BYTES)
        except OSError as exc:
            raise VaultError(f"cannot read the vault {self.path}: {exc.strerror or exc}") from None
        if data is None:
            return None
        where = f"the vault {self.path}"
        sealed = _Sealed(data, where)
        source = keysource.for_existing_vault(sealed.kind, self.home, self._env)
        if sealed.kind == keysource.PASSPHRASE:
            sealed.params.check(where)
        kek = source.kek(sealed.salt, sealed.params)
        if _key_check(kek) != sealed.check:
            raise VaultError(f"the {source.description} does not open {where}; use the key the vault was created with")
        try:
            data_key = crypto.decrypt(kek, sealed.wrap_nonce, sealed.wrapped_key, data[:_CHECK_END])
            payload = crypto.decrypt(data_key, sealed.payload_nonce, sealed.ciphertext, sealed.header)
            text = payload.decode("utf-8")
        except (crypto.DecryptionFailed, UnicodeDecodeError):
            raise VaultError(f"{where} failed its integrity check (tampered or corrupted); restore it from a backup") from None
        if not text.startswith(PAYLOAD_HEADER):
            raise VaultError(f"{where} holds an unknown payload format; use a matching docker-credential-idp release")
        return sealed.kind, data_key, text, source.description

    def _open(self) -> Optional[tuple[int, bytes, str, str]]:
        if self._opened is None:
            self._opened = self._read()
        return self._opened

    def registrations(self) -> Table:
        opened = self._open()
        return _parse_table(opened[2]) if opened else {}

    def registrations_on_host(self, host: str) -> list[Registration]:
        """Only the registrations whose prefix is on `host`, found without parsing the other lines."""
        opened = self._open()
        if not opened:
            return []
        text = opened[2]
        found = []
        for needle in ("\n" + host + "\t", "\n" + host + "/"):
            start = text.find(needle)
            while start >= 0:
                end = text.find("\n", start + 1)
                found.append(_parse_line(text[start + 1 : end]))
                start = text.find(needle, end)
        return found

    def data_key(self) -> Optional[bytes]:
        """The vault's data key, for other files sealed with it (the token cache); None before the vault exists."""
        opened = self._open()
        return opened[1] if opened else None

    def status(self) -> dict[str, object]:
        opened = self._open()
        return {
            "path": str(self.path),
            "exists": opened is not None,
            "key_source": opened[3] if opened else keysource.describe_new(self.home, self._env),
            "registrations": len(_parse_table(opened[2])) if opened else 0,
            "bytes": self.path.stat().st_size if opened else 0,
        }

    # -- writing -----------------------------------------------------------------------------------------------

    def update(self, change: Callable[[Table], T]) -> T:
        """Apply `change` to a copy of the table under the vault's lock and write the result atomically.

        `change` mutates the dict it is given and returns a value for the caller; when it raises, nothing is written.
        """
        with exclusive_lock(self.lock_path):
            self._opened = None  # another process may have written since we last read
            opened = self._read()
            table = _parse_table(opened[2]) if opened else {}
            before = {key: value.to_record() for key, value in table.items()}
            result = change(table)
            if {key: value.to_record() for key, value in table.items()} != before or not opened:
                self._write(table, opened)
            return result

    def _write(self, table: Table, opened: Optional[tuple[int, bytes, str, str]]) -> None:
        if opened:
            kind, data_key = opened[0], opened[1]
            source = keysource.for_existing_vault(kind, self.home, self._env)
        else:
            source = keysource.for_new_vault(self.home, self._env)
            data_key = crypto.random_key()
        if source.kind == keysource.PASSPHRASE:
            salt, params = os.urandom(16), keysource.ScryptParams(*keysource.SCRYPT_DEFAULT)
        else:
            salt, params = bytes(16), keysource.ScryptParams(0, 0, 0)
        kek = source.kek(salt, params)
        prefix = MAGIC + bytes([VERSION, source.kind, *params]) + salt + _key_check(kek)
        wrap_nonce = crypto.new_nonce()
        header = prefix + wrap_nonce + crypto.encrypt(kek, wrap_nonce, data_key, prefix) + crypto.new_nonce()
        text = _format_table(table)
        ciphertext = crypto.encrypt(data_key, header[_WRAP_END:], text.encode("utf-8"), header)
        atomic_write(self.path, header + ciphertext)
        self._opened = (source.kind, data_key, text, source.description)


def _parse_line(line: str) -> Registration:
    try:
        return Registration.from_record(json.loads(line.split("\t", 1)[1]))
    except (IndexError, KeyError, TypeError, ValueError):
        raise VaultError("the vault holds a malformed registration record; restore it from a backup") from None


def _parse_table(text: str) -> Table:
    table: Table = {}
    for line in text[len(PAYLOAD_HEADER) :].splitlines():
        if line:
            registration = _parse_line(line)
            table[registration.id] = registration
    return table


def _format_table(table: Table) -> str:
    lines = [PAYLOAD_HEADER]
    for registration in sorted(table.values(), key=lambda r: r.id):
        record = json.dumps(registration.to_record(), separators=(",", ":"), sort_keys=True, ensure_ascii=True)
        lines.append(f"{registration.prefix}\t{record}\n")
    return "".join(lines)
