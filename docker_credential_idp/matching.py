"""Normalising server strings, image references and prefixes, and choosing a registration. Pure functions.

Every location is one normalised string, `host[:port][/segment...]`: host lowercased, Docker Hub under one name
(`docker.io`), no scheme, no trailing slash, no tag or digest. Prefixes and requests share that form, so matching
is a whole-segment prefix test on strings.
"""

from __future__ import annotations

from .errors import AmbiguousRegistry, CredentialsNotFound, InvalidInput

TYPE_CHECKING = False  # typing itself is not imported: it costs a cache hit several ms
if TYPE_CHECKING:
    from typing import Iterable, Optional, Sequence

    from publicsuffixlist import PublicSuffixList

DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
# The key docker CLI uses for Docker Hub, in requests to helpers and in config.json.
DOCKER_HUB_SERVER_URL = "https://index.docker.io/v1/"
SCOPE_VARIABLE = "DOCKER_CREDENTIAL_IDP_SCOPE"

_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_")
_PATH_FORBIDDEN = frozenset(" \t\r\n\\?#@\x00")


class Selection(tuple):  # type: ignore[type-arg]
    """(registration_id, prefix, reason). A plain tuple: NamedTuple would load typing on every get."""

    __slots__ = ()

    def __new__(cls, registration_id: str, prefix: str, reason: str) -> Selection:
        return tuple.__new__(cls, (registration_id, prefix, reason))

    registration_id = property(lambda self: self[0])
    prefix = property(lambda self: self[1])
    reason = property(lambda self: self[2])


# -- normalising -------------------------------------------------------------------------------------------------


