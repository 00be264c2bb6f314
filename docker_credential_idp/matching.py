"""Normalising server strings, image references and prefixes, and choosing a registration. Pure functions.

Every location is one normalised string, `host[:port][/segment...]`: host lowercased, Docker Hub under one name
(`docker.io`), no scheme, no trailing slash, no tag or digest. Prefixes and requests share that form, so matching
is a whole-segment prefix test on strings.

What fails to parse is never quoted back, not even in part: a user may have piped a password to `get` or pasted a
token where a host belongs, and the line lands in a terminal or a CI log. Each message names the text by its role
(`what`: the server URL, the image reference, the prefix), the part that is wrong and what is expected; only a part
that did parse — the normalised host — is named.
"""

from __future__ import annotations

from .errors import AmbiguousRegistry, CredentialsNotFound, InvalidInput

TYPE_CHECKING = False  # typing itself is not imported: it costs a cache hit several ms
if TYPE_CHECKING:
    from typing import Iterable, Optional, Sequence

DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
# The key docker CLI uses for Docker Hub, in requests to helpers and in config.json.
DOCKER_HUB_SERVER_URL = "https://index.docker.io/v1/"
SCOPE_VARIABLE = "DOCKER_CREDENTIAL_IDP_SCOPE"

_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_")
_PATH_FORBIDDEN = frozenset(" \t\r\n\\?#@\x00")
_REPOSITORY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")


class Selection(tuple):  # type: ignore[type-arg]
    """(registration_id, prefix, reason). A plain tuple: NamedTuple would load typing on every get."""

    __slots__ = ()

    def __new__(cls, registration_id: str, prefix: str, reason: str) -> Selection:
        return tuple.__new__(cls, (registration_id, prefix, reason))

    registration_id = property(lambda self: self[0])
    prefix = property(lambda self: self[1])
    reason = property(lambda self: self[2])


# -- normalising -------------------------------------------------------------------------------------------------


def _not_a_host(what: str, why: str) -> InvalidInput:
    return InvalidInput(f"{what} is not a registry host[:port]: {why}")


