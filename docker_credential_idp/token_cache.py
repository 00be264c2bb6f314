"""Answers, cached encrypted at rest with the vault's data key: every credential a provider returns, until its
refresh point (short-lived tokens) or until its registration changes (static passwords).

One small file, `tokens.bin`: magic, version, nonce, then AES-256-GCM over text lines

    <fingerprint> \\t <registration id> \\t <expires_at or ""> \\t <fetched_at> \\t <refresh_at> \\t b64(username) \\t b64(secret)

The fingerprint is a hash of the registration's vault record, so changing a registration (`--replace`, a new
password through `store`) retires its answer, and the cache-hit path finds an answer from the vault line alone,
without parsing JSON or loading a provider. The cache is disposable: an unreadable file is treated as empty.

Beside the answers: which registration each request resolved to (R lines), when a note was last printed (N), and
each slot's last fetch that failed because its source did not answer (F: the fingerprint it failed under, when, when
it is tried again, the one-line message), so that every process holds the registration back until then.
"""

from __future__ import annotations

import binascii
import os

from . import cache_policy, crypto

TYPE_CHECKING = False  # typing itself is not imported: it costs a cache hit several ms
if TYPE_CHECKING:
    from typing import Callable, Optional

    from .model import Registration

MAGIC = b"IDPTOKEN"
VERSION = 6  # 5: a resolution keeps the fetch timeout, not a lock wait; 6: and the host a pattern served
# (F lines came without a new version: a reader skips the kinds of line it does not know, a writer drops them.)
HEADER_BYTES = len(MAGIC) + 1 + crypto.NONCE_BYTES
MAX_BYTES = 4 * 1024 * 1024
FILE_NAME = "tokens.bin"
LOCK_NAME = "tokens.lock"
MAX_RESOLUTIONS = 512  # distinct (request, scope) pairs remembered per vault generation; the oldest go first
LOCK_WAIT = 2.0  # seconds a writer waits for tokens.lock; past that it answers without caching


def fingerprint(registration: Registration, host: str = "", principal: str = "") -> str:
    from .vault_table import record_text

    return fingerprint_of_record(record_text(registration), host, principal)


def fingerprint_of_record(record: str, host: str = "", principal: str = "") -> str:
    """The fingerprint of a registration from its vault record, as the cache-hit path reads it; for a pattern
    registration, of the record and the host it served (each host has its own credential); for an answer fetched
    with a pod's service-account token (kubelet mode), of the record and that principal (kubernetes.principal: each
    service account has its own, never a `get`'s)."""
    return crypto.sha256((record + ("\0" + host if host else "") + ("\0\0" + principal if principal else ""))
                         .encode("utf-8")).hex()[:32]


def registration_of_slot(slot: str) -> str:
    return slot.split("@", 1)[0].split("!", 1)[0]


def fetch_lock_path(home: str | os.PathLike[str], slot: str) -> str:
    """The lock one fetch of a slot's token holds, so that parallel callers make one upstream call."""
    return os.path.join(home, "locks", crypto.sha256(slot.encode("utf-8")).hex()[:24] + ".lock")


def acquire_fetch_lock(home: str | os.PathLike[str], slot: str, wait: float) -> int:
    """fsutil.acquire_lock on a slot's fetch lock, in a `locks` directory that must be a real one."""
    from .fsutil import acquire_lock, ensure_private_dir

    path = fetch_lock_path(home, slot)
    ensure_private_dir(os.path.dirname(path), link_ok=False)
    return acquire_lock(path, wait)


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


