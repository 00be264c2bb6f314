"""The Public Suffix List as a tree of labels, and the rule a pattern prefix keeps by it: no `*` can stand for the
label that makes a registrable domain, so every host a pattern matches is held by the party its literal labels name.

Imported only by matching.parse_prefix's pattern branch (`registry add`, a source's sync), never on a cache hit. The
list is the one `publicsuffixlist` ships (ICANN and private sections), read once per process (~60 ms); each check then
walks only the branches of the tree the pattern's labels can reach (well under a millisecond).
"""

from __future__ import annotations

from typing import Optional, Sequence

from .errors import InvalidInput
from .matching import label_matches

LIST_LIMIT = 16 << 20  # the shipped list is ~300 KB; a file far larger is not the list


class _Node:
    """One label of the list's rules, read right to left. `rule` is the rule ending here, as listed (to be named in a
    message: it is public data, never what was typed); `excepted`, whether an exception rule (`!city.kobe.jp`) sits
    right below it."""

    __slots__ = ("children", "rule", "excepted")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.rule: Optional[str] = None
        self.excepted = False

    def at(self, domain: str) -> _Node:
        node = self
        for label in reversed(domain.split(".")):
            node = node.children.setdefault(label, _Node())
        return node

    def add(self, rule: str) -> None:
        node = self.at(rule)
        if node.rule is None:
            node.rule = rule

    def outranked_below(self) -> bool:
        """Whether, for any host longer than this rule, the wildcard rule `*.<this rule>` matches too and so is the
        host's suffix instead: `compute.amazonaws.com.cn` is no suffix of `a.dkr.ecr1.compute.amazonaws.com.cn`.
        Not when an exception rule sits below, which hands the suffix back for one label."""
        return "*" in self.children and not self.excepted


_tree: Optional[_Node] = None


def _load() -> _Node:
    """Every rule of the list. Taken conservatively, since a rule too many refuses a pattern and one too few could
    hand a password to a stranger: an exception rule (`!city.kobe.jp`) counts as a rule, and a wildcard rule
    (`*.compute.amazonaws.com`) also makes its parent public (the list's own linter requires that)."""
    global _tree
    if _tree is not None:
        return _tree
    from publicsuffixlist import PSLFILE

    from .fsutil import read_file

    try:
        data = read_file(PSLFILE, LIST_LIMIT)
    except OSError as error:
        data, why = None, error.strerror or str(error)
    else:
        why = "it is missing"
    if not data:
        raise InvalidInput(f"the Public Suffix List that publicsuffixlist ships cannot be read ({why}), so no pattern "
                           "can be checked; reinstall docker-credential-idp")
    root = _Node()
    for line in data.decode("utf-8", "replace").splitlines():
        rule = line.strip().split(maxsplit=1)[0].lower() if line.strip() else ""
        if not rule or rule.startswith("//"):
            continue
        exception = rule.startswith("!")
        rule = rule.lstrip("!")
        if not rule.isascii():  # hosts reach us in their ASCII (punycode) form only
            try:
                rule = rule.encode("idna").decode("ascii")
            except UnicodeError:
                continue
        root.add(rule)
        if exception and "." in rule:
            root.at(rule.split(".", 1)[1]).excepted = True
        if rule.startswith("*."):
            root.add(rule[2:])
    _tree = root
    return root


def check_pattern(labels: Sequence[str]) -> None:
    """Refuse a pattern (its host's labels, left to right, the last one literal) when, for some host it matches, a
    `*` stands for the label right below that host's public suffix, or the host is a public suffix itself.

    Checked rule by rule rather than host by host: a rule of k labels can be some matched host's suffix when it
    aligns with the pattern's last k labels (a rule's `*` matches any label, a pattern's glob a label it matches,
    two literals when equal); the pattern's label left of it must then exist and be literal. Every rule that aligns
    is checked, not only the longest a host would take (conservative), save one a wildcard rule right below it
    always outranks: compute.amazonaws.com.cn is no suffix of a host of `1*2.dkr.ecr*.*.amazonaws.com.cn`, which
    stays accepted. `*.dkr.ecr.*.amazonaws.com` passes: us-east-1.amazonaws.com, s3.amazonaws.com and
    *.compute.amazonaws.com align, and left of each is a literal label (ecr, or dkr). A top-level label the list
    does not hold is public by the list's implicit rule `*`."""
    tree = _load()
    count = len(labels)
    frontier = [tree]
    for depth in range(1, count + 1):
        label = labels[count - depth]
        reached: list[_Node] = []
        for node in frontier:
            if "*" in label:
                reached += [child for key, child in node.children.items() if key == "*" or label_matches(label, key)]
            else:
                reached += [child for child in (node.children.get(label), node.children.get("*")) if child]
        left = labels[count - depth - 1] if depth < count else None
        # Named in a message: a rule without `*` first, it shows best which label the pattern must write out.
        rules = sorted((node.rule for node in reached if node.rule and (left is None or not node.outranked_below())),
                       key=lambda rule: ("*" in rule, rule))
        if left is None or "*" in left:
            if rules:
                raise _refusal(rules[0], whole=left is None)
            if depth == 1:  # the implicit rule `*`: an unknown top-level label (a listed one has a rule above)
                raise InvalidInput("the pattern ends in a top-level domain the Public Suffix List does not know, "
                                   "which counts as public (anybody could hold a domain under it); keep a literal "
                                   "label below a known suffix, e.g. *.yourdomain.com")
        frontier = reached
        if not frontier:
            return


def _refusal(rule: str, whole: bool) -> InvalidInput:
    example = "" if "*" in rule else f", e.g. *.yourdomain.{rule}"
    if whole:
        return InvalidInput(f"the pattern can match a host that is itself the public suffix {rule} (Public Suffix "
                            f"List), under which anybody can hold a domain; write out a literal label below it"
                            f"{example}")
    return InvalidInput(f"the pattern must keep a literal domain below the public suffix {rule} (Public Suffix "
                        f"List): a '*' in it can stand for the label right below that suffix, where anybody can hold "
                        f"a domain; write that label out{example}")
