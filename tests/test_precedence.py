"""precedence.taking and precedence.clash, checked against matching.select over every request of a small world:
whatever a table holds, a prefix `taking` lets in changes no answer a hand-made registration gave, and a request it
names as taken really is. precedence.Competition, which asks them of the registrations that can matter only, answers
as they do over the whole table."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docker_credential_idp.matching import host_matches, host_of, is_pattern, literal_characters, patterns_overlap
from docker_credential_idp.model import Registration
from docker_credential_idp.precedence import Competition, answering, clash, taking
from docker_credential_idp.sources import Entry, Source, is_hand_made, place

HOST = "registry.example.com"
LITERAL_HOSTS = ["a.example.com", "ab.example.com", "b.example.com", "x.y.example.com", HOST, f"{HOST}:5000"]
PATHS = ["", "/team", "/team/sub", "/other"]
PATTERNS = ["*.example.com", "a*.example.com", "*b.example.com", "*.example.com/team", "a*.example.com/team/sub",
            "*.y.example.com", "x.*.example.com", "*.*.example.com", "*.example.com:5000", "*y.example.com/other"]
PREFIXES = [host + path for host in LITERAL_HOSTS for path in PATHS] + PATTERNS
# Every request the world's prefixes can tell apart: their hosts and others the patterns match, host-only and with
# paths at, under, beside and between the prefixes' paths.
REQUEST_HOSTS = LITERAL_HOSTS + ["axb.example.com", "zz.example.com", "a.b.example.com", "q.y.example.com",
                                 "x.q.example.com", "zz.example.com:5000", "other.test"]
REQUEST_PATHS = ["", "/team", "/team/x", "/team/sub", "/team/sub/x", "/other", "/other/x", "/x", "/teamx"]
REQUESTS = [host + path for host in REQUEST_HOSTS for path in REQUEST_PATHS]


@st.composite
def tables(draw):
    """A table (prefix, id) with unique prefixes, the ids of its hand-made registrations, and a new prefix."""
    prefixes = draw(st.lists(st.sampled_from(PREFIXES), unique=True, max_size=7))
    made_by_hand = draw(st.lists(st.booleans(), min_size=len(prefixes), max_size=len(prefixes)))
    table = [(prefix, f"r{n}") for n, prefix in enumerate(prefixes)]
    hand_made = {f"r{n}" for n, mine in enumerate(made_by_hand) if mine}
    new = draw(st.sampled_from([p for p in PREFIXES if p not in prefixes]))
    return table, hand_made, new


def changed(request, table, hand_made, new):
    before = answering(request, table)
    return before in hand_made and answering(request, [*table, (new, "listed")]) != before


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_a_prefix_let_in_changes_no_answer_a_hand_made_registration_gave(case):
    table, hand_made, new = case
    if taking(new, "listed", table, hand_made) is None:
        assert [r for r in REQUESTS if changed(r, table, hand_made, new)] == []


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_a_literal_prefix_is_only_kept_out_for_a_request_it_really_takes(case):
    table, hand_made, new = case
    taken = taking(new, "listed", table, hand_made)
    if taken is None:
        return
    if is_pattern(new):  # over a hand-made pattern: it can match one of its hosts and is at least as literal
        assert taken.holder in hand_made and patterns_overlap(new, taken.holder_prefix)
        assert literal_characters(new) >= literal_characters(taken.holder_prefix)
        return
    assert answering(taken.request, table) == taken.holder in hand_made
    after = answering(taken.request, [*table, (new, "listed")])
    assert after == (taken.instead or None) and after != taken.holder


@settings(max_examples=500, deadline=None)
@given(tables())
def test_a_pattern_is_kept_out_only_where_a_host_both_match_could_change(case):
    """Within the world, a pattern kept out changes an answer at some host both match, unless a literal registration
    or another pattern serves every such host of the world (the world is finite; the hosts are not)."""
    table, hand_made, new = case
    taken = taking(new, "listed", table, hand_made)
    if taken is None or not is_pattern(new) or clash(new, [(taken.holder_prefix, taken.holder)]):
        return  # two equally specific patterns: select's choice between them is arbitrary, so `clash` refuses them
    shared = [h for h in REQUEST_HOSTS if host_matches(host_of(new), h) and host_matches(host_of(taken.request), h)]
    others = [p for p, i in table if i != taken.holder]
    undisturbed = [h for h in shared if not any(host_of(p) == h or (is_pattern(p) and host_matches(host_of(p), h))
                                                for p in others)]
    if undisturbed:
        assert any(changed(h + path, table, hand_made, new) for h in undisturbed for path in REQUEST_PATHS)


# -- the cases the issue names -------------------------------------------------------------------------------------


def test_a_listed_host_would_take_host_only_requests_from_a_hand_made_path():
    taken = taking(HOST, "idp.hub", [(f"{HOST}/team-a", "mine")], {"mine"})
    assert (taken.request, taken.holder, taken.instead) == (HOST, "mine", "idp.hub")
    assert taken.explain() == (f"would take host-only requests for {HOST} (docker, skopeo, podman and BuildKit send "
                               f"only the host) from 'mine' ({HOST}/team-a)")


def test_a_listed_sibling_would_leave_the_host_ambiguous():
    taken = taking(f"{HOST}/team-b", "idp.b", [(f"{HOST}/team-a", "mine")], {"mine"})
    assert (taken.request, taken.instead) == (HOST, "")
    assert "would leave host-only requests for registry.example.com" in taken.explain()
    assert "ambiguous" in taken.explain()


def test_a_listed_prefix_under_a_hand_made_one_would_take_its_requests():
    taken = taking(f"{HOST}/team-a/app", "idp.app", [(HOST, "mine")], {"mine"})
    assert (taken.request, taken.instead) == (f"{HOST}/team-a/app", "idp.app")


def test_beside_a_hand_made_bare_host_a_listed_path_on_another_path_is_let_in():
    # The bare host keeps host-only requests; team-b's requests were nobody's... but the bare host covered them.
    assert taking(f"{HOST}/team-b", "idp.b", [(HOST, "mine")], {"mine"}) is not None
    # A listed prefix on a host a hand-made one does not reach takes nothing.
    assert taking("ghcr.io/acme", "idp.g", [(HOST, "mine")], {"mine"}) is None
    # Listed beside listed: only hand-made answers are protected.
    assert taking(f"{HOST}/team-b", "idp.b", [(f"{HOST}/team-a", "idp.a")], set()) is None


def test_a_listed_host_would_take_from_a_hand_made_pattern():
    taken = taking("team.azurecr.io", "idp.acr", [("*.azurecr.io", "mine")], {"mine"})
    assert (taken.request, taken.holder) == ("team.azurecr.io", "mine")
    # A listed literal under a pattern's longer path: the pattern answered team/app's requests.
    table = [("*.azurecr.io/team/app", "mine"), ("team.azurecr.io/other", "idp.other")]  # host-only: not mine
    taken = taking("team.azurecr.io/team", "idp.acr", table, {"mine"})
    assert (taken.request, taken.instead) == ("team.azurecr.io/team/app", "idp.acr")


def test_a_listed_pattern_as_specific_as_a_hand_made_one_is_kept_out_a_less_specific_one_is_not():
    assert taking("*.azurecr.io", "idp.acr", [("*.azurecr.io/team", "mine")], {"mine"}) is not None
    assert taking("a*.azurecr.io", "idp.acr", [("*.azurecr.io", "mine")], {"mine"}) is not None
    assert taking("*.azurecr.io", "idp.acr", [("a*.azurecr.io", "mine")], {"mine"}) is None
    assert taking("*.pkg.dev", "idp.gar", [("*.azurecr.io", "mine")], {"mine"}) is None


def test_clash_is_an_equal_prefix_or_an_equally_specific_pattern():
    assert clash(HOST, [(HOST, "mine")]).explain() == "is registered as 'mine'"
    found = clash("a*.example.com", [("*b.example.com", "mine")])
    assert found is not None and not found.equal and "exactly as specific" in found.explain()
    assert clash("a*.example.com", [("*.example.com", "mine")]) is None
    assert clash("*.example.com/team", [("*.example.com", "mine")]) is None


# -- applied to a whole list: sources.place ------------------------------------------------------------------------


@st.composite
def tables_and_lists(draw):
    """A table of hand-made and synced registrations (unique prefixes) and a platform's list of entries."""
    prefixes = draw(st.lists(st.sampled_from(PREFIXES), unique=True, max_size=5))
    origins = draw(st.lists(st.sampled_from(["add", "store", "source:idp", "source:other"]), min_size=len(prefixes),
                            max_size=len(prefixes)))
    listing = draw(st.lists(st.sampled_from(PREFIXES), unique=True, max_size=5))
    ids = [f"{origin[7:]}.r{n}" if origin.startswith("source:") else f"r{n}" for n, origin in enumerate(origins)]
    table = {i: Registration(i, prefix, "basic", origin=origin)
             for i, prefix, origin in zip(ids, prefixes, origins, strict=True)}
    return table, [Entry(f"e{n}", prefix) for n, prefix in enumerate(listing)]


