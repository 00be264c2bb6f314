"""The vault's payload: the registration table as text, read by string search so that `get` parses no JSON.

A first line names the format, then one line per registration, `<prefix>\\t<id>\\t<fetch timeout>\\t<json record>`,
so that `get` finds its host's lines, chooses among them and knows how long a fetch may take without parsing any
JSON (format 2 lacked the timeout column). A registry source is a line `#source\\t<id>\\t<record>`, never taken for
a registration (a prefix starts with a host); its record is the sources module's text, which the vault keeps as it
is given (source_record.py says what is in it).

The table knows registrations as records; it knows nothing of providers. Finding lines is string search (the
cache-hit path goes through here); parsing a record loads json and the model.
"""

from __future__ import annotations

from .errors import VaultError

TYPE_CHECKING = False  # typing itself is not imported: it costs a cache hit several ms
if TYPE_CHECKING:
    from .model import Registration

    Table = dict[str, Registration]
    SourceRecords = dict[str, str]  # source id -> its record, as the sources module wrote it

PAYLOAD_HEADER = "docker-credential-idp registrations 3\n"
OLD_PAYLOAD_HEADER = "docker-credential-idp registrations 2\n"  # read; written back as 3
SOURCE_MARK = "#source"


def check_format(text: str, where: str) -> str:
    """`text`, when it is a payload this release reads."""
    if not text.startswith((PAYLOAD_HEADER, OLD_PAYLOAD_HEADER)):
        raise VaultError(f"{where} holds an unknown payload format; use a matching docker-credential-idp release")
    return text


class Line:
    """One registration as the vault stores it: what `get` needs before it parses anything, and the record."""

    __slots__ = ("prefix", "id", "fetch_timeout", "record")

    def __init__(self, prefix: str, registration_id: str, fetch_timeout: float, record: str) -> None:
        self.prefix, self.id, self.fetch_timeout, self.record = prefix, registration_id, fetch_timeout, record


def _line(text: str) -> Line:
    parts = text.split("\t", 3)
    try:
        if len(parts) == 4:
            return Line(parts[0], parts[1], float(parts[2]), parts[3])
        if len(parts) == 3:  # format 2: the timeout is in the record
            return Line(parts[0], parts[1], parse_record(parts[2]).fetch_timeout, parts[2])
    except ValueError:
        pass
    raise VaultError("the vault holds a malformed registration line; restore it from a backup")


def lines_on_host(text: str, host: str) -> list[Line]:
    """The lines whose prefix is on `host`, found by string search."""
    found = []
    for needle in ("\n" + host + "\t", "\n" + host + "/"):
        start = text.find(needle)
        while start >= 0:
            end = text.find("\n", start + 1)
            found.append(_line(text[start + 1 : end]))
            start = text.find(needle, end)
    return found


def pattern_lines(text: str) -> list[Line]:
    """The lines whose prefix is a pattern (a `*` before the line's first tab), found by string search."""
    found, start = [], text.find("*")
    while start >= 0:
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", start)
        if start < text.find("\t", line_start, line_end):
            found.append(_line(text[line_start:line_end]))
        start = text.find("*", line_end)
    return found


def all_lines(text: str) -> list[Line]:
    return [_line(line) for line in text[text.index("\n") + 1 :].splitlines() if line and line[0] != "#"]


def source_records(text: str) -> SourceRecords:
    """The registry sources' records by id, found by string search; the vault does not read them."""
    found, start = {}, text.find("\n" + SOURCE_MARK + "\t")
    while start >= 0:
        end = text.find("\n", start + 1)
        parts = text[start + 1 : end].split("\t", 2)
        if len(parts) != 3:
            raise VaultError("the vault holds a malformed source line; restore it from a backup")
        found[parts[1]] = parts[2]
        start = text.find("\n" + SOURCE_MARK + "\t", end)
    return found


def record_text(registration: Registration) -> str:
    """A registration's JSON record as the vault stores it (also what the token cache fingerprints)."""
    import json

    return json.dumps(registration.to_record(), separators=(",", ":"), sort_keys=True, ensure_ascii=True)


def parse_record(record: str) -> Registration:
    from .jsontext import loads
    from .model import Registration

    try:
        return Registration.from_record(loads(record))
    except (KeyError, TypeError, ValueError):
        raise VaultError("the vault holds a malformed registration record; restore it from a backup") from None


def parse_table(text: str) -> Table:
    registrations = (parse_record(line.record) for line in all_lines(text))
    return {registration.id: registration for registration in registrations}


def format_table(table: Table, sources: SourceRecords | None = None) -> str:
    lines = [PAYLOAD_HEADER]
    for source_id, record in sorted((sources or {}).items()):
        if "\n" in record:  # it would end the line, and what follows would be read as a registration
            raise ValueError(f"the record of source {source_id!r} holds a line break")
        lines.append(f"{SOURCE_MARK}\t{source_id}\t{record}\n")
    for registration in sorted(table.values(), key=lambda r: r.id):
        lines.append(f"{registration.prefix}\t{registration.id}\t{registration.fetch_timeout!r}\t"
                     f"{record_text(registration)}\n")
    return "".join(lines)
