"""The cache-hit `get`: docker calls it on every pull, push and build step, so it does the least work possible.

From the request to the answer with the standard library's cheapest modules and the crypto backend: read the
vault's header (not its registrations) for the data key and the vault's generation, then look up, in the answer
cache, which registration this generation of the vault resolved the request to, and that registration's answer.
Anything else — no vault, a request not seen since the vault last changed, a stale or missing answer, any error —
returns None, and the full service answers (and explains). The answer is byte-for-byte what protocol.handle would
print (tests/test_fastpath.py).
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
        opened = vault.open_header(os.path.join(home, vault.VAULT_FILE_NAME), home, env)
        if opened is None:
            return None
        data_key, generation = opened
        token = token_cache.TokenCache(home, data_key).resolved(generation, env.get(matching.SCOPE_VARIABLE) or "",
                                                                request)
    except (IdpError, UnicodeDecodeError):
        return None
    if token is None or cache_policy.state(time.time(), token.refresh_at, token.expires_at) != cache_policy.FRESH:
        return None
    return (f'{{"ServerURL": {_quote(server)}, "Username": {_quote(token.username)}, '
            f'"Secret": {_quote(token.secret)}}}\n').encode("utf-8")
