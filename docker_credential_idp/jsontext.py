"""JSON and text from outside (stdin, files, servers), read so that no input can crash the reader."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class UnkeptNumber(ValueError):
    """A number json.dumps would not write back as JSON: NaN, Infinity, or out of a float's range (1e99999)."""


def loads(data: str | bytes, finite: bool = False) -> Any:
    """json.loads, with nesting too deep for the parser reported as the ValueError any malformed JSON raises.
    `finite`: NaN, Infinity and numbers out of range raise UnkeptNumber (Python reads them as floats it would
    write back as `Infinity`, which docker and every other JSON parser refuse)."""
    import json

    def unkept(text: str) -> Any:
        raise UnkeptNumber(text[:40])

    def checked_float(text: str) -> float:
        value = float(text)
        return value if value - value == 0 else unkept(text)  # inf - inf and nan - nan are NaN

    try:
        return json.loads(data, parse_float=checked_float, parse_constant=unkept) if finite else json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def shown(text: object, limit: int = 200) -> str:
    """Text someone else wrote (a config file, a server), as it may be printed: at most `limit` characters,
    control characters escaped."""
    cut = str(text)[:limit]
    return cut if cut.isprintable() else cut.encode("unicode_escape").decode("ascii")


def is_text(value: str) -> bool:
    """True when `value` can be written as UTF-8: JSON's \\\\uD800 escapes and undecodable argv or environment bytes
    give strings with lone surrogates, which would fail every later write of them."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