def _normalise_host(raw: str, original: str) -> str:
    host = raw.lower()
    port = ""
    if host.startswith("["):  # IPv6 literal, [::1]:5000
        end = host.find("]")
        if end < 0:
            raise InvalidInput(f"invalid registry host in {original!r}: unclosed '['")
        name, rest = host[: end + 1], host[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise InvalidInput(f"invalid registry host in {original!r}")
            port = rest[1:]
        if not all(c in "0123456789abcdef:." for c in name[1:-1]) or len(name) < 3:
            raise InvalidInput(f"invalid IPv6 address in {original!r}")
    else:
        name, sep, port = host.partition(":")
        if sep and not port:
            raise InvalidInput(f"invalid registry host in {original!r}: empty port")
        if not name or not set(name) <= _HOST_CHARS or name.startswith((".", "-")) or name.endswith((".", "-")):
            raise InvalidInput(f"invalid registry host in {original!r}; expected host[:port], e.g. registry.example.com")
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        raise InvalidInput(f"invalid port in {original!r}; expected a number from 1 to 65535")
    if name in DOCKER_HUB_ALIASES and not port:
        return DOCKER_HUB
    return f"{name}:{port}" if port else name


def _check_path(segments: Sequence[str], original: str) -> None:
    for segment in segments:
        if not segment or segment in (".", "..") or not _PATH_FORBIDDEN.isdisjoint(segment):
            raise InvalidInput(f"invalid repository path in {original!r}")


def _strip_scheme(text: str, original: str) -> tuple[str, bool]:
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text, False
    if scheme.lower() not in ("http", "https"):
        raise InvalidInput(f"unsupported scheme {scheme[:20]!r}; use a registry host such as registry.example.com")
    for mark in ("?", "#"):
        rest = rest.split(mark, 1)[0]
    _refuse_userinfo(rest.split("/", 1)[0])
    return rest, True


def _refuse_userinfo(host: str) -> None:
    """`user:password@host`: refused without quoting it, since it holds a password."""
    if "@" in host:
        raise InvalidInput("the registry address carries a user name or password (user:password@host); send the "
                           "host alone: credentials come from the registration")


def _join(host: str, segments: Sequence[str], had_scheme: bool) -> str:
    # `https://index.docker.io/v1/` and `https://host/v2/` name the registry API root, not a repository.
    if segments and (had_scheme or host == DOCKER_HUB) and list(segments) in (["v1"], ["v2"]):
        segments = []
    return "/".join([host, *segments])


def _clean(text: str) -> str:
    if not isinstance(text, str):
        raise InvalidInput("expected a registry host or image reference")
    stripped = text.strip()
    if not stripped:
        raise InvalidInput("empty registry host or image reference")
    if len(stripped) > 4096 or not stripped.isprintable():  # C0 and C1 controls, DEL, bidi overrides
        raise InvalidInput("registry host or image reference is too long or contains control characters")
    return stripped


def parse_server(text: str) -> str:
    """What a client sends to the helper: `https://index.docker.io/v1/`, `host:port`, or a key with a path."""
    original = _clean(text)
    rest, had_scheme = _strip_scheme(original, original)
    host, *segments = rest.rstrip("/").split("/")
    _refuse_userinfo(host)
    if not host:
        raise InvalidInput(f"no registry host in {original!r}")
    normalised_host = _normalise_host(host, original)
    _check_path(segments, original)
    return _join(normalised_host, segments, had_scheme)


def looks_like_host(component: str) -> bool:
    """Docker's rule for the first component of an image reference (distribution/reference normalize.go)."""
    return "." in component or ":" in component or component == "localhost" or component.lower() != component


def _single_component_is_host(text: str) -> bool:
    if text.startswith("["):
        return True
    name, sep, after = text.rpartition(":")
    if not sep:
        return "." in text or text == "localhost"
    return after.isdigit() and ("." in name or name == "localhost")


def _drop_tag_and_digest(segments: list[str]) -> list[str]:
    last = segments[-1].split("@", 1)[0]
    segments[-1] = last.split(":", 1)[0]
    return segments


def parse_reference(text: str) -> str:
    """An image reference (`nginx`, `host:5000/team/app:1.0@sha256:...`) or a registry host, as users write them."""
    original = _clean(text)
    if "://" in original:
        return parse_server(original)
    body = original.rstrip("/")
    if "/" not in body:
        if _single_component_is_host(body.split("@", 1)[0]):
            return parse_server(body)
        segments = _drop_tag_and_digest([body])
        _check_path(segments, original)
        return _join(DOCKER_HUB, ["library", *segments], False)
    first, remainder = body.split("/", 1)
    _refuse_userinfo(first)
    if looks_like_host(first):
        host = _normalise_host(first, original)
        segments = _drop_tag_and_digest(remainder.split("/"))
    else:
        host = DOCKER_HUB
        segments = _drop_tag_and_digest(body.split("/"))
    if host == DOCKER_HUB and len(segments) == 1:
        segments = ["library", *segments]
    _check_path(segments, original)
    return _join(host, segments, False)


def parse_prefix(text: str) -> str:
    """A registration prefix: `host[:port][/path...]`, never a tag or digest. The host may be a pattern (see
    parse_pattern_host)."""
    original = _clean(text)
    rest, had_scheme = _strip_scheme(original, original)
    host, *segments = rest.rstrip("/").split("/")
    _refuse_userinfo(host)
    if not host:
        raise InvalidInput(f"no registry host in prefix {original!r}")
    if "*" in original:
        return _parse_pattern(host, segments, original)
    if not had_scheme and not (looks_like_host(host) or host.startswith("[")):
        raise InvalidInput(
            f"prefix {original!r} does not start with a registry host; "
            f"write the host first, e.g. docker.io/{original} for Docker Hub"
        )
    normalised_host = _normalise_host(host, original)
    _check_label_lengths(normalised_host.partition(":")[0], original)
    for segment in segments:
        if ":" in segment or "@" in segment:
            raise InvalidInput(f"prefix {original!r} carries a tag or digest; a prefix is host[:port][/path]")
    _check_path(segments, original)
    if any(segment != segment.lower() for segment in segments):
        lowered = _join(normalised_host, [segment.lower() for segment in segments], had_scheme)
        raise InvalidInput(f"prefix {original!r} has upper-case letters in its path, which no repository name has, "
                           f"so it could never match; write it as {lowered}")
    return _join(normalised_host, segments, had_scheme)


def _check_label_lengths(name: str, original: str) -> None:
    """DNS's limits (RFC 1035): a label of at most 63 characters, a name of at most 253. Checked where a prefix is
    registered; a request for a longer name simply finds no registration."""
    if name.startswith("["):
        return
    if len(name) > 253:
        raise InvalidInput(f"the host of prefix {original[:80]!r} is longer than the 253 characters DNS allows; "
                           "shorten it")
    if any(len(label) > 63 for label in name.split(".")):
        raise InvalidInput(f"the host of prefix {original[:80]!r} has a label longer than the 63 characters DNS "
                           "allows between two dots; shorten it")


_public_suffixes: Optional[PublicSuffixList] = None  # the Public Suffix List, parsed once per process on first use (~0.1 s)


def _is_public_suffix(domain: str) -> bool:
    """Whether anybody can hold a domain right under `domain`, per the Public Suffix List (ICANN and private
    sections: co.uk, github.io, s3.amazonaws.com; an unknown top-level label counts as public). Imported here
    only: a prefix is parsed at `registry add` and when a source syncs, never on a cache hit."""
    global _public_suffixes
    if _public_suffixes is None:
        from publicsuffixlist import PublicSuffixList

        _public_suffixes = PublicSuffixList()
    return bool(_public_suffixes.is_public(domain))


def _parse_pattern(host: str, segments: Sequence[str], original: str) -> str:
    """A pattern prefix: `*` in the host's labels only, each matching one or more characters inside one label, and
    the labels after the last `*` a domain somebody holds — at least one literal label below its public suffix —
    so that no pattern reaches into anybody's domain (`*.co.uk`, `*.github.io` and `r*` are refused)."""
    if any("*" in segment for segment in segments):
        raise InvalidInput(f"prefix {original!r} has '*' in its path; only the host's labels may hold a '*'")
    if host.startswith("["):
        raise InvalidInput(f"prefix {original!r}: an IPv6 address cannot be a pattern")
    name, sep, port = host.lower().partition(":")
    if "*" in port:
        raise InvalidInput(f"prefix {original!r} has '*' in its port; write the port out")
    labels = name.split(".")
    if not all(labels) or not set(name) <= _HOST_CHARS | {"*"} or "**" in name:
        raise InvalidInput(f"invalid pattern host in {original!r}; write it like *.azurecr.io or "
                           "*.dkr.ecr.*.amazonaws.com ('*' stands for one or more characters of one label)")
    if any(label.startswith("-") or label.endswith("-") for label in labels):
        raise InvalidInput(f"invalid pattern host in {original!r}: a label cannot start or end with '-'")
    last_star = max(index for index, label in enumerate(labels) if "*" in label)
    literal_tail = ".".join(labels[last_star + 1 :])
    if not literal_tail:
        raise InvalidInput(f"pattern {original!r} must end in a literal domain after its last '*' (e.g. *.azurecr.io, "
                           "not *.io, *.* or r*): it would otherwise match hosts of anybody's")
    _normalise_host(name.replace("*", "x") + (sep + port), original)  # the port, and the characters otherwise
    _check_label_lengths(name.replace("*", "x"), original)  # a `*` stands for one character at least
    if _is_public_suffix(literal_tail):
        raise InvalidInput(f"pattern {original!r} must end in a literal domain below the public suffix {literal_tail} "
                           f"(Public Suffix List), under which anybody can hold a domain; keep a literal label "
                           f"below it, e.g. *.yourdomain.{literal_tail}")
    _check_path(segments, original)
    if any(":" in segment or "@" in segment for segment in segments):
        raise InvalidInput(f"prefix {original!r} carries a tag or digest; a prefix is host[:port][/path]")
    if any(segment != segment.lower() for segment in segments):
        raise InvalidInput(f"prefix {original!r} has upper-case letters in its path, which no repository name has")
    return "/".join([name + sep + port, *segments])


def host_of(location: str) -> str:
    return location.split("/", 1)[0]


def is_pattern(prefix: str) -> bool:
    return "*" in host_of(prefix)


def _label_matches(pattern: str, label: str) -> bool:
    """`*` is one or more characters; the label has no `.`, `:` or `/` (hosts are split on them first)."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return pattern == label
    if len(label) < len(pattern):  # every literal character, and one or more for each `*`
        return False
    if not (label.startswith(parts[0]) and label.endswith(parts[-1])):
        return False
    position, end = len(parts[0]), len(label) - len(parts[-1])
    for middle in parts[1:-1]:
        found = label.find(middle, position + 1)  # +1: the `*` before it takes at least one character
        if found < 0:
            return False
        position = found + len(middle)
    return end - position >= 1  # the last `*` takes at least one character


def host_matches(pattern_host: str, host: str) -> bool:
    """Whether a pattern host (`*.dkr.ecr.*.amazonaws.com`, `local*:5000`) matches a normalised host:port, label by
    label, the port exactly. Anchored: `x.amazonaws.com.evil.example` and `a.b.dkr.ecr…` do not match."""
    pattern_name, _, pattern_port = pattern_host.partition(":")
    name, _, port = host.partition(":")
    if port != pattern_port or name.startswith("["):
        return False
    pattern_labels, labels = pattern_name.split("."), name.split(".")
    return len(pattern_labels) == len(labels) and all(map(_label_matches, pattern_labels, labels))


def literal_characters(prefix: str) -> int:
    """How specific a pattern's host is: its characters other than `*`."""
    host = host_of(prefix)
    return len(host) - host.count("*")


def concrete(prefix: str, host: str) -> str:
    """What a registration serves for a request on `host`: a pattern's path under that host; a prefix itself."""
    if not is_pattern(prefix):
        return prefix
    _, sep, path = prefix.partition("/")
    return host + sep + path


def patterns_overlap(first: str, second: str) -> bool:
    """Whether two pattern hosts can match one host: per label, do the two globs share a word? (A walk over pairs
    of positions in both, `*` being "one character, then any number more".)"""
    first_name, _, first_port = host_of(first).partition(":")
    second_name, _, second_port = host_of(second).partition(":")
    first_labels, second_labels = first_name.split("."), second_name.split(".")
    if first_port != second_port or len(first_labels) != len(second_labels):
        return False
    return all(map(_globs_intersect, first_labels, second_labels))


def _globs_intersect(first: str, second: str) -> bool:
    def tokens(glob: str) -> list[str]:
        out: list[str] = []
        for char in glob:
            out += ["?", "*"] if char == "*" else [char]  # one character, then zero or more
        return out

    a, b = tokens(first), tokens(second)
    seen: set[tuple[int, int]] = set()
    todo = [(0, 0)]
    while todo:
        i, j = todo.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i] == "*":
            todo.append((i + 1, j))
        if j < len(b) and b[j] == "*":
            todo.append((i, j + 1))
        if i < len(a) and j < len(b) and (a[i] in "?*" or b[j] in "?*" or a[i] == b[j]):
            todo.append((i if a[i] == "*" else i + 1, j if b[j] == "*" else j + 1))
    return False


