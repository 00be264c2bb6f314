"""The encrypted vault: one file holding every registration and its secrets.

Layout (all integers one byte):

    magic "IDPVAULT" | version | key kind | scrypt log2n, r, p | salt[16] | key check[8]
    | wrap nonce[12] | wrapped data key[48] | payload nonce[12] | payload ciphertext + tag

A random data key encrypts the payload with AES-256-GCM; the key-encryption key (key file, environment key or
passphrase) wraps the data key. The whole header is authenticated as associated data, so no byte of it can change
unnoticed. The payload is text: a first line naming its format, then one line per registration,
`<prefix>\\t<id>\\t<json record>`, so that `get` finds its host's lines with a string search and chooses among them
without parsing any JSON.

The vault knows registrations as records; it knows nothing of providers. Reading needs only `os` and the crypto
backend (the cache-hit path goes through here); writing loads the rest.
"""

from __future__ import annotations

import binascii
import os

from . import crypto, keysource
from .errors import VaultError
from .paths import not_a_directory

TYPE_CHECKING = False  # typing itself is not imported: it costs a cache hit several ms
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Callable, Mapping, Optional, TypeVar

    from .model import Registration

    T = TypeVar("T")
    Table = dict[str, Registration]

MAGIC = b"IDPVAULT"
VERSION = 1
_PARAMS_END = len(MAGIC) + 1 + 1 + 3 + 16  # magic, version, kind, scrypt params, salt
_CHECK_END = _PARAMS_END + 8
_WRAP_END = _CHECK_END + crypto.NONCE_BYTES + crypto.KEY_BYTES + crypto.TAG_BYTES
HEADER_BYTES = _WRAP_END + crypto.NONCE_BYTES
PAYLOAD_HEADER = "docker-credential-idp registrations 2\n"
MAX_VAULT_BYTES = 64 * 1024 * 1024
VAULT_FILE_NAME = "vault.bin"
LOCK_FILE_NAME = "vault.lock"


def _key_check(kek: bytes) -> bytes:
    # Tells "wrong key" apart from "tampered file" without revealing anything about the key.
    return crypto.sha256(b"docker-credential-idp key check\0" + kek)[:8]


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
        self._data = data

    @property
    def ciphertext(self) -> bytes:
        return self._data[HEADER_BYTES:]  # a copy of the whole payload: made only when it is to be decrypted


class Opened:
    """An opened vault. `generation` changes with every write (the payload's random nonce) and with any change to
    the file (a checksum of its bytes), so whatever is derived from the table — which registration serves a
    request — can be cached against it."""

    __slots__ = ("kind", "data_key", "text", "description", "generation")

    def __init__(self, kind: int, data_key: bytes, text: str, description: str, generation: str) -> None:
        self.kind, self.data_key, self.text, self.description = kind, data_key, text, description
        self.generation = generation


