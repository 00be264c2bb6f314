"""Rollback detection: a vault restored from a backup must not silently bring old credentials back.

vault.serial records the highest serial this home has seen, sealed with the vault's data key. A writer, holding
vault.lock, renames the new vault.bin into place and then records its serial in vault.serial; a reader records a
serial it read only under vault.lock, and never lowers the record. So the record never exceeds the serial of the
vault.bin in place when it is read, and a reader that reads the record BEFORE the vault sees a vault at least as new
unless an older one really replaced it. (Reading the vault first, a reader could read serial N-1, a writer then put
N in place and record it, and the reader would refuse a rollback that never happened.)
"""

from __future__ import annotations

import os

from . import crypto, fsutil
from .errors import VaultError, VaultRolledBack
from .vault_format import LOCK_FILE_NAME, SERIAL_BYTES, VAULT_FILE_NAME

TYPE_CHECKING = False  # typing itself is not imported: it costs a cache hit several ms
if TYPE_CHECKING:
    from typing import Optional

SERIAL_FILE_NAME = "vault.serial"
SERIAL_MAGIC = b"IDPSERIAL1"
ACCEPT_COMMAND = "docker-credential-idp vault accept"


def _seal_serial(data_key: bytes, serial: int) -> bytes:
    nonce = crypto.new_nonce()
    return SERIAL_MAGIC + nonce + crypto.encrypt(data_key, nonce, serial.to_bytes(SERIAL_BYTES, "big"), SERIAL_MAGIC)


def serial_record(home: str | os.PathLike[str]) -> Optional[bytes]:
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
    return _unseal_serial(home, serial_record(home), data_key)


def seen_serial_or_none(home: str | os.PathLike[str], data_key: bytes) -> Optional[int]:
    """seen_serial, with a record of another vault taken as none: what a write or `vault accept` replaces."""
    try:
        return seen_serial(home, data_key)
    except VaultError:
        return None


def record_serial(home: str | os.PathLike[str], data_key: bytes, serial: int) -> bool:
    """Remember `serial` as the highest seen, under vault.lock (not waited for); False when that cannot be done now
    (a writer holds the lock, a read-only home): the next call records it."""
    try:
        lock = fsutil.acquire_lock(os.path.join(home, LOCK_FILE_NAME), 0.0)
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
    return store_serial(home, data_key, serial)


def store_serial(home: str | os.PathLike[str], data_key: bytes, serial: int) -> bool:
    """Write vault.serial; False when it cannot be written. The caller holds vault.lock."""
    try:
        write_serial(home, data_key, serial)
        return True
    except OSError:
        return False


def write_serial(home: str | os.PathLike[str], data_key: bytes, serial: int) -> None:
    """Write vault.serial, an OSError when it cannot be written. The caller holds vault.lock."""
    fsutil.atomic_write(os.path.join(home, SERIAL_FILE_NAME), _seal_serial(data_key, serial))


def check_serial(home: str | os.PathLike[str], data_key: bytes, serial: int, record: Optional[bytes], where: str,
                 locked: bool) -> None:
    """Compare the vault's `serial` with `record`, vault.serial as read before the vault (serial_record); record a
    higher one. VaultRolledBack when the vault went back. `locked`: the caller holds vault.lock."""
    seen = _unseal_serial(home, record, data_key)
    if seen is not None and serial < seen:
        raise VaultRolledBack(f"{where} went back from serial {seen} to {serial} (restored from a backup?), so "
                              "credentials removed or rotated since may be back",
                              f"check it with `docker-credential-idp registry list`, then accept it with: "
                              f"{ACCEPT_COMMAND}")
    if seen is None or serial > seen:
        if locked:
            _raise_serial(home, data_key, serial)
        else:
            record_serial(home, data_key, serial)
