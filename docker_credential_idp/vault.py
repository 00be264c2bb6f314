"""The encrypted vault: one file holding every registration and its secrets.

Layout (all integers one byte):

    magic "IDPVAULT" | version | key kind | scrypt log2n, r, p | salt[16] | key check[8]
    | wrap nonce[12] | wrapped data key[48] | payload nonce[12] | payload ciphertext + tag

A random data key encrypts the payload with AES-256-GCM; the key-encryption key (key file, environment key or
passphrase) wraps the data key. The whole header is authenticated as associated data, so no byte of it can change
unnoticed. The payload is text: a first line naming its format, then one line per registration,
`<prefix>\\t<id>\\t<fetch timeout>\\t<json record>`, so that `get` finds its host's lines with a string search, chooses
among them and knows how long a fetch may take without parsing any JSON (format 2 lacked the timeout column).

The vault knows registrations as records; it knows nothing of providers. Reading needs only `os` and the crypto
backend (the cache-hit path goes through here); writing loads the rest.
"""

from __future__ import annotations

import errno
import os

from . import crypto, fsutil, keysource
from .errors import VaultError, VaultRolledBack
from .paths import not_a_directory

TYPE_CHECKING = False  # typing itself is not imported: it costs a cache hit several ms
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping, Optional, TypeVar

    from .model import Registration

    T = TypeVar("T")
    Table = dict[str, Registration]

MAGIC = b"IDPVAULT"
VERSION = 2  # 2 added the serial number; version 1 vaults are still read, and written back as version 2
READABLE_VERSIONS = (1, 2)
SERIAL_BYTES = 8


def _layout(version: int) -> tuple[int, int, int, int]:
    """(end of the salt, end of the key check, end of the wrapped key, header size) for a format version."""
    params_end = len(MAGIC) + 1 + 1 + 3 + (SERIAL_BYTES if version >= 2 else 0) + 16  # ..., scrypt, serial, salt
    check_end = params_end + 8
    wrap_end = check_end + crypto.NONCE_BYTES + crypto.KEY_BYTES + crypto.TAG_BYTES
    return params_end, check_end, wrap_end, wrap_end + crypto.NONCE_BYTES


HEADER_BYTES = _layout(VERSION)[3]
SERIAL_FILE_NAME = "vault.serial"
SERIAL_MAGIC = b"IDPSERIAL1"
ACCEPT_COMMAND = "docker-credential-idp vault accept"
PAYLOAD_HEADER = "docker-credential-idp registrations 3\n"
SOURCE_MARK = "#source"  # a line `#source <id> <attempted_at> <refresh> <json>`: never a prefix, which starts with a host
OLD_PAYLOAD_HEADER = "docker-credential-idp registrations 2\n"  # read; written back as 3
MAX_VAULT_BYTES = 64 * 1024 * 1024
VAULT_FILE_NAME = "vault.bin"
LOCK_FILE_NAME = "vault.lock"


def _key_check(kek: bytes) -> bytes:
    # Tells "wrong key" apart from "tampered file" without revealing anything about the key.
    return crypto.sha256(b"docker-credential-idp key check\0" + kek)[:8]


class _Sealed:
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
        self._data = data

    @property
    def ciphertext(self) -> bytes:
        return self._data[self.header_bytes :]  # a copy of the whole payload: made only when it is to be decrypted


