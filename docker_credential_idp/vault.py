"""The encrypted vault: one file (vault.bin) holding every registration and its secrets, and the registry sources.

Three rooms: vault_format.py (the file's bytes: header, key wrapping, sealing the payload), vault_table.py (the
payload: registration lines found by string search, records parsed on demand) and vault_serial.py (rollback
detection: vault.serial). This module opens and writes the home's vault with them. The vault knows registrations as
records and sources as text it keeps (source_record.py); it knows nothing of providers. Reading needs only `os`
and the crypto backend (the cache-hit path goes through here); writing loads the rest.
"""

from __future__ import annotations

import errno
import os

from . import crypto, fsutil, keysource, vault_table
from .errors import VaultError, VaultRolledBack
from .paths import not_a_directory

# `X as X`: the names the vault's callers and tests know it by, re-exported from where they live now.
from .vault_format import HEADER_BYTES as HEADER_BYTES
from .vault_format import LOCK_FILE_NAME, VAULT_FILE_NAME, Sealed, seal
from .vault_format import MAGIC as MAGIC
from .vault_serial import ACCEPT_COMMAND, check_serial, seen_serial_or_none, serial_record, store_serial, write_serial
from .vault_serial import record_serial as record_serial
from .vault_serial import seen_serial as seen_serial

TYPE_CHECKING = False  # typing itself is not imported: it costs a cache hit several ms
if TYPE_CHECKING:
    from typing import Callable, Mapping, Optional, TypeVar

    from .model import Registration
    from .vault_table import Line, SourceRecords, Table

    T = TypeVar("T")

MAX_VAULT_BYTES = 64 * 1024 * 1024


class Opened:
    """An opened vault: its key unwrapped, its payload (`text`) decrypted on first use. `generation` changes with
    every write (the serial) and with any change to the file (a digest of its bytes), so what is derived from the
    table — which registration serves a request — can be cached against it, and a cache hit need not decrypt the
    registrations at all (10,000 of them are 3.5 MB)."""

    __slots__ = ("kind", "data_key", "description", "generation", "serial", "_text", "_sealed")

    def __init__(self, kind: int, data_key: bytes, description: str, generation: str, serial: int,
                 text: Optional[str] = None, sealed: Optional[Sealed] = None) -> None:
        self.kind, self.data_key, self.description = kind, data_key, description
        self.generation, self.serial = generation, serial
        self._text, self._sealed = text, sealed

    @property
    def decrypted(self) -> bool:
        return self._text is not None

    @property
    def text(self) -> str:
        """The payload: a format line, then one line per registration (vault_table). Every byte is authenticated
        here."""
        if self._text is None:
            assert self._sealed is not None
            self._text = vault_table.check_format(self._sealed.payload(self.data_key), self._sealed.where)
            self._sealed = None
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
    record = serial_record(home) if check_rollback else None  # before the vault: see vault_serial
    data = _read_vault(path, home)
    if data is None:
        return None
    sealed = Sealed(data, f"the vault {path}")
    data_key, description = sealed.unwrap(home, env)
    if check_rollback:
        check_serial(home, data_key, sealed.serial, record, sealed.where, locked)
    return Opened(sealed.kind, data_key, description, sealed.generation(), sealed.serial, sealed=sealed)


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
        return vault_table.lines_on_host(opened.text, host) if opened else []

    def pattern_lines(self) -> list[Line]:
        """The registrations whose prefix is a pattern (`*.azurecr.io`), as lines."""
        opened = self.open()
        return vault_table.pattern_lines(opened.text) if opened else []

    def registration(self, registration_id: str) -> Optional[Registration]:
        """One registration by id, parsing only its record."""
        opened = self.open()
        lines = vault_table.all_lines(opened.text) if opened else []
        line = next((line for line in lines if line.id == registration_id), None)
        return vault_table.parse_record(line.record) if line else None

    def registrations(self) -> Table:
        opened = self.open()
        return vault_table.parse_table(opened.text) if opened else {}

    def sources(self) -> SourceRecords:
        """The registry sources' records by id, as the sources module wrote them (source_record.py), found by string
        search: the vault keeps them, it does not read them."""
        opened = self.open()
        return vault_table.source_records(opened.text) if opened else {}

    def pattern_registrations(self) -> list[Registration]:
        return [vault_table.parse_record(line.record) for line in self.pattern_lines()]

    def registrations_on_host(self, host: str) -> list[Registration]:
        """Only the registrations whose prefix is on `host`, found without parsing the other lines."""
        return [vault_table.parse_record(line.record) for line in self.lines_on_host(host)]

    def data_key(self) -> Optional[bytes]:
        """The vault's data key (vault.serial and tokens.bin are sealed with it); None before the vault exists."""
        opened = self.open()
        return opened.data_key if opened else None

    def status(self) -> dict[str, object]:
        opened = self.open()
        return {
            "path": str(self.path),
            "exists": opened is not None,
            "serial": opened.serial if opened else 0,
            "key_source": opened.description if opened else keysource.describe_new(self.home, self._env),
            "registrations": len(vault_table.parse_table(opened.text)) if opened else 0,
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
        sealed = Sealed(data, f"the vault {self.path}")
        data_key, description = sealed.unwrap(self.home, self._env)
        return vault_table.parse_table(Opened(sealed.kind, data_key, description, "", sealed.serial, sealed=sealed).text)

    # -- writing -----------------------------------------------------------------------------------------------

    def update(self, change: Callable[[Table], T]) -> T:
        """Apply `change` to a copy of the table under the vault's lock and write the result atomically.

        `change` mutates the dict it is given and returns a value for the caller; when it raises, nothing is written.
        """
        return self.update_with_sources(lambda table, sources: change(table))

    def update_with_sources(self, change: Callable[[Table, SourceRecords], T]) -> T:
        """update, with the sources' records (by id, as in `sources`) given to `change` beside the table, to change
        both at once."""
        fsutil.check_home(self.home)  # before anything is created in it
        lock = self._lock()
        try:
            self._opened = None  # another process may have written since we last read
            opened = self._read(locked=True)
            table = vault_table.parse_table(opened.text) if opened else {}
            sources = vault_table.source_records(opened.text) if opened else {}
            before = ({key: value.to_record() for key, value in table.items()}, dict(sources))
            result = change(table, sources)
            if ({key: value.to_record() for key, value in table.items()}, sources) != before or not opened:
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
            seen = seen_serial_or_none(self.home, opened.data_key)  # a record of another vault is replaced here
            try:
                write_serial(self.home, opened.data_key, opened.serial)
            except OSError as error:
                raise VaultError(fsutil.cannot_write(error, self.home)) from None
            return opened.serial, seen
        finally:
            os.close(lock)

    def _write(self, table: Table, sources: SourceRecords, opened: Optional[Opened]) -> None:
        if opened:
            data_key, source = opened.data_key, keysource.for_existing_vault(opened.kind, self.home, self._env)
        else:
            data_key, source = crypto.random_key(), keysource.for_new_vault(self.home, self._env)
        # Monotonic across restores the user accepted: never below what this home has seen.
        serial = max(opened.serial if opened else 0, seen_serial_or_none(self.home, data_key) or 0) + 1
        text = vault_table.format_table(table, sources)
        data = seal(source, data_key, serial, text)
        fsutil.atomic_write(self.path, data)
        store_serial(self.home, data_key, serial)  # we hold vault.lock; should this fail, the next read records it
        self._opened = Opened(source.kind, data_key, source.description, Sealed(data, "the vault").generation(), serial,
                              text=text)
