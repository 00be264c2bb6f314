"""Short-lived tokens, cached encrypted at rest with the vault's data key, keyed by registration.

One small file, `tokens.bin`: magic, version, nonce, then AES-256-GCM over a JSON map
{registration id: {username, secret, expires_at, fetched_at, fingerprint}}. The fingerprint is a hash of the
registration's record, so changing a registration (`--replace`) retires its token. The cache is disposable:
an unreadable file is treated as empty and rewritten.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

from . import crypto
from .fsutil import atomic_write, exclusive_lock, read_file
from .model import Registration

MAGIC = b"IDPTOKEN"
VERSION = 1
HEADER_BYTES = len(MAGIC) + 1 + crypto.NONCE_BYTES
MAX_BYTES = 4 * 1024 * 1024
FILE_NAME = "tokens.bin"


def fingerprint(registration: Registration) -> str:
    record = json.dumps(registration.to_record(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(record.encode("utf-8")).hexdigest()[:32]


class CachedToken:
    __slots__ = ("username", "secret", "expires_at", "fetched_at")

    def __init__(self, username: str, secret: str, expires_at: float, fetched_at: float) -> None:
        self.username, self.secret, self.expires_at, self.fetched_at = username, secret, expires_at, fetched_at

    def __repr__(self) -> str:
        return f"CachedToken(username={self.username!r}, expires_at={self.expires_at})"


class TokenCache:
    def __init__(self, home: Path, data_key: bytes) -> None:
        self.path = home / FILE_NAME
        self.lock_path = home / "tokens.lock"
        self._key = data_key

    def _load(self) -> dict[str, Any]:
        try:
            data = read_file(self.path, MAX_BYTES)
        except OSError:
            return {}
        if not data or len(data) < HEADER_BYTES or not data.startswith(MAGIC) or data[len(MAGIC)] != VERSION:
            return {}
        try:
            plain = crypto.decrypt(self._key, data[len(MAGIC) + 1 : HEADER_BYTES], data[HEADER_BYTES:], data[:HEADER_BYTES])
            entries = json.loads(plain)
        except (crypto.DecryptionFailed, ValueError):
            return {}
        return entries if isinstance(entries, dict) else {}

    def get(self, registration: Registration) -> Optional[CachedToken]:
        entry = self._load().get(registration.id)
        if not isinstance(entry, dict) or entry.get("fingerprint") != fingerprint(registration):
            return None
        try:
            return CachedToken(entry["username"], entry["secret"], float(entry["expires_at"]), float(entry["fetched_at"]))
        except (KeyError, TypeError, ValueError):
            return None

    def _rewrite(self, change: Any, now: float) -> None:
        with exclusive_lock(self.lock_path):
            entries = self._load()
            change(entries)
            # Expired tokens are never served, so they are not kept: the file stays small.
            entries = {k: v for k, v in entries.items() if isinstance(v, dict) and float(v.get("expires_at", 0)) > now}
            header = MAGIC + bytes([VERSION]) + crypto.new_nonce()
            body = json.dumps(entries, separators=(",", ":")).encode("utf-8")
            atomic_write(self.path, header + crypto.encrypt(self._key, header[len(MAGIC) + 1 :], body, header))

    def put(self, registration: Registration, token: CachedToken, now: float) -> None:
        entry = {"username": token.username, "secret": token.secret, "expires_at": token.expires_at,
                 "fetched_at": token.fetched_at, "fingerprint": fingerprint(registration)}
        self._rewrite(lambda entries: entries.__setitem__(registration.id, entry), now)

    def drop(self, registration_ids: Optional[list[str]], now: float) -> int:
        """Forget the tokens of these registrations (all when None); returns how many were dropped."""
        dropped = []

        def change(entries: dict[str, Any]) -> None:
            for key in list(entries):
                if registration_ids is None or key in registration_ids:
                    dropped.append(entries.pop(key))

        if self.path.exists():
            self._rewrite(change, now)
        return len(dropped)

    def entries(self) -> dict[str, Any]:
        return {k: {"expires_at": v.get("expires_at")} for k, v in self._load().items() if isinstance(v, dict)}
