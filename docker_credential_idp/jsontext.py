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
    write back as `Infinity`, which docker and every other JSON parser refuse).

    Well-formed JSON in a str, or in ASCII bytes, is read by json's own C scanner (_json) without importing json,
    which imports `re` (a cold fetch reads a record and, for most types, an answer): the parser json.loads runs,
    with its settings. Anything else goes through json.loads itself, so that what it raises is json's."""
    try:
        if isinstance(data, str) and not data.startswith("\ufeff"):
            text: str | None = data
        elif isinstance(data, (bytes, bytearray)) and data.isascii():
            text = data.decode("ascii")
        else:  # a BOM, another encoding json detects, or not text: json.loads decides
            text = None
        if text is not None:
            start = len(text) - len(text.lstrip(" \t\n\r"))
            try:
                value, end = _scanner(finite)(text, start)
            except (StopIteration, ValueError, SystemError):
                # Malformed: json.loads says how. (The scanner reports errors through json.decoder, which it finds
                # only once json is imported; before that it fails with a SystemError.)
                value, end = None, -1
            if end >= 0 and not text[end:].strip(" \t\n\r"):
                return value
        import json

        return json.loads(data, parse_float=_checked_float, parse_constant=_unkept) if finite else json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _unkept(text: str) -> Any:
    raise UnkeptNumber(text[:40])


def _checked_float(text: str) -> float:
    value = float(text)
    return value if value - value == 0 else _unkept(text)  # inf - inf and nan - nan are NaN


_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_scanners: dict[bool, Any] = {}


class _Settings:
    """What _json's scanner reads of a decoder: json.JSONDecoder()'s defaults (strict, no hooks), or with `finite`
    the checks of loads(finite=True)."""

    def __init__(self, finite: bool) -> None:
        self.strict = True
        self.object_hook = self.object_pairs_hook = None
        self.parse_int = int
        self.parse_float = _checked_float if finite else float
        self.parse_constant = _unkept if finite else _CONSTANTS.__getitem__
        self.memo: dict[str, str] = {}


def _scanner(finite: bool) -> Any:
    if finite not in _scanners:
        from _json import make_scanner

        _scanners[finite] = make_scanner(_Settings(finite))  # type: ignore[arg-type]
    return _scanners[finite]


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