class Opened:
    """An opened vault: its key unwrapped, its registrations (`text`) decrypted on first use. `generation` changes
    with every write (the serial) and with any change to the file (a digest of its bytes), so what is derived from
    the table — which registration serves a request — can be cached against it, and a cache hit need not decrypt
    the registrations at all (10,000 of them are 3.5 MB)."""

    __slots__ = ("kind", "data_key", "description", "generation", "serial", "_text", "_sealed", "_where")

    def __init__(self, kind: int, data_key: bytes, description: str, generation: str, serial: int,
                 text: Optional[str] = None, sealed: Optional[_Sealed] = None, where: str = "the vault") -> None:
        self.kind, self.data_key, self.description = kind, data_key, description
        self.generation, self.serial = generation, serial
        self._text, self._sealed, self._where = text, sealed, where

    @property
    def decrypted(self) -> bool:
        return self._text is not None

    @property
    def text(self) -> str:
        """The payload: a format line, then one line per registration. Every byte is authenticated here."""
        if self._text is None:
            assert self._sealed is not None
            sealed, where = self._sealed, self._where
            try:
                text = crypto.decrypt(self.data_key, sealed.payload_nonce, sealed.ciphertext, sealed.header).decode()
            except (crypto.DecryptionFailed, UnicodeDecodeError):
                raise VaultError(f"{where} failed its integrity check (tampered or corrupted); restore it from a "
                                 "backup") from None
            if not text.startswith((PAYLOAD_HEADER, OLD_PAYLOAD_HEADER)):
                raise VaultError(f"{where} holds an unknown payload format; use a matching docker-credential-idp "
                                 "release")
            self._text, self._sealed = text, None
        return self._text


def _read_vault(path: str, home: str | os.PathLike[str]) -> Optional[bytes]:
    """The vault's bytes; None when there is no vault. The home and the file are checked first (fsutil)."""
    fsutil.check_home(home)
    try:
        return fsutil.read_private(path, MAX_VAULT_BYTES)
    except NotADirectoryError:
        raise VaultError(not_a_directory(os.path.dirname(path))) from None
    except OSError as exc:
        if exc.errno == errno.EFBIG:
            raise VaultError(f"the vault {path} is larger than {MAX_VAULT_BYTES} bytes; restore it from a backup") from None
        raise VaultError(f"cannot read the vault {path}: {exc.strerror or exc}") from None


def _generation(sealed: _Sealed, data: bytes) -> str:
    # The serial grows with every write; a cryptographic digest of the whole file changes with any change to it,
    # which no edit can avoid (a CRC could be kept by an edit made for it).
    return f"{sealed.serial}.{crypto.sha256(data).hex()[:40]}"


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
        return crypto.decrypt(kek, sealed.wrap_nonce, sealed.wrapped_key, data[: sealed.check_end]), source.description
    except crypto.DecryptionFailed:
        raise VaultError(f"{where} failed its integrity check (tampered or corrupted); restore it from a backup") from None


# -- the serial number seen last: a vault restored from a backup must not silently bring old credentials back -----
#
# A writer, holding vault.lock, renames the new vault.bin into place and then records its serial in vault.serial; a
# reader records a serial it read only under vault.lock, and never lowers the record. So the record never exceeds
# the serial of the vault.bin in place when it is read, and a reader that reads the record BEFORE the vault sees a
# vault at least as new unless an older one really replaced it. (Reading the vault first, a reader could read serial
# N-1, a writer then put N in place and record it, and the reader would refuse a rollback that never happened.)


def _seal_serial(data_key: bytes, serial: int) -> bytes:
    nonce = crypto.new_nonce()
    return SERIAL_MAGIC + nonce + crypto.encrypt(data_key, nonce, serial.to_bytes(SERIAL_BYTES, "big"), SERIAL_MAGIC)


def _serial_record(home: str | os.PathLike[str]) -> Optional[bytes]:
    """vault.serial's bytes; None when there is none, or it cannot be read (then there is nothing to compare with)."""
    try:
        return fsutil.read_private(os.path.join(home, SERIAL_FILE_NAME), 256)
    except OSError:
        return None


def _unseal_serial(home: str | os.PathLike[str], record: Optional[bytes], data_key: bytes) -> Optional[int]:
    if record is None:
        return None
    start = len(SERIAL_MAGIC) + crypto.NONCE_BYTES
    try:
        if not record.startswith(SERIAL_MAGIC):
            raise crypto.DecryptionFailed()
        plain = crypto.decrypt(data_key, record[len(SERIAL_MAGIC) : start], record[start:], SERIAL_MAGIC)
    except crypto.DecryptionFailed:
        raise VaultRolledBack(f"{os.path.join(home, SERIAL_FILE_NAME)} records another vault than "
                              f"{os.path.join(home, VAULT_FILE_NAME)} (restored from elsewhere, or replaced?)",
                              f"if you meant to, accept it with: {ACCEPT_COMMAND}") from None
    return int.from_bytes(plain, "big")