class Target:
    """A registration as the answer cache knows it: its record's fingerprint, its id, how long one fetch of its
    credential may take (the vault's column, so that no record is parsed to know it), for a pattern registration
    the host it serves this time (empty otherwise), and in kubelet mode the service account it is fetched for
    (kubernetes.principal; empty otherwise)."""

    __slots__ = ("fingerprint", "registration_id", "fetch_timeout", "host", "principal")

    def __init__(self, fingerprint: str, registration_id: str, fetch_timeout: float, host: str = "",
                 principal: str = "") -> None:
        self.fingerprint, self.registration_id, self.fetch_timeout = fingerprint, registration_id, fetch_timeout
        self.host, self.principal = host, principal

    @classmethod
    def of(cls, registration: Registration, host: str = "", principal: str = "") -> Target:
        return cls(fingerprint(registration, host, principal), registration.id, registration.fetch_timeout, host,
                   principal)

    @property
    def slot(self) -> str:
        """What has one answer and one fetch at a time: the registration, or a pattern's registration on one host,
        each for one service account in kubelet mode."""
        return (self.registration_id + (f"@{self.host}" if self.host else "")
                + (f"!{self.principal}" if self.principal else ""))

    def answer(self, entries: Entries) -> Optional[CachedToken]:
        entry = entries.answers.get(self.fingerprint)
        return entry[1] if entry else None

    def failure(self, entries: Entries) -> Optional[FetchFailure]:
        """The slot's last failed fetch, if it failed under this record (a changed registration is not held back)."""
        failure = entries.failures.get(self.slot)
        return failure if failure is not None and failure.fingerprint == self.fingerprint else None


class FetchFailure:
    """A slot's last fetch, failed because its source did not answer (ProviderError.transient): its message is the
    ProviderError's line, which names no secret. It holds back only the record it failed under (`fingerprint`)."""

    __slots__ = ("fingerprint", "failed_at", "retry_at", "message")

    def __init__(self, fingerprint: str, failed_at: float, retry_at: float, message: str) -> None:
        self.fingerprint, self.failed_at, self.retry_at, self.message = fingerprint, failed_at, retry_at, message


class Entries:
    """The file's content: answers by fingerprint, resolutions (generation, scope, request) -> Target, when each
    recent note was last printed (so that a client calling us several times in a row sees it once), and the recent
    fetch failures by slot."""

    __slots__ = ("answers", "resolutions", "notes", "failures")

    def __init__(self) -> None:
        self.answers: dict[str, tuple[str, CachedToken]] = {}
        self.resolutions: dict[tuple[str, str, str], Target] = {}
        self.notes: dict[str, float] = {}
        self.failures: dict[str, FetchFailure] = {}

    @classmethod
    def parse(cls, text: str) -> Entries:
        """Malformed lines are skipped: the cache is disposable."""
        entries = cls()
        for line in text.split("\n"):
            fields = line.split("\t")
            try:
                if fields[0] == "A" and len(fields) == 8:
                    token = CachedToken(_decode(fields[6]), _decode(fields[7]), _number(fields[3]), float(fields[4]),
                                        _number(fields[5]))
                    entries.answers[fields[1]] = (fields[2], token)
                elif fields[0] == "R" and len(fields) == 8:
                    entries.resolutions[(fields[1], _decode(fields[2]), _decode(fields[3]))] = Target(
                        fields[4], fields[5], float(fields[6]), _decode(fields[7]))
                elif fields[0] == "N" and len(fields) == 3:
                    entries.notes[_decode(fields[1])] = float(fields[2])
                elif fields[0] == "F" and len(fields) == 6:
                    entries.failures[_decode(fields[1])] = FetchFailure(fields[2], float(fields[3]), float(fields[4]),
                                                                        _decode(fields[5]))
            except (ValueError, binascii.Error):
                continue
        return entries

    def format(self) -> str:
        def number(value: Optional[float]) -> str:
            return "" if value is None else repr(float(value))

        lines = [f"A\t{key}\t{rid}\t{number(t.expires_at)}\t{number(t.fetched_at)}\t{number(t.refresh_at)}\t"
                 f"{_encode(t.username)}\t{_encode(t.secret)}\n" for key, (rid, t) in sorted(self.answers.items())]
        lines += [f"R\t{generation}\t{_encode(scope)}\t{_encode(request)}\t{r.fingerprint}\t{r.registration_id}\t"
                  f"{r.fetch_timeout!r}\t{_encode(r.host)}\n" for (generation, scope, request), r in self.resolutions.items()]
        lines += [f"N\t{_encode(key)}\t{when!r}\n" for key, when in self.notes.items()]
        lines += [f"F\t{_encode(slot)}\t{f.fingerprint}\t{f.failed_at!r}\t{f.retry_at!r}\t{_encode(f.message)}\n"
                  for slot, f in self.failures.items()]
        return "".join(lines)


