"""Which prefixes may sit side by side in the registry table, and when a prefix synced from a platform's list would
take requests from a registration a person made. Pure functions over (prefix, id) pairs, the form
matching.select chooses among.

Two rules:

- `clash`: two registrations cannot share a prefix, nor be two patterns that can match one host and are exactly
  as specific (neither would win). `registry add` refuses such a prefix; a source skips such a listed entry.
- `taking`: a registration made by hand (`registry add`, `docker login`) wins over a listed one on any overlap. A
  listed prefix is skipped when adding it would change which registration answers a request a hand-made one
  answers — with a path, host-only (what docker, skopeo, podman and BuildKit send) or through a pattern — or would
  leave that request ambiguous.

`Competition` asks both of a table one new prefix at a time, as a source's list is placed: only the registrations
that can change the answer — those on the prefix's host and the patterns — so that a list of thousands is placed in
time linear in its length, with the answers the whole table gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet, Optional, Sequence

from .errors import AmbiguousRegistry, CredentialsNotFound
from .matching import (
    concrete,
    host_matches,
    host_of,
    is_pattern,
    literal_characters,
    patterns_overlap,
    select,
)

OTHER_PATHS = "/*"  # in a request made up here: any path under the host that no registered prefix names
Candidates = Sequence[tuple[str, str]]  # (prefix, registration id), as matching.select takes them


@dataclass(frozen=True)
class Clash:
    """A registration a new prefix cannot sit beside."""

    prefix: str
    registration_id: str
    equal: bool  # the same prefix; else two equally specific patterns that can match one host

    def explain(self) -> str:
        """What is wrong, for a sentence that starts with the new prefix."""
        if self.equal:
            return f"is registered as {self.registration_id!r}"
        return (f"can match the same hosts as {self.prefix} (registration {self.registration_id!r}) and is exactly "
                "as specific, so neither would win")


def clash(prefix: str, others: Candidates) -> Optional[Clash]:
    """The first of `others` that `prefix` cannot sit beside, if any."""
    for other_prefix, other_id in others:
        if other_prefix == prefix:
            return Clash(other_prefix, other_id, True)
        if _equally_specific_patterns(prefix, other_prefix):
            return Clash(other_prefix, other_id, False)
    return None


def _equally_specific_patterns(first: str, second: str) -> bool:
    """Two patterns that can match one host, with as many literal characters and the same path: neither wins."""
    return (is_pattern(first) and is_pattern(second) and literal_characters(first) == literal_characters(second)
            and first.partition("/")[2] == second.partition("/")[2] and patterns_overlap(first, second))


@dataclass(frozen=True)
class Taking:
    """A request a hand-made registration answers that a new prefix would take from it (or leave ambiguous)."""

    request: str  # a normalised request; for a pattern over a hand-made pattern, the hand-made pattern itself
    holder: str  # the hand-made registration answering it
    holder_prefix: str
    instead: str  # the registration that would answer it; "" when it would be ambiguous

    def explain(self) -> str:
        """Why the new prefix is skipped, for a sentence that starts with it."""
        holder = f"{self.holder!r} ({self.holder_prefix})"
        if is_pattern(self.request):
            return (f"can match hosts the pattern of {holder} matches and is at least as specific, so it would take "
                    "their requests")
        if self.request.endswith(OTHER_PATHS):
            what = f"requests for the repositories on {host_of(self.request)} that no other prefix covers"
        elif "/" not in self.request:
            what = f"host-only requests for {self.request} (docker, skopeo, podman and BuildKit send only the host)"
        else:
            what = f"requests for {self.request}"
        if not self.instead:
            return f"would leave {what} ambiguous, which {holder} answers now"
        return f"would take {what} from {holder}"


def taking(prefix: str, new_id: str, table: Candidates, hand_made: AbstractSet[str]) -> Optional[Taking]:
    """The first request a hand-made registration (an id in `hand_made`) answers in `table` that it would no longer
    answer were `prefix` added as `new_id`; None when adding it changes no such answer.

    A literal prefix competes only on its own host. There, the requests whose answer it can change are: the host
    alone; the prefix itself (every request under it that no longer prefix covers is answered as the prefix is);
    for a bare host, a path no prefix names (host-only requests are chosen by other rules than paths); and the
    prefix of each pattern matching the host, made concrete on it (a pattern with a longer path than the prefix
    answers the requests under that path). Each is asked of matching.select before and after, so the rule is
    select's own, never a second copy of it (tests/test_precedence.py checks the list is complete against every
    request of a small world).

    A pattern only competes where patterns are consulted, which is where another pattern answered: it can take a
    hand-made pattern's requests exactly when it can match one of its hosts and has at least as many literal
    characters (matching.select's first rule between patterns). That is asked directly: a host both match may be
    any of infinitely many."""
    if not any(other_id in hand_made for _, other_id in table):
        return None  # every request is answered by a registration not made by hand, before as after
    for other_prefix, other_id in table:
        if other_prefix == prefix and other_id in hand_made:
            return Taking(prefix, other_id, other_prefix, new_id)
    if is_pattern(prefix):
        for other_prefix, other_id in table:
            if (other_id in hand_made and is_pattern(other_prefix) and patterns_overlap(prefix, other_prefix)
                    and literal_characters(prefix) >= literal_characters(other_prefix)):
                return Taking(other_prefix, other_id, other_prefix, new_id)
        return None
    host = host_of(prefix)
    # A bare host also answers the paths no prefix on its host covers, which patterns without a path answered:
    # OTHER_PATHS stands for them (no prefix has a `*` in its path).
    requests = [host, prefix, host + OTHER_PATHS] + sorted({concrete(p, host) for p, _ in table
                                                            if is_pattern(p) and host_matches(host_of(p), host)})
    after = [*table, (prefix, new_id)]
    for request in dict.fromkeys(requests):  # in order, once each
        before_id = answering(request, table)
        if before_id is None or before_id not in hand_made:
            continue
        after_id = answering(request, after)
        if after_id != before_id:
            holder_prefix = next(p for p, i in table if i == before_id)
            return Taking(request, before_id, holder_prefix, after_id or "")
    return None


def answering(request: str, candidates: Candidates) -> Optional[str]:
    """The id of the registration serving `request` among `candidates` without DOCKER_CREDENTIAL_IDP_SCOPE; None
    when none does or the choice is ambiguous."""
    try:
        return select(request, candidates).registration_id  # type: ignore[no-any-return]
    except (CredentialsNotFound, AmbiguousRegistry):
        return None


Ranked = tuple[int, str, str]  # (position in the table, prefix, id): lists merged back in the table's order


class Competition:
    """`clash` and `taking` for one new prefix at a time over a table that grows, each given only the registrations
    that can change its answer, in the table's order, so that it answers as over the whole table:

    - a literal prefix clashes only with itself (an equal prefix); a pattern only with patterns of as many literal
      characters and the same path (an equal prefix among them);
    - for a literal prefix, every request `taking` asks is on its host, where matching.select consults the prefixes
      on that host and the patterns matching it, and nothing else; no hand-made registration among them, and no
      request there is a hand-made registration's to take;
    - for a pattern, `taking` looks at hand-made patterns only.

    tests/test_precedence.py checks each answer against the whole table's."""

    def __init__(self, candidates: Candidates, hand_made: AbstractSet[str]) -> None:
        self.hand_made = hand_made
        self._count = 0
        self._by_prefix: dict[str, list[tuple[str, str]]] = {}  # literal prefixes
        self._by_host: dict[str, list[Ranked]] = {}  # literal prefixes
        self._patterns: list[Ranked] = []
        self._patterns_by_rank: dict[tuple[int, str], list[tuple[str, str]]] = {}
        self._hand_made_hosts: set[str] = set()
        self._hand_made_patterns: list[tuple[str, str]] = []
        for prefix, registration_id in candidates:
            self.add(prefix, registration_id)

    def add(self, prefix: str, registration_id: str) -> None:
        """The table gained (prefix, id), after every one before it."""
        ranked = (self._count, prefix, registration_id)
        self._count += 1
        mine = registration_id in self.hand_made
        if is_pattern(prefix):
            self._patterns.append(ranked)
            self._patterns_by_rank.setdefault(_rank(prefix), []).append((prefix, registration_id))
            if mine:
                self._hand_made_patterns.append((prefix, registration_id))
            return
        host = host_of(prefix)
        self._by_prefix.setdefault(prefix, []).append((prefix, registration_id))
        self._by_host.setdefault(host, []).append(ranked)
        if mine:
            self._hand_made_hosts.add(host)

    def clash(self, prefix: str) -> Optional[Clash]:
        if is_pattern(prefix):
            return clash(prefix, self._patterns_by_rank.get(_rank(prefix), ()))
        return clash(prefix, self._by_prefix.get(prefix, ()))

    def taking(self, prefix: str, new_id: str) -> Optional[Taking]:
        if is_pattern(prefix):
            return taking(prefix, new_id, self._hand_made_patterns, self.hand_made)
        host = host_of(prefix)
        if host not in self._hand_made_hosts and not any(host_matches(host_of(p), host)
                                                         for p, _ in self._hand_made_patterns):
            return None
        matching = [ranked for ranked in self._patterns if host_matches(host_of(ranked[1]), host)]
        rivals = sorted(self._by_host.get(host, []) + matching)
        return taking(prefix, new_id, [(p, i) for _, p, i in rivals], self.hand_made)


def _rank(pattern: str) -> tuple[int, str]:
    """What two patterns must share to be equally specific (_equally_specific_patterns): literal characters, path."""
    return literal_characters(pattern), pattern.partition("/")[2]