SOURCE = Source("idp", "https://api.example.com", "acme", "token")


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables_and_lists())
def test_a_whole_list_placed_changes_no_answer_a_hand_made_registration_gave(case):
    table, entries = case
    before = {r: answering(r, [(x.prefix, x.id) for x in table.values()]) for r in REQUESTS}
    after_table = dict(table)
    report, conflicts = place(SOURCE, entries, after_table)
    candidates = [(x.prefix, x.id) for x in after_table.values()]
    for request, answer in before.items():
        if answer is not None and is_hand_made(table[answer]):
            assert answering(request, candidates) == answer, request
    assert len(report.added) + len(report.kept) + len(report.moved) + len(conflicts) == len(entries)
    # Placing the same list again changes nothing: the table is a function of what people registered and the list.
    again = dict(after_table)
    assert place(SOURCE, entries, again)[1] == conflicts and again == after_table



# -- the same answers from the registrations that can matter only: precedence.Competition --------------------------


@st.composite
def growing_tables(draw):
    """A table (prefix, id) in the order it grew, prefixes possibly repeated (Competition keeps the first), the ids
    of its hand-made registrations, and a new prefix, possibly one the table holds."""
    prefixes = draw(st.lists(st.sampled_from(PREFIXES), max_size=10))
    table = [(prefix, f"r{n}") for n, prefix in enumerate(prefixes)]
    hand_made = {i for _, i in table if draw(st.booleans())}
    return table, hand_made, draw(st.sampled_from(PREFIXES))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(growing_tables())