def _read_vault(path: str) -> Optional[bytes]:
    """The vault's bytes; None when there is no vault."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_VAULT_BYTES + 1)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise VaultError(not_a_directory(os.path.dirname(path))) from None
    except OSError as exc:
        raise VaultError(f"cannot read the vault {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_VAULT_BYTES:
        raise VaultError(f"the vault {path} is larger than {MAX_VAULT_BYTES} bytes; restore it from a backup")
    return data


def _generation(sealed: _Sealed, data: bytes) -> str:
    # The payload nonce is new with every write; the checksum of the whole file changes with any damage to it.
    return f"{sealed.payload_nonce.hex()}.{binascii.crc32(data):08x}.{len(data)}"


def _unwrap(sealed: _Sealed, data: bytes, home: str | os.PathLike[str], env: Mapping[str, str],
            where: str) -> tuple[bytes, str]:
    """(data key, key description): the key source checked against the header, then the data key unwrapped."""
    source = keysource.for_existing_vault(sealed.kind, home, env)
    if sealed.kind == keysource.PASSPHRASE:
        sealed.params.check(where)
    kek = source.kek(sealed.salt, sealed.params)
    if _key_check(kek) != sealed.check:
        raise VaultError(f"the {source.description} does not open {where}; use the key the vault was created with")
    try:
        return crypto.decrypt(kek, sealed.wrap_nonce, sealed.wrapped_key, data[:_CHECK_END]), source.description
    except crypto.DecryptionFailed:
        raise VaultError(f"{where} failed its integrity check (tampered or corrupted); restore it from a backup") from None


def open_payload(path: str, home: str | os.PathLike[str], env: Mapping[str, str]) -> Optional[Opened]:
    """Read and decrypt the vault at `path`; None when there is none. Every failure is a VaultError."""
    data = _read_vault(path)
    if data is None:
        return None
    where = f"the vault {path}"
    sealed = _Sealed(data, where)
    data_key, description = _unwrap(sealed, data, home, env, where)
    try:
        text = crypto.decrypt(data_key, sealed.payload_nonce, sealed.ciphertext, sealed.header).decode("utf-8")
    except (crypto.DecryptionFailed, UnicodeDecodeError):
        raise VaultError(f"{where} failed its integrity check (tampered or corrupted); restore it from a backup") from None
    if not text.startswith(PAYLOAD_HEADER):
        raise VaultError(f"{where} holds an unknown payload format; use a matching docker-credential-idp release")
    return Opened(sealed.kind, data_key, text, description, _generation(sealed, data))


def open_header(path: str, home: str | os.PathLike[str], env: Mapping[str, str]) -> Optional[tuple[bytes, str]]:
    """(data key, generation) without decrypting or parsing the registrations: what the cache-hit path needs.

    The generation checksums the whole file, so a vault changed in any way since it was last read in full (and
    authenticated) matches no cached resolution: the full path reads it again, and reports any damage."""
    data = _read_vault(path)
    if data is None:
        return None
    where = f"the vault {path}"
    sealed = _Sealed(data, where)
    return _unwrap(sealed, data, home, env, where)[0], _generation(sealed, data)


def lines_on_host(text: str, host: str) -> list[tuple[str, str, str]]:
    """(prefix, id, json record) for each registration whose prefix is on `host`, found by string search."""
    found = []
    for needle in ("\n" + host + "\t", "\n" + host + "/"):
        start = text.find(needle)
        while start >= 0:
            end = text.find("\n", start + 1)
            parts = text[start + 1 : end].split("\t", 2)
            if len(parts) != 3:
                raise VaultError("the vault holds a malformed registration line; restore it from a backup")
            found.append((parts[0], parts[1], parts[2]))
            start = text.find(needle, end)
    return found


class Vault:
    def __init__(self, home: Path, env: Mapping[str, str]) -> None:
        self.home = home
        self.path = home / VAULT_FILE_NAME
        self.lock_path = home / LOCK_FILE_NAME
        self._env = env
        self._opened: Optional[Opened] = None

    # -- reading -----------------------------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.path.exists()

    def _read(self) -> Optional[Opened]:
        return open_payload(os.fspath(self.path), self.home, self._env)

    def _open(self) -> Optional[Opened]:
        if self._opened is None:
            self._opened = self._read()
        return self._opened

    def registrations(self) -> Table:
        opened = self._open()
        return _parse_table(opened.text) if opened else {}

    def registrations_on_host(self, host: str) -> list[Registration]:
        """Only the registrations whose prefix is on `host`, found without parsing the other lines."""
        opened = self._open()
        return [_parse_record(record) for _, _, record in lines_on_host(opened.text, host)] if opened else []

    def data_key(self) -> Optional[bytes]:
        """The vault's data key, for other files sealed with it (the token cache); None before the vault exists."""
        opened = self._open()
        return opened.data_key if opened else None

    def generation(self) -> Optional[str]:
        """Changes with every write; None before the vault exists."""
        opened = self._open()
        return opened.generation if opened else None

    def status(self) -> dict[str, object]:
        opened = self._open()
        return {
            "path": str(self.path),
            "exists": opened is not None,
            "key_source": opened.description if opened else keysource.describe_new(self.home, self._env),
            "registrations": len(_parse_table(opened.text)) if opened else 0,
            "bytes": self.path.stat().st_size if opened else 0,
        }

    # -- writing -----------------------------------------------------------------------------------------------

    def update(self, change: Callable[[Table], T]) -> T:
        """Apply `change` to a copy of the table under the vault's lock and write the result atomically.

        `change` mutates the dict it is given and returns a value for the caller; when it raises, nothing is written.
        """
        from .fsutil import exclusive_lock

        with exclusive_lock(self.lock_path):
            self._opened = None  # another process may have written since we last read
            opened = self._read()
            table = _parse_table(opened.text) if opened else {}
            before = {key: value.to_record() for key, value in table.items()}
            result = change(table)
            if {key: value.to_record() for key, value in table.items()} != before or not opened:
                self._write(table, opened)
            return result

    def _write(self, table: Table, opened: Optional[Opened]) -> None:
        from .fsutil import atomic_write

        if opened:
            kind, data_key = opened.kind, opened.data_key
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
        self._opened = Opened(source.kind, data_key, text, source.description,
                              _generation(_Sealed(header + ciphertext, "the vault"), header + ciphertext))


def record_timeout(record: str) -> Optional[float]:
    """settings.timeout from a record as the vault writes it, without a JSON parser (the cache-hit path has none).

    Records are canonical JSON (record_text): inside a string value every `"` is escaped, so an unescaped
    `"timeout":` can only be a key, and only settings has one."""
    start = record.find('"timeout":')
    if start < 0:
        return None
    value = record[start + len('"timeout":') :]
    end = min((i for i in (value.find(","), value.find("}")) if i >= 0), default=len(value))
    try:
        return float(value[:end])
    except ValueError:
        return None


def record_text(registration: Registration) -> str:
    """A registration's JSON record as the vault stores it (also what the token cache fingerprints)."""
    import json

    return json.dumps(registration.to_record(), separators=(",", ":"), sort_keys=True, ensure_ascii=True)


def _parse_record(record: str) -> Registration:
    import json

    from .model import Registration

    try:
        return Registration.from_record(json.loads(record))
    except (KeyError, TypeError, ValueError):
        raise VaultError("the vault holds a malformed registration record; restore it from a backup") from None


def _parse_table(text: str) -> Table:
    table: Table = {}
    for line in text[len(PAYLOAD_HEADER) :].splitlines():
        if line:
            parts = line.split("\t", 2)
            if len(parts) != 3:
                raise VaultError("the vault holds a malformed registration line; restore it from a backup")
            registration = _parse_record(parts[2])
            table[registration.id] = registration
    return table


def _format_table(table: Table) -> str:
    lines = [PAYLOAD_HEADER]
    for registration in sorted(table.values(), key=lambda r: r.id):
        lines.append(f"{registration.prefix}\t{registration.id}\t{record_text(registration)}\n")
    return "".join(lines)
