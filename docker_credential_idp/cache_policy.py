"""When a cached answer may be served: pure functions of now and the answer's life.

An answer is FRESH until its refresh point, STALE (still valid, served only if a refresh fails) until it expires,
then EXPIRED (never served). The refresh point is `margin` seconds before expiry, or half the token's life for a
token issued with less than twice the margin, so a short-lived token is still reused for a while. An answer
without expiry (a static password) stays FRESH; its registration changing is what retires it.
"""

from __future__ import annotations

FRESH = "fresh"
STALE = "stale"
EXPIRED = "expired"
DEFAULT_REFRESH_MARGIN = 300.0
DEFAULT_FETCH_TIMEOUT = 10.0  # seconds one fetch may take unless the provider or registration says otherwise
LOCK_WAIT_SLACK = 2.0  # a caller waits for another's fetch at most its timeout plus this, then gives up


def refresh_at(fetched_at: float, expires_at: float | None, margin: float) -> float | None:
    if expires_at is None:
        return None
    lifetime = max(expires_at - fetched_at, 0.0)
    return expires_at - min(margin, lifetime / 2)


def state(now: float, refresh_point: float | None, expires_at: float | None) -> str:
    if expires_at is None:
        return FRESH
    if now >= expires_at:
        return EXPIRED
    if refresh_point is None or now >= refresh_point:
        return STALE
    return FRESH


def token_state(now: float, fetched_at: float, expires_at: float | None, margin: float = DEFAULT_REFRESH_MARGIN) -> str:
    return state(now, refresh_at(fetched_at, expires_at, margin), expires_at)


def worth_caching(now: float, expires_at: float | None) -> bool:
    """Everything but a credential already expired when issued (that one is returned, not kept)."""
    return expires_at is None or expires_at > now
