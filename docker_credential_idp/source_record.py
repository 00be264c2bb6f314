"""A registry source as the vault keeps it: `<attempted_at>\\t<refresh>\\t<json record>`, one line.

The vault stores this text as it is given (vault_table.py); sources.py makes and reads it (Source.to_text,
Source.from_text). Its first two columns say when the source was last tried and how often it is due, so that
`get` knows whether to sync without parsing JSON or loading sources.py (pipeline.sync_sources, on every `get` that
is not a cache hit): `schedule` needs nothing but `float`.
"""

from __future__ import annotations

from .errors import VaultError

TYPE_CHECKING = False  # typing itself is not imported: it costs a `get` several ms
if TYPE_CHECKING:
    from typing import Any, Mapping


def _columns(text: str) -> list[str]:
    columns = text.split("\t", 2)
    if len(columns) != 3:
        raise VaultError("the vault holds a malformed source line; restore it from a backup")
    return columns


def schedule(text: str) -> tuple[float, float]:
    """(attempted_at, refresh) of a stored source, read without JSON (cache_policy.source_due takes them)."""
    attempted_at, refresh, _ = _columns(text)
    try:
        return float(attempted_at), float(refresh)
    except ValueError:
        raise VaultError("the vault holds a malformed source line; restore it from a backup") from None


def to_text(record: Mapping[str, Any]) -> str:
    """The text the vault keeps for a source's record (sources.Source.to_record)."""
    import json

    return (f"{float(record.get('attempted_at') or 0)!r}\t{float(record['refresh'])!r}\t"
            f"{json.dumps(record, sort_keys=True, ensure_ascii=True)}")  # ensure_ascii: no line break, no tab


def from_text(text: str) -> dict[str, Any]:
    """The record of a stored source; a VaultError when the text is not one to_text wrote."""
    import json

    schedule(text)
    try:
        value = json.loads(_columns(text)[2])
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise VaultError("the vault holds a malformed source record; restore it from a backup")
    return value