def server_key(prefix: str) -> str:
    """The key under which docker and `list` know a prefix: Docker Hub's host is docker's index URL."""
    return DOCKER_HUB_SERVER_URL if prefix == DOCKER_HUB else prefix


# -- choosing ----------------------------------------------------------------------------------------------------


def is_under(location: str, prefix: str) -> bool:
    """True when `prefix` covers `location` on whole path segments (team covers team/app, never teammates)."""
    return location == prefix or location.startswith(prefix + "/")


def longest_prefix(location: str, candidates: Iterable[tuple[str, str]]) -> Optional[tuple[str, str]]:
    """The (prefix, id) with the longest prefix covering `location`; ties cannot happen as prefixes are unique."""
    best: Optional[tuple[str, str]] = None
    for prefix, registration_id in candidates:
        if is_under(location, prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, registration_id)
    return best


def _scope_choice(host: str, candidates: Sequence[tuple[str, str]], scope: str) -> Optional[Selection]:
    """The registration under `host` that the scope names, by id or by an image prefix it falls under. Items for
    other hosts are skipped (one variable serves a job that uses several registries); two registrations named under
    this host is an error naming both, whatever their order: choosing the first would hand one team's credential to
    the other team's pull."""
    named: dict[str, Selection] = {}
    for item in scope.replace(",", " ").split():
        by_id = [(p, i) for p, i in candidates if i == item]
        if by_id:
            prefix, registration_id = by_id[0]
            named.setdefault(registration_id, Selection(registration_id, prefix,
                                                        f"{SCOPE_VARIABLE} names registration {registration_id!r}"))
            continue
        try:
            scoped = parse_reference(item)
        except InvalidInput:
            continue
        if host_of(scoped) != host:
            continue
        found = longest_prefix(scoped, candidates)
        if found:
            named.setdefault(found[1], Selection(found[1], found[0], f"{SCOPE_VARIABLE}={item} falls under prefix {found[0]}"))
    if len(named) > 1:
        names = ", ".join(f"{chosen.registration_id} ({chosen.prefix})" for chosen in
                          sorted(named.values(), key=lambda chosen: chosen.registration_id))
        raise AmbiguousRegistry(f"{SCOPE_VARIABLE} names {len(named)} registrations under {host}, and the client sent "
                                f"only the host: {names}; keep only one of them in it for this host")
    return next(iter(named.values()), None)


