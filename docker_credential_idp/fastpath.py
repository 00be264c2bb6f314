"""The cache-hit `get`: docker calls it on every pull, push and build step, so it does the least work possible.

From the request's host to the answer with nothing but the standard library's cheapest modules and the crypto
backend: decrypt the vault, find the host's lines by string search, choose by longest prefix, look the
registration's fingerprint up in the answer cache, check the policy. Anything else — no vault, no match, an
ambiguous host, a stale or missing answer, any error — returns None, and the full service answers (and explains).
The answer is byte-for-byte what protocol.handle would print (tests/test_fastpath.py).
"""

from __future__ import annotations

import os
import time

from . import cache_policy, matching, token_cache, vault
from .errors import IdpError
from .paths import home_location

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping, Optional

try:  # the C accelerator json.dumps uses: the same escaping, without loading json (and re)
    from _json import encode_basestring_ascii as _quote
except ImportError:  # pragma: no cover - CPython always has it
    from json.encoder import py_encode_basestring_ascii as _quote


def answer(stdin: bytes, env: Mapping[str, str]) -> Optional[bytes]:
    """The `get` answer from the cache, or None to take the full path."""
    try:
        server = stdin.decode("utf-8").strip()
        if not server or len(stdin) > 1024 * 1024:
            return None
        request = matching.parse_server(server)
        home = home_location(env)
        opened = vault.open_payload(os.path.join(home, vault.VAULT_FILE_NAME), home, env)
        if opened is None:
            return None
        lines = vault.lines_on_host(opened[2], matching.host_of(request))
        selection = matching.select(request, [(prefix, rid) for prefix, rid, _ in lines],
                                    env.get(matching.SCOPE_VARIABLE))
        record = next(text for _, rid, text in lines if rid == selection.registration_id)
        cache = token_cache.TokenCache(home, opened[1])
        token = cache.lookup(token_cache.fingerprint_of_record(record))
    except (IdpError, UnicodeDecodeError, StopIteration):
        return None
    if token is None or cache_policy.state(time.time(), token.refresh_at, token.expires_at) != cache_policy.FRESH:
        return None
    return (f'{{"ServerURL": {_quote(server)}, "Username": {_quote(token.username)}, '
            f'"Secret": {_quote(token.secret)}}}\n').encode("utf-8")