def seen_serial(home: str | os.PathLike[str], data_key: bytes) -> Optional[int]:
    """The highest serial this home has seen, from vault.serial (sealed with the vault's data key); None when there
    is no record. A record this vault's key does not open is a VaultRolledBack: the vault was replaced."""
    return _unseal_serial(home, _serial_record(home), data_key)


def record_serial(home: str | os.PathLike[str], data_key: bytes, serial: int, lock_wait: float = 0.0) -> bool:
    """Remember `serial` as the highest seen, under vault.lock; False when that cannot be done now (a writer holds
    the lock, a read-only home): the next call records it."""
    try:
        lock = fsutil.acquire_lock(os.path.join(home, LOCK_FILE_NAME), lock_wait)
    except (OSError, fsutil.LockTimeout):
        return False
    try:
        return _raise_serial(home, data_key, serial)
    finally:
        os.close(lock)


def _raise_serial(home: str | os.PathLike[str], data_key: bytes, serial: int) -> bool:
    """Record `serial` unless the record is as high already: a reader that read serial N before a writer recorded
    N+1 must not lower it (a restored copy of N would then pass). The caller holds vault.lock."""
    try:
        seen = seen_serial(home, data_key)
    except VaultError:
        return False  # a record of another vault: only a write or `vault accept` replaces it
    if seen is not None and seen >= serial:
        return True
    return _store_serial(home, data_key, serial)


def _store_serial(home: str | os.PathLike[str], data_key: bytes, serial: int) -> bool:
    """Write vault.serial; the caller holds vault.lock."""
    try:
        fsutil.atomic_write(os.path.join(home, SERIAL_FILE_NAME), _seal_serial(data_key, serial))
        return True
    except OSError:
        return False


def _check_serial(home: str | os.PathLike[str], data_key: bytes, sealed: _Sealed, record: Optional[bytes],
                  where: str, locked: bool) -> None:
    """Compare the vault's serial with `record`, vault.serial as read before the vault."""
    seen = _unseal_serial(home, record, data_key)
    if seen is not None and sealed.serial < seen:
        raise VaultRolledBack(f"{where} went back from serial {seen} to {sealed.serial} (restored from a backup?), so "
                              "credentials removed or rotated since may be back",
                              f"check it with `docker-credential-idp registry list`, then accept it with: "
                              f"{ACCEPT_COMMAND}")
    if seen is None or sealed.serial > seen:
        if locked:
            _raise_serial(home, data_key, sealed.serial)
        else:
            record_serial(home, data_key, sealed.serial)


def open_payload(path: str, home: str | os.PathLike[str], env: Mapping[str, str],
                 check_rollback: bool = True, locked: bool = False) -> Optional[Opened]:
    """Read the vault at `path`, check its header, key and serial, unwrap its data key; None when there is none.
    The registrations are decrypted when first read (Opened.text). Every failure is a VaultError. `locked`: the
    caller holds vault.lock."""
    try:
        return _open_payload(path, home, env, check_rollback, locked)
    except VaultRolledBack as refusal:
        if locked:
            raise
        verdict = refusal
    # Declared only once confirmed under vault.lock, where no writer is between its two files (a vault made anew
    # over a stale vault.serial, say). A home whose lock cannot be taken now keeps the verdict read without it.
    try:
        lock = fsutil.acquire_lock(os.path.join(home, LOCK_FILE_NAME))
    except (OSError, fsutil.LockTimeout):
        raise verdict from None
    try:
        return _open_payload(path, home, env, check_rollback, locked=True)
    finally:
        os.close(lock)


def _open_payload(path: str, home: str | os.PathLike[str], env: Mapping[str, str], check_rollback: bool,
                  locked: bool) -> Optional[Opened]:
    fsutil.check_home(home)
    record = _serial_record(home) if check_rollback else None  # before the vault: see above
    data = _read_vault(path, home)
    if data is None:
        return None
    where = f"the vault {path}"
    sealed = _Sealed(data, where)
    data_key, description = _unwrap(sealed, data, home, env, where)
    if check_rollback:
        _check_serial(home, data_key, sealed, record, where, locked)
    return Opened(sealed.kind, data_key, description, _generation(sealed, data), sealed.serial, sealed=sealed,
                  where=where)


