"""Answers, cached encrypted at rest with the vault's data key: every credential a provider returns, until its
refresh point (short-lived tokens) or until its registration changes (static passwords).

One small file, `tokens.bin`: magic, version, nonce, then AES-256-GCM over text lines

    <fingerprint> \\t <registration id> \\t <expires_at or ""> \\t <fetched_at> \\t <refresh_at> \\t b64(username) \\t b64(secret)

The fingerprint is a hash of the registration's vault record, so changing a registration (`--replace`, a new
password through `store`) retires its answer, and the cache-hit path finds an answer from the vault line alone,
without parsing JSON or loading a provider. The cache is disposable: an unreadable file is treated as empty.
"""

from __future__ import annotations

import binascii
import os
TYPE_CHECKING = False  # typing itself is not imported: it costs a cache hit several ms

from . import crypto

if TYPE_CHECKING:
    from typing import Callable, Optional

    from .model import Registration

MAGIC = b"IDPTOKEN"
VERSION = 2
HEADER_BYTES = len(MAGIC) + 1 + crypto.NONCE_BYTES
MAX_BYTES = 4 * 1024 * 1024
FILE_NAME = "tokens.bin"
LOCK_NAME = "tokens.lock"


def fingerprint_of_record(record_text: str) -> str:
    return crypto.sha256(record_text.encode("utf-8")).hex()[:32]


def fingerprint(registration: Registration) -> str:
    from .vault import record_text

    return fingerprint_of_record(record_text(registration))


class CachedToken:
    """One cached answer. `expires_at` None: a credential that does not expire (kept while its registration is)."""

    __slots__ = ("username", "secret", "expires_at", "fetched_at", "refresh_at")

    def __init__(self, username: str, secret: str, expires_at: Optional[float], fetched_at: float,
                 refresh_at: Optional[float] = None) -> None:
        self.username, self.secret, self.expires_at, self.fetched_at = username, secret, expires_at, fetched_at
        self.refresh_at = refresh_at

    def __repr__(self) -> str:
        return f"CachedToken(username={self.username!r}, expires_at={self.expires_at})"


def _encode(text: str) -> str:
    return binascii.b2a_base64(text.encode("utf-8"), newline=False).decode("ascii")


def _decode(text: str) -> str:
    return binascii.a2b_base64(text).decode("utf-8")


def _number(text: str) -> Optional[float]:
    return float(text) if text else None


def _parse(text: str) -> dict[str, tuple[str, CachedToken]]:
    """fingerprint -> (registration id, token); malformed lines are skipped (the cache is disposable)."""
    entries = {}
    for line in text.split("\n"):
        fields = line.split("\t")
        if len(fields) != 7:
            continue
        try:
            token = CachedToken(_decode(fields[5]), _decode(fields[6]), _number(fields[2]), float(fields[3]),
                                _number(fields[4]))
        except (ValueError, binascii.Error):
            continue
        entries[fields[0]] = (fields[1], token)
    return entries


def _format(entries: dict[str, tuple[str, CachedToken]]) -> str:
    def number(value: Optional[float]) -> str:
        return "" if value is None else repr(float(value))

    return "".join(
        f"{key}\t{registration_id}\t{number(t.expires_at)}\t{number(t.fetched_at)}\t{number(t.refresh_at)}\t"
        f"{_encode(t.username)}\t{_encode(t.secret)}\n"
        for key, (registration_id, t) in sorted(entries.items())
    )


class TokenCache:
    def __init__(self, home: str | os.PathLike[str], data_key: bytes) -> None:
        self.path = os.path.join(home, FILE_NAME)
        self.lock_path = os.path.join(home, LOCK_NAME)
        self._key = data_key

    def _load(self) -> dict[str, tuple[str, CachedToken]]:
        try:
            with open(self.path, "rb") as handle:
                data = handle.read(MAX_BYTES + 1)
        except OSError:
            return {}
        if len(data) < HEADER_BYTES or len(data) > MAX_BYTES or not data.startswith(MAGIC) or data[len(MAGIC)] != VERSION:
            return {}
        try:
            plain = crypto.decrypt(self._key, data[len(MAGIC) + 1 : HEADER_BYTES], data[HEADER_BYTES:], data[:HEADER_BYTES])
            return _parse(plain.decode("utf-8"))
        except (crypto.DecryptionFailed, UnicodeDecodeError):
            return {}

    def lookup(self, key: str) -> Optional[CachedToken]:
        entry = self._load().get(key)
        return entry[1] if entry else None

    def get(self, registration: Registration) -> Optional[CachedToken]:
        return self.lookup(fingerprint(registration))

    def _rewrite(self, change: Callable[[dict[str, tuple[str, CachedToken]]], None], now: float) -> None:
        from .fsutil import atomic_write, exclusive_lock

        with exclusive_lock(self.lock_path):
            entries = self._load()
            change(entries)
            # Expired tokens are never served, so they are not kept: the file stays small.
            entries = {k: v for k, v in entries.items() if v[1].expires_at is None or v[1].expires_at > now}
            header = MAGIC + bytes([VERSION]) + crypto.new_nonce()
            body = _format(entries).encode("utf-8")
            atomic_write(self.path, header + crypto.encrypt(self._key, header[len(MAGIC) + 1 :], body, header))

    def put(self, registration: Registration, token: CachedToken, now: float) -> None:
        key = fingerprint(registration)

        def change(entries: dict[str, tuple[str, CachedToken]]) -> None:
            for other in [k for k, (rid, _) in entries.items() if rid == registration.id]:
                del entries[other]  # the registration's earlier answers, under its earlier fingerprints
            entries[key] = (registration.id, token)

        self._rewrite(change, now)

    def drop(self, registration_ids: Optional[list[str]], now: float) -> int:
        """Forget the answers for these registrations (all when None); returns how many were dropped."""
        dropped = []

        def change(entries: dict[str, tuple[str, CachedToken]]) -> None:
            for key in list(entries):
                if registration_ids is None or entries[key][0] in registration_ids:
                    dropped.append(entries.pop(key))

        if os.path.exists(self.path):
            self._rewrite(change, now)
        return len(dropped)

    def entries(self) -> dict[str, dict[str, Optional[float]]]:
        """registration id -> {expires_at}, for status and resolve; never a secret."""
        return {rid: {"expires_at": token.expires_at} for rid, token in self._load().values()}