def test_competition_answers_as_clash_and_taking_over_the_whole_table(case):
    table, hand_made, new = case
    half = len(table) // 2
    competition = Competition(table[:half], hand_made)
    for prefix, registration_id in table[half:]:  # grown as a list is placed
        competition.add(prefix, registration_id)
    assert competition.clash(new) == clash(new, table)
    assert competition.taking(new, "listed") == taking(new, "listed", table, hand_made)


class WholeTable(Competition):
    """The straightforward placement: every entry checked against the whole table, as before Competition."""

    def __init__(self, candidates, hand_made):
        super().__init__((), hand_made)
        self.table = list(candidates)

    def add(self, prefix, registration_id):
        self.table.append((prefix, registration_id))

    def clash(self, prefix):
        return clash(prefix, self.table)

    def taking(self, prefix, new_id):
        return taking(prefix, new_id, self.table, self.hand_made)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables_and_lists())
def test_a_whole_list_placed_gives_the_table_and_report_of_the_straightforward_placement(case):
    from unittest import mock

    table, entries = case
    indexed, straightforward = dict(table), dict(table)
    placed = place(SOURCE, entries, indexed)
    with mock.patch("docker_credential_idp.sources.Competition", WholeTable):
        expected = place(SOURCE, entries, straightforward)
    assert placed == expected and list(indexed.items()) == list(straightforward.items())