class Line:
    """One registration as the vault stores it: what `get` needs before it parses anything, and the record."""

    __slots__ = ("prefix", "id", "fetch_timeout", "record")

    def __init__(self, prefix: str, registration_id: str, fetch_timeout: float, record: str) -> None:
        self.prefix, self.id, self.fetch_timeout, self.record = prefix, registration_id, fetch_timeout, record


def _line(text: str) -> Line:
    parts = text.split("\t", 3)
    try:
        if len(parts) == 4:
            return Line(parts[0], parts[1], float(parts[2]), parts[3])
        if len(parts) == 3:  # format 2: the timeout is in the record
            return Line(parts[0], parts[1], _parse_record(parts[2]).fetch_timeout, parts[2])
    except ValueError:
        pass
    raise VaultError("the vault holds a malformed registration line; restore it from a backup")


def _lines_on_host(text: str, host: str) -> list[Line]:
    """The lines whose prefix is on `host`, found by string search."""
    found = []
    for needle in ("\n" + host + "\t", "\n" + host + "/"):
        start = text.find(needle)
        while start >= 0:
            end = text.find("\n", start + 1)
            found.append(_line(text[start + 1 : end]))
            start = text.find(needle, end)
    return found


def _pattern_lines(text: str) -> list[Line]:
    """The lines whose prefix is a pattern (a `*` before the line's first tab), found by string search."""
    found, start = [], text.find("*")
    while start >= 0:
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", start)
        if start < text.find("\t", line_start, line_end):
            found.append(_line(text[line_start:line_end]))
        start = text.find("*", line_end)
    return found


def _all_lines(text: str) -> list[Line]:
    return [_line(line) for line in text[text.index("\n") + 1 :].splitlines() if line and line[0] != "#"]


class SourceLine:
    """A registry source (a platform the table is synced from): when it was last tried and how often it is due,
    as columns, so that `get` knows whether to sync without parsing JSON; and its record."""

    __slots__ = ("id", "attempted_at", "refresh", "record")

    def __init__(self, source_id: str, attempted_at: float, refresh: float, record: str) -> None:
        self.id, self.attempted_at, self.refresh, self.record = source_id, attempted_at, refresh, record


def _source_lines(text: str) -> list[SourceLine]:
    found, start = [], text.find("\n" + SOURCE_MARK + "\t")
    while start >= 0:
        end = text.find("\n", start + 1)
        parts = text[start + 1 : end].split("\t", 4)
        try:
            found.append(SourceLine(parts[1], float(parts[2]), float(parts[3]), parts[4]))
        except (IndexError, ValueError):
            raise VaultError("the vault holds a malformed source line; restore it from a backup") from None
        start = text.find("\n" + SOURCE_MARK + "\t", end)
    return found