def _normalise_host(raw: str, what: str) -> str:
    host = raw.lower()
    port = ""
    if host.startswith("["):  # IPv6 literal, [::1]:5000
        end = host.find("]")
        if end < 0:
            raise _not_a_host(what, "its IPv6 address has no closing ']'; write it like [::1]:5000")
        name, rest = host[: end + 1], host[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise _not_a_host(what, "only ':' and a port may follow an IPv6 address's ']'; write it like [::1]:5000")
            port = rest[1:]
        if not all(c in "0123456789abcdef:." for c in name[1:-1]) or len(name) < 3:
            raise _not_a_host(what, "an IPv6 address holds only hex digits, ':' and '.' between '[' and ']'; write it "
                                    "like [::1]:5000")
    else:
        name, sep, port = host.partition(":")
        if sep and not port:
            raise _not_a_host(what, "the port after ':' is empty; write a number from 1 to 65535, or drop the ':'")
        if not name:
            raise _not_a_host(what, "nothing comes before the ':'; write the host first, e.g. registry.example.com:5000")
        if not set(name) <= _HOST_CHARS:
            raise _not_a_host(what, "the host holds a character other than letters, digits, '.', '-' and '_'; write "
                                    "it like registry.example.com")
        if name.startswith((".", "-")) or name.endswith((".", "-")):
            raise _not_a_host(what, "the host starts or ends with '.' or '-'; write it like registry.example.com")
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        raise _not_a_host(what, "the port must be a number from 1 to 65535")
    if name in DOCKER_HUB_ALIASES and not port:
        return DOCKER_HUB
    return f"{name}:{port}" if port else name


def _check_path(segments: Sequence[str], what: str, host: str) -> None:
    """`host` has parsed, so it may be named; the path has not."""
    for segment in segments:
        if not segment:
            why = "an empty segment (two '/' in a row)"
        elif segment in (".", ".."):
            why = "a '.' or '..' segment"
        elif not _PATH_FORBIDDEN.isdisjoint(segment):
            why = "a space, tab, '\\', '?', '#' or '@'"
        else:
            continue
        raise InvalidInput(f"{what} on {host} has {why} in its repository path; write the path like {host}/team/app")


def _strip_scheme(text: str, what: str) -> tuple[str, bool]:
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text, False
    if scheme.lower() not in ("http", "https"):
        raise InvalidInput(f"{what} starts with a scheme other than http:// or https://; write a registry host such "
                           "as registry.example.com")
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


def _clean(text: str, what: str) -> str:
    if not isinstance(text, str):
        raise InvalidInput("expected a registry host or image reference")
    stripped = text.strip()
    if not stripped:
        raise InvalidInput(f"{what} is empty; write a registry host such as registry.example.com")
    if len(stripped) > 4096:
        raise InvalidInput(f"{what} is longer than 4096 characters; write a registry host such as registry.example.com")
    if not stripped.isprintable():  # C0 and C1 controls, DEL, bidi overrides
        raise InvalidInput(f"{what} holds a control character (a line break, a tab, an escape); write it on one line")
    return stripped


def _no_host(what: str) -> InvalidInput:
    return InvalidInput(f"{what} has no registry host before its first '/'; write it like registry.example.com/team")


def parse_server(text: str, what: str = "the server URL") -> str:
    """What a client sends to the helper: `https://index.docker.io/v1/`, `host:port`, or a key with a path."""
    original = _clean(text, what)
    rest, had_scheme = _strip_scheme(original, what)
    host, *segments = rest.rstrip("/").split("/")
    _refuse_userinfo(host)
    if not host:
        raise _no_host(what)
    normalised_host = _normalise_host(host, what)
    _check_path(segments, what, normalised_host)
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
    what = "the image reference"
    original = _clean(text, what)
    if "://" in original:
        return parse_server(original, what)
    body = original.rstrip("/")
    if "/" not in body:
        if _single_component_is_host(body.split("@", 1)[0]):
            return parse_server(body, what)
        segments = _drop_tag_and_digest([body])
        _check_path(segments, what, DOCKER_HUB)
        return _join(DOCKER_HUB, ["library", *segments], False)
    first, remainder = body.split("/", 1)
    _refuse_userinfo(first)
    if looks_like_host(first):
        host = _normalise_host(first, what)
        segments = _drop_tag_and_digest(remainder.split("/"))
    else:
        host = DOCKER_HUB
        segments = _drop_tag_and_digest(body.split("/"))
    if host == DOCKER_HUB and len(segments) == 1:
        segments = ["library", *segments]
    _check_path(segments, what, host)
    return _join(host, segments, False)


def parse_prefix(text: str) -> str:
    """A registration prefix: `host[:port][/path...]`, never a tag or digest. The host may be a pattern (see
    parse_pattern_host)."""
    what = "the prefix"
    original = _clean(text, what)
    rest, had_scheme = _strip_scheme(original, what)
    host, *segments = rest.rstrip("/").split("/")
    _refuse_userinfo(host)
    if not host:
        raise _no_host(what)
    if "*" in original:
        return _parse_pattern(host, segments)
    if not had_scheme and not (looks_like_host(host) or host.startswith("[")):
        raise InvalidInput("the prefix does not start with a registry host (a name with a '.' or a :port, or "
                           "localhost); write the host first, e.g. docker.io/my-org for Docker Hub")
    normalised_host = _normalise_host(host, what)
    _check_label_lengths(normalised_host.partition(":")[0])
    _check_prefix_path(segments, normalised_host)
    return _join(normalised_host, segments, had_scheme)


def _check_prefix_path(segments: Sequence[str], host: str) -> None:
    """A prefix's path: no tag or digest, segments as in a request, lower case (`host` has parsed: it is named)."""
    if any(":" in segment or "@" in segment for segment in segments):
        raise InvalidInput(f"the prefix on {host} carries a tag or digest (a ':' or '@' in its path); a prefix is "
                           "host[:port][/path]")
    _check_path(segments, "the prefix", host)
    if any(segment != segment.lower() for segment in segments):
        raise InvalidInput(f"the prefix on {host} has upper-case letters in its path, which no repository name has, "
                           "so it could never match; write the path in lower case")


def _check_label_lengths(name: str) -> None:
    """DNS's limits (RFC 1035): a label of at most 63 characters, a name of at most 253. Checked where a prefix is
    registered; a request for a longer name simply finds no registration. A name over them is no host: not named."""
    if name.startswith("["):
        return
    if len(name) > 253:
        raise InvalidInput(f"the prefix's host is {len(name)} characters, longer than the 253 characters DNS allows; "
                           "shorten it")
    longest = max(len(label) for label in name.split("."))
    if longest > 63:
        raise InvalidInput(f"the prefix's host has a label of {longest} characters, longer than the 63 characters DNS "
                           "allows between two dots; shorten it")


def _parse_pattern(host: str, segments: Sequence[str]) -> str:
    """A pattern prefix: `*` in the host's labels only, each matching one or more characters inside one label, a
    literal domain after the last `*`, and no `*` standing for the label right below a public suffix in any host it
    matches (public_suffix.check_pattern), so that no pattern reaches into anybody's domain (`*.co.uk`,
    `*.github.io`, `*.*.amazonaws.com`, `x.*.github.io` and `r*` are refused)."""
    if any("*" in segment for segment in segments):
        raise InvalidInput("the prefix has '*' in its path; only the host's labels may hold a '*'")
    if host.startswith("["):
        raise InvalidInput("the prefix is an IPv6 address, which cannot be a pattern; write the address out")
    name, sep, port = host.lower().partition(":")
    if "*" in port:
        raise InvalidInput("the prefix has '*' in its port; write the port out")
    labels = name.split(".")
    if not all(labels):
        why = "a label is empty (two '.' in a row, or one at an end)"
    elif not set(name) <= _HOST_CHARS | {"*"}:
        why = "it holds a character other than letters, digits, '.', '-', '_' and '*'"
    elif "**" in name:
        why = "it holds '**' (one '*' already stands for one or more characters)"
    else:
        why = ""
    if why:
        raise InvalidInput(f"invalid pattern host in the prefix: {why}; write it like *.azurecr.io or "
                           "*.dkr.ecr.*.amazonaws.com ('*' stands for one or more characters of one label)")
    if any(label.startswith("-") or label.endswith("-") for label in labels):
        raise InvalidInput("invalid pattern host in the prefix: a label cannot start or end with '-'")
    last_star = max(index for index, label in enumerate(labels) if "*" in label)
    literal_tail = ".".join(labels[last_star + 1 :])
    if not literal_tail:
        raise InvalidInput("the pattern must end in a literal domain after its last '*' (e.g. *.azurecr.io, not *.io, "
                           "*.* or r*): it would otherwise match hosts of anybody's")
    _normalise_host(name.replace("*", "x") + (sep + port), "the prefix")  # the port, and the characters otherwise
    _check_label_lengths(name.replace("*", "x"))  # a `*` stands for one character at least
    from .public_suffix import check_pattern  # the list is loaded here only: never on a cache hit

    check_pattern(labels)
    _check_prefix_path(segments, name + sep + port)
    return "/".join([name + sep + port, *segments])


def docker_accepts_path(location: str) -> bool:
    """Whether each path segment of a normalised location is a repository name component as docker writes them
    (lower-case letters and digits, joined by '.', '_' or '-'). Parsing is laxer; a location that is not may be a
    secret typed where an image belongs (`creds "$PASSWORD"`), so a message names only its host."""
    return all(segment and set(segment) <= _REPOSITORY_CHARS and segment[0].isalnum() and segment[-1].isalnum()
               for segment in location.split("/")[1:])


def host_of(location: str) -> str:
    return location.split("/", 1)[0]


def is_pattern(prefix: str) -> bool:
    return "*" in host_of(prefix)


def label_matches(pattern: str, label: str) -> bool:
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
    return len(pattern_labels) == len(labels) and all(map(label_matches, pattern_labels, labels))


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
            named.setdefault(found[1], Selection(found[1], found[0],
                                                f"{SCOPE_VARIABLE} names {scoped}, which falls under prefix {found[0]}"))
    if len(named) > 1:
        names = ", ".join(f"{chosen.registration_id} ({chosen.prefix})" for chosen in
                          sorted(named.values(), key=lambda chosen: chosen.registration_id))
        raise AmbiguousRegistry(f"{SCOPE_VARIABLE} names {len(named)} registrations under {host}, and the client sent "
                                f"only the host: {names}; keep only one of them in it for this host")
    return next(iter(named.values()), None)


def select(request: str, candidates: Sequence[tuple[str, str]], scope: Optional[str] = None) -> Selection:
    """Choose the registration serving a normalised request among (prefix, id) pairs: the one answer to "which
    registration serves this request, or this host?" that `get`, `list`, `resolve`, the kubelet, `doctor` and
    docker login/logout all ask. One contract: a Selection, or CredentialsNotFound (nothing serves it), or
    AmbiguousRegistry (a host-only request that cannot choose); each caller adapts it where it needs another.

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
    if scope:  # its value is not printed: it may hold anything, control characters too
        raise AmbiguousRegistry(
            f"{SCOPE_VARIABLE} names no registration under {host}, and the client sent only the host; "
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


def registered_hosts(prefixes: Iterable[str]) -> list[str]:
    """The hosts a table names (a pattern serves hosts but names none): the keys `list` answers, the hosts
    configure-docker routes and doctor checks, each asked of `select` as a host-only request."""
    return sorted({host_of(prefix) for prefix in prefixes if not is_pattern(prefix)})


def ambiguity(host: str, names: str) -> str:
    return (f"{host} has several path-scoped registrations and the client sent only the host: {names}; "
            f"set {SCOPE_VARIABLE} to one of their ids or an image prefix")