class TokenCache:
    """The answer cache. It is an optimisation: when it cannot be written (a read-only or full home, a stuck
    writer holding its lock) every caller still gets its answer, and `on_write_failure` hears why, once."""

    NOTE_WINDOW = 10.0  # seconds during which a printed note is not printed again

    def __init__(self, home: str | os.PathLike[str], data_key: bytes,
                 on_write_failure: Optional[Callable[[str], None]] = None) -> None:
        self.path = os.path.join(home, FILE_NAME)
        self.lock_path = os.path.join(home, LOCK_NAME)
        self._key = data_key
        self._on_write_failure = on_write_failure
        self.write_failure: Optional[str] = None

    def _load(self) -> Entries:
        """The file's entries; empty when it is missing, unreadable or damaged (the cache is disposable). One that
        another user could have planted is refused (UnsafePath), not ignored."""
        from .errors import NotRegularFile
        from .fsutil import read_private

        try:
            data = read_private(self.path, MAX_BYTES)
        except OSError:
            return Entries()
        except NotRegularFile as error:  # a directory or FIFO in its place: no cache, but still an answer
            self.unwritable(error.message)
            return Entries()
        if data is None or len(data) < HEADER_BYTES or not data.startswith(MAGIC) or data[len(MAGIC)] != VERSION:
            return Entries()
        try:
            plain = crypto.decrypt(self._key, data[len(MAGIC) + 1 : HEADER_BYTES], data[HEADER_BYTES:], data[:HEADER_BYTES])
            return Entries.parse(plain.decode("utf-8"))
        except (crypto.DecryptionFailed, UnicodeDecodeError):
            return Entries()

    def get(self, registration: Registration, host: str = "") -> Optional[CachedToken]:
        return Target.of(registration, host).answer(self._load())

    def load(self) -> Entries:
        return self._load()

    def _rewrite(self, change: Callable[[Entries], None], now: float, raising: bool = False) -> bool:
        """Apply `change` under the cache's lock; False (and the reason reported) when the file cannot be written.
        `raising`: for a command whose whole work is the change (cache clear), the OSError or LockTimeout itself."""
        from .fsutil import LockTimeout, atomic_write, exclusive_lock

        if self.write_failure is not None and not raising:
            return False
        try:
            with exclusive_lock(self.lock_path, wait=LOCK_WAIT):
                entries = self._load()
                change(entries)
                # Expired tokens are never served, so they are not kept: the file stays small.
                entries.answers = {k: v for k, v in entries.answers.items()
                                   if v[1].expires_at is None or v[1].expires_at > now}
                entries.notes = {k: t for k, t in entries.notes.items() if now - t < self.NOTE_WINDOW}
                entries.failures = {k: f for k, f in entries.failures.items()
                                    if cache_policy.held_back(now, f.failed_at, f.retry_at)}
                header = MAGIC + bytes([VERSION]) + crypto.new_nonce()
                body = entries.format().encode("utf-8")
                atomic_write(self.path, header + crypto.encrypt(self._key, header[len(MAGIC) + 1 :], body, header))
        except LockTimeout:
            if raising:
                raise
            self.unwritable(f"another process has held {self.lock_path} for more than {LOCK_WAIT:g} s")
            return False
        except OSError as error:
            if raising:
                raise
            self.unwritable(f"cannot write {self.path}: {error.strerror or error}")
            return False
        return True

    def unwritable(self, reason: str) -> None:
        """Stop writing for the rest of this process, and report why once."""
        if self.write_failure is None:
            self.write_failure = reason
            if self._on_write_failure is not None:
                self._on_write_failure(reason)

    def note_once(self, key: str, now: float) -> bool:
        """True when the note `key` has not been printed in the last NOTE_WINDOW seconds (and remember it now)."""
        fresh: list[bool] = []

        def change(entries: Entries) -> None:
            fresh.append(now - entries.notes.get(key, float("-inf")) >= self.NOTE_WINDOW)
            entries.notes[key] = now

        return self._rewrite(change, now) is False or fresh[0]

    def remember(self, target: Target, token: Optional[CachedToken], now: float,
                 resolution: Optional[tuple[str, str, str]]) -> None:
        """Cache the target's answer (when given: a fetch succeeded, so the slot's failure is forgotten) and that
        `resolution` led to it (when given)."""

        def change(entries: Entries) -> None:
            if token is not None:
                for other in [k for k, (slot, _) in entries.answers.items() if slot == target.slot]:
                    del entries.answers[other]  # the slot's earlier answers, under the registration's earlier records
                entries.answers[target.fingerprint] = (target.slot, token)
                entries.failures.pop(target.slot, None)
            if resolution is not None:
                # Only the current vault generation's resolutions can be used again.
                entries.resolutions = {r: v for r, v in entries.resolutions.items() if r[0] == resolution[0]}
                entries.resolutions.pop(resolution, None)
                entries.resolutions[resolution] = target
                while len(entries.resolutions) > MAX_RESOLUTIONS:
                    del entries.resolutions[next(iter(entries.resolutions))]

        self._rewrite(change, now)

    def remember_failure(self, target: Target, failure: FetchFailure) -> None:
        """Keep the slot's failed fetch, so that callers in every process are held back until its retry point."""

        def change(entries: Entries) -> None:
            entries.failures[target.slot] = failure

        self._rewrite(change, failure.failed_at)

    def forget_failure(self, target: Target, now: float) -> None:
        """A fetch succeeded without an answer worth caching: the slot is no longer held back."""

        def change(entries: Entries) -> None:
            entries.failures.pop(target.slot, None)

        self._rewrite(change, now)

    def drop(self, registration_ids: Optional[list[str]], now: float, answers: bool = True,
             raising: bool = False) -> tuple[int, int]:
        """Forget the answers (unless `answers` is False) and the failed fetches for these registrations (all when
        None), so that the next call fetches; returns how many answers and how many held-back failures were dropped.
        `raising`: a file that cannot be written is the OSError (or LockTimeout), not a warning."""
        dropped = []
        held_back: list[str] = []

        def mine(slot: str) -> bool:
            return registration_ids is None or registration_of_slot(slot) in registration_ids

        def change(entries: Entries) -> None:
            held_back.extend(slot for slot, f in entries.failures.items()
                             if mine(slot) and cache_policy.held_back(now, f.failed_at, f.retry_at))
            entries.failures = {slot: f for slot, f in entries.failures.items() if not mine(slot)}
            if not answers:
                return
            for key in list(entries.answers):
                if mine(entries.answers[key][0]):
                    dropped.append(entries.answers.pop(key))
            if registration_ids is None:
                entries.resolutions.clear()

        if os.path.exists(self.path) and not self._rewrite(change, now, raising):
            return 0, 0
        return len(dropped), len(held_back)

    def entries(self) -> dict[str, dict[str, Optional[float]]]:
        """slot (a registration id; id@host for a pattern's; !principal after it in kubelet mode) -> {expires_at}, for
        status; never a secret."""
        return {slot: {"expires_at": token.expires_at} for slot, token in self._load().answers.values()}


class NoTokenCache(TokenCache):
    """The cache before the vault exists (no data key to seal answers with): finds nothing, keeps nothing."""

    def __init__(self) -> None:
        super().__init__(os.devnull, b"")

    def _load(self) -> Entries:
        return Entries()

    def _rewrite(self, change: Callable[[Entries], None], now: float, raising: bool = False) -> bool:
        return False

    def drop(self, registration_ids: Optional[list[str]], now: float, answers: bool = True,
             raising: bool = False) -> tuple[int, int]:
        return 0, 0
