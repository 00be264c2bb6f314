"""The cache-hit `get`: docker calls it on every pull, push and build step, so it does the least work possible.

From the request to the answer with the standard library's cheapest modules and the crypto backend: read the vault
file for its data key and generation, then look up, in the answer cache, which registration this generation of the
vault resolved the request to, and that registration's answer. A request not seen since the vault last changed is
resolved here too, from the registrations (decrypted, but not parsed: the vault's lines are searched as text).

When there is no fresh answer, the registration's fetch lock is taken here, before the full service and its imports
load: of many parallel callers one fetches, and the others wait in this light path and answer from the cache as
soon as the token lands. The full path gets a Handover saying what was done. Anything else — no vault, an ambiguous
host, any error — returns nothing, and the full service answers and explains. An answer is byte-for-byte what
protocol.handle would print (tests/test_fastpath.py).
"""

from __future__ import annotations

import os
import time

from . import cache_policy, matching, token_cache, vault
from .errors import IdpError
from .paths import home_location

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Mapping, Optional

try:  # the C accelerator json.dumps uses: the same escaping, without loading json (and re)
    from _json import encode_basestring_ascii as _quote
except ImportError:  # pragma: no cover - CPython always has it
    from json.encoder import py_encode_basestring_ascii as _quote


class Handover:
    """For the full path: the registration resolved here, whether this process now holds its fetch lock, and how
    long it already waited for it (the full path waits only what is left of the bound)."""

    __slots__ = ("registration_id", "holding", "waited")

    def __init__(self, registration_id: str, holding: bool, waited: float) -> None:
        self.registration_id, self.holding, self.waited = registration_id, holding, waited


def answer(stdin: bytes, env: Mapping[str, str]) -> Optional[bytes]:
    """The `get` answer from the cache, or None (without waiting for anyone's fetch)."""
    return lookup(stdin, env, wait_for_fetch=False)[0]


def lookup(stdin: bytes, env: Mapping[str, str], wait_for_fetch: bool = True,
           debug: Optional[Callable[[str], None]] = None) -> tuple[Optional[bytes], Optional[Handover]]:
    """(answer, None) from the cache; else (None, a Handover or None) for the full path, which explains.
    `debug` hears why, when the caller asked (DOCKER_CREDENTIAL_IDP_DEBUG): messages name a cause, never input."""

    def gave_up(reason: str) -> tuple[None, None]:
        if debug is not None:
            debug(f"docker-credential-idp: debug: the cache-hit path gave up: {reason}")
        return None, None

    try:
        server = stdin.decode("utf-8").strip()
        if not server or len(stdin) > 1024 * 1024:
            return gave_up("no server, or too much input")
        request = matching.parse_server(server)
        home = home_location(env)
        path = os.path.join(home, vault.VAULT_FILE_NAME)
        opened = vault.open_header(path, home, env)
        if opened is None:
            return gave_up("no vault yet")
        data_key, generation = opened
        cache = token_cache.TokenCache(home, data_key)
        scope = env.get(matching.SCOPE_VARIABLE) or ""
        entries = cache.load()
        resolved = entries.resolutions.get((generation, scope, request))
        if resolved is None:
            resolved = _resolve(path, home, env, generation, scope, request)
            if resolved is None:
                return gave_up("the request resolves to no single registration, or the vault changed meanwhile")
        token = resolved.answer(entries)
        if token is not None and _fresh(token):
            if (generation, scope, request) not in entries.resolutions:
                cache.remember(resolved.fingerprint, resolved.registration_id, None, time.time(),
                               (generation, scope, request), resolved.lock_wait)
            return _render(server, token), None
        if not wait_for_fetch:
            return gave_up("no fresh answer")
        return _wait_for_fetch(cache, home, resolved, server)
    except IdpError as error:
        return gave_up(error.message)
    except (UnicodeDecodeError, StopIteration) as error:
        return gave_up(type(error).__name__)


def _resolve(path: str, home: str, env: Mapping[str, str], generation: str, scope: str,
             request: str) -> Optional[token_cache.Resolved]:
    """Which registration serves the request, from the vault's lines (no JSON parsed), or None to let the full
    path explain (nothing matches, the host is ambiguous, the vault changed meanwhile)."""
    opened = vault.open_payload(path, home, env)
    if opened is None or opened.generation != generation:
        return None
    lines = vault.lines_on_host(opened.text, matching.host_of(request))
    try:
        selection = matching.select(request, [(prefix, rid) for prefix, rid, _ in lines], scope or None)
    except IdpError:
        return None
    record = next(text for _, rid, text in lines if rid == selection.registration_id)
    timeout = vault.record_timeout(record) or cache_policy.DEFAULT_FETCH_TIMEOUT
    return token_cache.Resolved(token_cache.fingerprint_of_record(record), selection.registration_id,
                                timeout + cache_policy.LOCK_WAIT_SLACK)


def _wait_for_fetch(cache: token_cache.TokenCache, home: str, resolved: token_cache.Resolved,
                    server: str) -> tuple[Optional[bytes], Optional[Handover]]:
    """Take the registration's fetch lock, waiting for whoever holds it; then answer if they cached a token."""
    from .fsutil import LockTimeout

    started, since = time.monotonic(), time.time()
    try:
        descriptor = token_cache.acquire_fetch_lock(home, resolved.registration_id, resolved.lock_wait)
    except LockTimeout:
        return None, Handover(resolved.registration_id, False, time.monotonic() - started)
    token = resolved.answer(cache.load())
    if token is not None and (_fresh(token) or _fetched_since(token, since)):
        os.close(descriptor)
        return _render(server, token), None
    # Still no fresh answer: this process fetches. The lock stays held (the descriptor open) until it exits.
    return None, Handover(resolved.registration_id, True, time.monotonic() - started)


def _fresh(token: token_cache.CachedToken) -> bool:
    return cache_policy.state(time.time(), token.refresh_at, token.expires_at) == cache_policy.FRESH


def _fetched_since(token: token_cache.CachedToken, since: float) -> bool:
    """Another caller fetched it while this one waited: as fresh as anything a fetch of ours would be."""
    return token.fetched_at >= since and \
        cache_policy.state(time.time(), token.refresh_at, token.expires_at) != cache_policy.EXPIRED


def _render(server: str, token: token_cache.CachedToken) -> bytes:
    return (f'{{"ServerURL": {_quote(server)}, "Username": {_quote(token.username)}, '
            f'"Secret": {_quote(token.secret)}}}\n').encode("utf-8")