class Vault:
    """The vault of one home. It is read, checked and decrypted once per process (open), then kept."""

    def __init__(self, home: str | os.PathLike[str], env: Mapping[str, str]) -> None:
        self.home = os.fspath(home)
        self.path = os.path.join(self.home, VAULT_FILE_NAME)
        self.lock_path = os.path.join(self.home, LOCK_FILE_NAME)
        self._env = env
        self._opened: Optional[Opened] = None
        self._rolled_back = False  # opened by inspect() though get refuses it

    # -- reading -----------------------------------------------------------------------------------------------

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def _read(self, locked: bool = False) -> Optional[Opened]:
        return open_payload(self.path, self.home, self._env, locked=locked)

    def forget(self) -> None:
        """Read the file again on next use (another process may have written it)."""
        self._opened, self._rolled_back = None, False

    def open(self) -> Optional[Opened]:
        """The opened vault (None when there is none yet), read on first use."""
        if self._opened is None:
            self._opened = self._read()
        return self._opened

    def inspect(self) -> Optional[str]:
        """Open the vault for a person deciding whether to accept it (`registry list`, `vault status`): a vault that
        went back is opened all the same (every other check still made), and the one-line warning to show with what
        it holds is returned; None when `get` would not refuse it. Nothing is written for it."""
        try:
            self.open()
            return None
        except VaultRolledBack as refusal:
            self._opened = open_payload(self.path, self.home, self._env, check_rollback=False)
            self._rolled_back = True
            return (f"docker-credential-idp: warning: {refusal.what}; shown as it is, but get refuses it until you "
                    f"accept it with: {ACCEPT_COMMAND}")

    def lines_on_host(self, host: str) -> list[Line]:
        """The registrations whose prefix is on `host`, as lines: found without parsing any JSON."""
        opened = self.open()
        return _lines_on_host(opened.text, host) if opened else []

    def pattern_lines(self) -> list[Line]:
        """The registrations whose prefix is a pattern (`*.azurecr.io`), as lines."""
        opened = self.open()
        return _pattern_lines(opened.text) if opened else []

    def registration(self, registration_id: str) -> Optional[Registration]:
        """One registration by id, parsing only its record."""
        opened = self.open()
        line = next((line for line in _all_lines(opened.text) if line.id == registration_id), None) if opened else None
        return _parse_record(line.record) if line else None

    def registrations(self) -> Table:
        opened = self.open()
        return _parse_table(opened.text) if opened else {}

    def source_lines(self) -> list[SourceLine]:
        opened = self.open()
        return _source_lines(opened.text) if opened else []

    def sources(self) -> dict[str, dict[str, Any]]:
        """The registry sources' records by id (see sources.py); the vault keeps them, it does not read them."""
        return {line.id: _parse_json(line.record) for line in self.source_lines()}

    def pattern_registrations(self) -> list[Registration]:
        return [_parse_record(line.record) for line in self.pattern_lines()]

    def registrations_on_host(self, host: str) -> list[Registration]:
        """Only the registrations whose prefix is on `host`, found without parsing the other lines."""
        return [_parse_record(line.record) for line in self.lines_on_host(host)]

    def data_key(self) -> Optional[bytes]:
        """The vault's data key, for other files sealed with it (the token cache); None before the vault exists."""
        opened = self.open()
        return opened.data_key if opened else None

    def generation(self) -> Optional[str]:
        """Changes with every write; None before the vault exists."""
        opened = self.open()
        return opened.generation if opened else None

    def status(self) -> dict[str, object]:
        opened = self.open()
        return {
            "path": str(self.path),
            "exists": opened is not None,
            "serial": opened.serial if opened else 0,
            "key_source": opened.description if opened else keysource.describe_new(self.home, self._env),
            "registrations": len(_parse_table(opened.text)) if opened else 0,
            "bytes": os.stat(self.path).st_size if opened else 0,
            "rolled_back": self._rolled_back,
        }

    def registrations_for_diagnosis(self) -> Table:
        """The table as the file holds it, read past the checks that make the helper refuse a vault it can decrypt
        (the home's owner and modes, a serial that went back), for `doctor` to check the routing of its hosts when
        the vault is refused. Never for serving: nothing is fetched for it. A VaultError (or UnsafePath: a link, a
        FIFO, another user's file) when it cannot be read and decrypted."""
        try:
            data = fsutil.read_private(self.path, MAX_VAULT_BYTES, secret=False)
        except OSError as exc:
            raise VaultError(f"cannot read the vault {self.path}: {exc.strerror or exc}") from None
        if data is None:
            return {}
        where = f"the vault {self.path}"
        sealed = _Sealed(data, where)
        data_key, description = _unwrap(sealed, data, self.home, self._env, where)
        return _parse_table(Opened(sealed.kind, data_key, description, "", sealed.serial, sealed=sealed,
                                   where=where).text)

    # -- writing -----------------------------------------------------------------------------------------------

    def update(self, change: Callable[[Table], T]) -> T:
        """Apply `change` to a copy of the table under the vault's lock and write the result atomically.

        `change` mutates the dict it is given and returns a value for the caller; when it raises, nothing is written.
        """
        return self.update_with_sources(lambda table, sources: change(table))

    def update_with_sources(self, change: Callable[[Table, dict[str, dict[str, Any]]], T]) -> T:
        """update, with the sources' records (by id) given to `change` beside the table, to change both at once."""
        fsutil.check_home(self.home)  # before anything is created in it
        lock = self._lock()
        try:
            self._opened = None  # another process may have written since we last read
            opened = self._read(locked=True)
            table = _parse_table(opened.text) if opened else {}
            sources = {line.id: _parse_json(line.record) for line in _source_lines(opened.text)} if opened else {}
            before = ({key: value.to_record() for key, value in table.items()}, repr(sources))
            result = change(table, sources)
            if ({key: value.to_record() for key, value in table.items()}, repr(sources)) != before or not opened:
                try:
                    self._write(table, sources, opened)
                except OSError as error:
                    raise VaultError(fsutil.cannot_write(error, self.home)) from None
            return result
        finally:
            os.close(lock)

    def _lock(self) -> int:
        """vault.lock, held: every write of the home's vault files is made under it."""
        try:
            return fsutil.acquire_lock(self.lock_path)
        except fsutil.LockTimeout:
            raise VaultError(fsutil.lock_busy(self.lock_path)) from None
        except OSError as error:  # the first write: a home that cannot be made or written says so here
            raise VaultError(fsutil.cannot_write(error, self.home)) from None

    def accept(self) -> tuple[int, Optional[int]]:
        """Take the vault as it is now as the newest (after a restore on purpose): (its serial, the one seen)."""
        if not self.exists():
            raise VaultError(f"there is no vault at {self.path} to accept")
        lock = self._lock()
        try:
            opened = open_payload(self.path, self.home, self._env, check_rollback=False)
            if opened is None:
                raise VaultError(f"there is no vault at {self.path} to accept")
            try:
                seen = seen_serial(self.home, opened.data_key)
            except VaultError:
                seen = None  # a record of another vault: replaced below
            try:
                fsutil.atomic_write(os.path.join(self.home, SERIAL_FILE_NAME), _seal_serial(opened.data_key,
                                                                                            opened.serial))
            except OSError as error:
                raise VaultError(fsutil.cannot_write(error, self.home)) from None
            return opened.serial, seen
        finally:
            os.close(lock)

    def _write(self, table: Table, sources: dict[str, dict[str, Any]], opened: Optional[Opened]) -> None:
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
        # Monotonic across restores the user accepted: never below what this home has seen.
        try:
            seen = seen_serial(self.home, data_key) or 0
        except VaultError:
            seen = 0
        serial = max(opened.serial if opened else 0, seen) + 1
        prefix = (MAGIC + bytes([VERSION, source.kind, *params]) + serial.to_bytes(SERIAL_BYTES, "big") + salt
                  + _key_check(kek))
        wrap_nonce = crypto.new_nonce()
        header = prefix + wrap_nonce + crypto.encrypt(kek, wrap_nonce, data_key, prefix) + crypto.new_nonce()
        text = _format_table(table, sources)
        ciphertext = crypto.encrypt(data_key, header[-crypto.NONCE_BYTES :], text.encode("utf-8"), header)
        fsutil.atomic_write(self.path, header + ciphertext)
        _store_serial(self.home, data_key, serial)  # we hold vault.lock; should this fail, the next read records it
        self._opened = Opened(source.kind, data_key, source.description,
                              _generation(_Sealed(header + ciphertext, "the vault"), header + ciphertext), serial,
                              text=text)


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
    registrations = (_parse_record(line.record) for line in _all_lines(text))
    return {registration.id: registration for registration in registrations}


def _parse_json(record: str) -> dict[str, Any]:
    import json

    try:
        value = json.loads(record)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise VaultError("the vault holds a malformed source record; restore it from a backup")
    return value


def _format_table(table: Table, sources: Optional[dict[str, dict[str, Any]]] = None) -> str:
    import json

    lines = [PAYLOAD_HEADER]
    for source_id, record in sorted((sources or {}).items()):
        lines.append(f"{SOURCE_MARK}\t{source_id}\t{float(record.get('attempted_at') or 0)!r}\t"
                     f"{float(record['refresh'])!r}\t{json.dumps(record, sort_keys=True, ensure_ascii=True)}\n")
    for registration in sorted(table.values(), key=lambda r: r.id):
        lines.append(f"{registration.prefix}\t{registration.id}\t{registration.fetch_timeout!r}\t"
                     f"{record_text(registration)}\n")
    return "".join(lines)
