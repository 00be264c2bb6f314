"""When a cached answer may be served: pure functions of now and the answer's life.

An answer is FRESH until its refresh point, STALE (still valid, served only if a refresh fails) until it expires,
then EXPIRED (never served). One rule places the refresh point (`refresh_at`): `margin` seconds before expiry, or half
the token's life for a token issued with less than twice the margin — but never with less than the registration's
`--min-ttl` left (default 10 minutes): BuildKit keeps a helper's answer up to 10 minutes (moby/buildkit PR#5684), so a
credential handed out with less left could die in its hands. A credential whose whole life is no longer than the
min-ttl has its refresh point at (or before) the moment it was fetched: it is never fresh, so no request is answered
from the cache and each gets one minted for it (callers that waited for that very fetch share it, and it stays the
stale answer served if the next fetch fails). An answer without expiry (a static password) stays FRESH; its
registration changing is what retires it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself is not imported: this module is on the cache-hit path
if TYPE_CHECKING:
    from typing import Final, Literal

    Reason = Literal["asked", "due", "missing"]  # a SyncReason

FRESH = "fresh"
STALE = "stale"
EXPIRED = "expired"
DEFAULT_REFRESH_MARGIN = 300.0
DEFAULT_MIN_TTL = 600.0  # --min-ttl: BuildKit's answer cache keeps a helper's answer up to 10 minutes (PR#5684)
MAX_LIFETIME = 30 * 86400.0  # an expiry further away than this (or not a number) is not believed
LOCK_WAIT_SLACK = 2.0  # a caller waits for another's fetch at most its timeout plus this, then gives up


def refresh_at(fetched_at: float, expires_at: float | None, margin: float,
               min_ttl: float = DEFAULT_MIN_TTL) -> float | None:
    """The one refresh rule: from this point on an answer is no longer served fresh. `margin` before expiry (half the
    life of a token issued with less than twice it), never with less than `min_ttl` left."""
    if expires_at is None:
        return None
    lifetime = max(expires_at - fetched_at, 0.0)
    return expires_at - max(min_ttl, min(margin, lifetime / 2))


def refresh_lead(margin: float, min_ttl: float = DEFAULT_MIN_TTL) -> float:
    """How long before expiry a token of a long life is refreshed: the margin, never less than the min-ttl. A
    lifetime no longer than this would be refreshed as soon as it is fetched."""
    return max(min_ttl, margin)


def state(now: float, refresh_point: float | None, expires_at: float | None) -> str:
    if expires_at is None:
        return FRESH
    if now >= expires_at:
        return EXPIRED
    if refresh_point is None or now >= refresh_point:
        return STALE
    return FRESH


def believable_expiry(now: float, expires_at: float | None, fallback_lifetime: float) -> float | None:
    """A source's expiry if it is a time after 1970 and at most 30 days ahead (one in the past is believed: that
    token came expired); otherwise (NaN, infinities, 1e300, a date decades away) the registration's own lifetime
    from now."""
    if expires_at is None:
        return None
    if 0 <= expires_at <= now + MAX_LIFETIME:  # false for NaN, whose every comparison is false
        return expires_at
    return now + fallback_lifetime


def seconds_to_refresh(now: float, refresh_point: float | None) -> int | None:
    """How long a consumer that caches our answer itself (the kubelet) may keep it: until the answer's refresh point
    (0 for one that is never fresh); None for an answer without expiry."""
    return None if refresh_point is None else max(0, int(refresh_point - now))


def lock_wait(fetch_timeout: float) -> float:
    """How long a caller waits for another caller's fetch of the same registration: one fetch, and a little."""
    return fetch_timeout + LOCK_WAIT_SLACK


SYNC_ON_MISS_INTERVAL = 60.0  # a request no registration serves syncs the sources at most this often


class SyncReason:
    """Why a registry source is synced (sources.sync); source_due holds each one's rule. Plain strings, as FRESH and
    STALE are: the cache-hit path does not import enum."""

    ASKED: Final = "asked"  # `source sync`: at once, whatever the table's age
    DUE: Final = "due"  # before a request: the table is older than the source's refresh interval
    MISSING: Final = "missing"  # a request found no registration: the platform may list it by now


def source_due(now: float, attempted_at: float, refresh: float, reason: Reason) -> bool:
    """Whether a registry source is synced for `reason`: when asked, always; before a request, when its table is
    older than its refresh interval, or when the request found no registration and the last try is older than a
    minute (unregistered hosts are common with credsStore: they must not call the platform on every pull)."""
    if reason == SyncReason.ASKED:
        return True
    return now - attempted_at >= (min(refresh, SYNC_ON_MISS_INTERVAL) if reason == SyncReason.MISSING else refresh)


def worth_caching(now: float, expires_at: float | None) -> bool:
    """Everything but a credential already expired when issued (that one is returned, not kept). One that is never
    fresh (no longer than the min-ttl) is kept too: for the callers waiting for its fetch, and as a stale answer."""
    return expires_at is None or expires_at > now


FAILURE_BACKOFF = 30.0  # after a source did not answer, `get` does not call it again for about this long
FAILURE_JITTER = 0.25  # give or take this fraction, drawn per failure, so that many hosts do not retry in step


def retry_after_failure(failed_at: float, jitter: float) -> float:
    """When a registration whose source did not answer at `failed_at` is tried again; `jitter` is a fraction in
    [0, 1) (random in use, fixed in tests), spreading the retry over FAILURE_BACKOFF give or take FAILURE_JITTER."""
    return failed_at + FAILURE_BACKOFF * (1 - FAILURE_JITTER + 2 * FAILURE_JITTER * min(max(jitter, 0.0), 1.0))


def held_back(now: float, failed_at: float, retry_at: float) -> bool:
    """Whether a failure still stands in for a fetch: from when it happened until its retry point, and never longer
    than the longest back-off (a clock set back, or forward past the retry, lets the next call try)."""
    return failed_at <= now < min(retry_at, failed_at + FAILURE_BACKOFF * (1 + FAILURE_JITTER))
