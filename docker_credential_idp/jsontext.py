"""JSON and text from outside (stdin, files, servers), read so that no input can crash the reader."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def loads(data: str | bytes) -> Any:
    """json.loads, with nesting too deep for the parser reported as the ValueError any malformed JSON raises."""
    import json

    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def is_text(value: str) -> bool:
    """True when `value` can be written as UTF-8: JSON's \\\\uD800 escapes and undecodable argv or environment bytes
    give strings with lone surrogates, which would fail every later write of them."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