def select(request: str, candidates: Sequence[tuple[str, str]], scope: Optional[str] = None) -> Selection:
    """Choose the registration serving a normalised request among (prefix, id) pairs.

    A request with a path takes the longest prefix. A host-only request (what docker, skopeo and podman send)
    takes, in order: the registration DOCKER_CREDENTIAL_IDP_SCOPE names, the bare-host registration, the only
    registration under the host; several candidates and no scope is an error naming them.

    Patterns (`*.azurecr.io`) serve only what no prefix without `*` serves; among the patterns matching the host
    and covering the request, the most literal host wins, then the same rules among those (longest path first).
    """
    host = host_of(request)
    on_host = [(p, i) for p, i in candidates if host_of(p) == host]
    if not on_host:  # a prefix without `*` beats any pattern; between patterns, the most literal host
        return _select_pattern(request, host, candidates, scope)
    if request != host:
        found = longest_prefix(request, on_host)
        if not found:  # prefixes on the host, none covering the request: a pattern may
            return _select_pattern(request, host, candidates, scope)
        return Selection(found[1], found[0], f"longest prefix covering {request}")
    if scope:
        chosen = _scope_choice(host, on_host, scope)
        if chosen:
            return chosen
    for prefix, registration_id in on_host:
        if prefix == host:
            return Selection(registration_id, prefix, f"registered for the whole host {host}")
    if len(on_host) == 1:
        prefix, registration_id = on_host[0]
        return Selection(registration_id, prefix, f"the only registration under host {host}")
    names = ", ".join(f"{i} ({p})" for p, i in sorted(on_host))
    if scope:
        raise AmbiguousRegistry(
            f"{SCOPE_VARIABLE}={scope[:200]} names no registration under {host}, and the client sent only the host; "
            f"add one of these ids or prefixes to it: {names}"
        )
    raise AmbiguousRegistry(ambiguity(host, names))


def _select_pattern(request: str, host: str, candidates: Sequence[tuple[str, str]], scope: Optional[str]) -> Selection:
    patterns = [(p, i) for p, i in candidates if is_pattern(p) and host_matches(host_of(p), host)
                and (request == host or is_under(request, concrete(p, host)))]
    if not patterns:
        raise CredentialsNotFound()
    best = max(literal_characters(p) for p, _ in patterns)
    most_literal = [(concrete(p, host), i, p) for p, i in patterns if literal_characters(p) == best]
    chosen = select(request, [(served, i) for served, i, _ in most_literal], scope)
    pattern = next(p for _, i, p in most_literal if i == chosen.registration_id)
    return Selection(chosen.registration_id, pattern, f"pattern {pattern} matches {host}; {chosen.reason}")


def ambiguity(host: str, names: str) -> str:
    return (f"{host} has several path-scoped registrations and the client sent only the host: {names}; "
            f"set {SCOPE_VARIABLE} to one of their ids or an image prefix")
