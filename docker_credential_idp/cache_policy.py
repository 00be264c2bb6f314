"""When a cached token may be served: a pure function of now and the token's life.

A token is FRESH until its refresh point, STALE (still valid, served only if a refresh fails) until it expires,
then EXPIRED (never served). The refresh point is `margin` seconds before expiry, or half the token's life for a
token issued with less than twice the margin, so a short-lived token is still reused for a while.
"""

from __future__ import annotations

FRESH = "fresh"
STALE = "stale"
EXPIRED = "expired"
DEFAULT_REFRESH_MARGIN = 300.0


def refresh_at(fetched_at: float, expires_at: float, margin: float) -> float:
    lifetime = max(expires_at - fetched_at, 0.0)
    return expires_at - min(margin, lifetime / 2)


def token_state(now: float, fetched_at: float, expires_at: float, margin: float = DEFAULT_REFRESH_MARGIN) -> str:
    if now >= expires_at:
        return EXPIRED
    if now >= refresh_at(fetched_at, expires_at, margin):
        return STALE
    return FRESH


def worth_caching(now: float, expires_at: float | None) -> bool:
    """A credential without expiry needs no cache; one already expired when issued is returned but not kept."""
    return expires_at is not None and expires_at > now
