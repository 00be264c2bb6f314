"""HTTPS calls with a registration's TLS choices (--ca-file, --insecure), for the providers that speak HTTP
themselves, for the sources' platform list, identity tokens and `registry test`.

HTTP/1.1 over `socket` and `ssl` only: `urllib.request` brings `http.client`, which brings `email` (its header
parser) and `tempfile`, 12 ms on a cold fetch that makes one small call (docs/performance.md). What it keeps of
urllib's behaviour: proxies from the environment (`https_proxy` through a CONNECT tunnel, `http_proxy` with the
request's absolute URL, `no_proxy`), redirects followed only within the origin and without the unredirected
headers (the tokens), answers with error statuses returned rather than raised, network failures raised as OSError.
What it adds: one deadline for a whole call of `send` (Deadline), as a recv's timeout alone lets a server that
trickles a byte at a time, or sends interim answers without end, hold the call (and, in the agent, a thread and a
socket) for ever.
"""

from __future__ import annotations

import os
import socket
import ssl
import time

from .errors import InvalidInput, ProviderError

TYPE_CHECKING = False  # typing is not imported on the fetch path
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping, Optional

    # (request, the registration's settings for TLS, timeout) -> (status, headers, body): `send`, or in tests a
    # function that answers in process (tests/test_provider_rules.py), as google-auth's transport.Request is
    # injected. Annotations only: import it under TYPE_CHECKING.
    Transport = Callable[["Request", Mapping[str, Any], float], tuple[int, Any, bytes]]

MAX_BODY = 1024 * 1024
MAX_LINE = 65536  # a status or header line; http.client's limits
MAX_HEADERS = 100
MAX_REDIRECTS = 10  # urllib's HTTPRedirectHandler.max_redirections
MAX_INTERIM = 10  # 1xx answers before the final one; a server sends one or two (100 Continue, 103 Early Hints)
RECV_SIZE = 65536
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
# By (CA file, --insecure, whole store, SSL_CERT_FILE, SSL_CERT_DIR): the resident agent sets os.environ to each
# caller's in turn, and OpenSSL reads the two variables when a context loads the store.
_contexts: dict[tuple[Optional[str], bool, bool, Optional[str], Optional[str]], ssl.SSLContext] = {}
# (CA file, host, SSL_CERT_FILE, SSL_CERT_DIR) the store's directory alone did not verify
_directory_fell_short: set[tuple[Optional[str], str, Optional[str], Optional[str]]] = set()


class Request:
    """An HTTP request as providers build it: Request(url, data=None, headers={}, method=None), read back through
    .full_url, .data, .get_method() and .get_header(name) — urllib.request.Request's interface, which this class
    replaced. Header names are kept as urllib keeps them (`str.capitalize`: "User-agent"), and looked up in any
    case. An unredirected header (a token) is sent with this request and not with a redirect's."""

    __slots__ = ("full_url", "data", "method", "headers", "unredirected_hdrs")

    def __init__(self, url: str, data: Optional[bytes] = None, headers: Optional[Mapping[str, str]] = None,
                 method: Optional[str] = None) -> None:
        self.full_url = url.partition("#")[0]
        self.data = data
        self.method = method
        self.headers: dict[str, str] = {}
        self.unredirected_hdrs: dict[str, str] = {}
        for name, value in (headers or {}).items():
            self.add_header(name, value)

    def get_method(self) -> str:
        return self.method or ("POST" if self.data is not None else "GET")

    def add_header(self, name: str, value: str) -> None:
        self.headers[name.capitalize()] = value

    def add_unredirected_header(self, name: str, value: str) -> None:
        self.unredirected_hdrs[name.capitalize()] = value

    def has_header(self, name: str) -> bool:
        return name.capitalize() in self.headers or name.capitalize() in self.unredirected_hdrs

    def get_header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        return self.headers.get(name.capitalize(), self.unredirected_hdrs.get(name.capitalize(), default))

    def header_items(self) -> list[tuple[str, str]]:
        return list({**self.unredirected_hdrs, **self.headers}.items())

    def __repr__(self) -> str:  # never the headers or the body: they carry tokens
        return f"<Request {self.get_method()} {origin(self.full_url)}>"


class Headers(dict[str, str]):
    """An answer's headers, looked up in any case (the first of a repeated header, as http.client's)."""

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


class RedirectRefused(OSError):
    """A redirect away from the origin a request was sent to: never followed, as it could carry a secret off."""


class BadAnswer(OSError):
    """What came back is not an HTTP/1.x answer (or breaks its limits): the server or the path to it is broken."""


class Deadline:
    """When a call of `send` must be over: connect, TLS handshake, proxy CONNECT, request, answer and every redirect
    hop share it. `left()` is what remains (a TimeoutError, as a socket's timeout raises, once nothing does), and
    `arm(connection)` gives a socket that as its timeout before each blocking operation. Monotonic: a clock that
    steps does not move it."""

    __slots__ = ("at",)

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")  # socket.timeout's words: network_reason and callers read it as today
        return left

    def arm(self, connection: socket.socket) -> None:
        connection.settimeout(self.left())


class InvalidURL(ValueError):
    """A URL this client will not send: not http(s), no host, a user name in it, or characters a request line
    cannot carry. Never quoted back (it may hold a token)."""


def tls_context(settings: Mapping[str, Any], whole_store: bool = True) -> ssl.SSLContext:
    """The system trust store plus the registration's CA file, or no verification when it says --insecure.

    Without `whole_store`, the system store is its hashed directory only, which OpenSSL reads a certificate at a
    time as a chain names one; `whole_store` adds the bundle file (as ssl.create_default_context loads it), whose
    ~140 certificates take ~20 ms to parse, the largest part of a cold fetch's TLS. `send` tries the directory
    first where there is one (and SSL_CERT_FILE names no file of its own) and, if verification fails, the whole
    store: the directory's anchors are a subset of the whole store's, so what it verifies the whole store does."""
    key = (settings.get("ca_file"), bool(settings.get("insecure")), whole_store or _store_directory() is None,
           os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    if key not in _contexts:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED, as the default's
        if key[1]:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif key[2]:
            context.load_default_certs()
        else:
            context.load_verify_locations(capath=_store_directory())
        if key[0] and not key[1]:
            try:
                context.load_verify_locations(cafile=key[0])
            except (OSError, ssl.SSLError) as error:
                raise ProviderError(f"cannot load the CA file {key[0]}: {getattr(error, 'strerror', None) or error}; "
                                    "check --ca-file") from None
        _contexts[key] = context
    return _contexts[key]


def _store_directory() -> Optional[str]:
    """The system store's hashed directory when reading it alone may do (see tls_context), else None."""
    paths = ssl.get_default_verify_paths()
    if paths.capath is None or os.environ.get(paths.openssl_cafile_env):
        return None
    return paths.capath


def is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def split_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, target) of an http(s) URL: the host lowercase and without brackets, the port given or
    the scheme's, the target the path and query (at least "/"). InvalidURL for anything else."""
    scheme, separator, rest = url.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in ("http", "https"):
        raise InvalidURL("not an http(s) URL")
    ends = [index for index in (rest.find("/"), rest.find("?"), rest.find("#")) if index >= 0]
    netloc, target = rest[:min(ends, default=len(rest))], rest[min(ends, default=len(rest)):]
    target = target.partition("#")[0]
    target = target if target.startswith("/") else "/" + target
    if "@" in netloc:
        raise InvalidURL("a URL with a user name or password in it")
    if netloc.startswith("["):
        host, bracket, port_text = netloc[1:].partition("]")
        if not bracket or port_text and not port_text.startswith(":"):
            raise InvalidURL("a malformed IPv6 address")
        port_text = port_text[1:]
    else:
        host, _, port_text = netloc.partition(":")
    if not host or port_text and not (port_text.isascii() and port_text.isdigit() and int(port_text) < 65536):
        raise InvalidURL("no host, or a port that is not a number")
    if not host.isascii():  # an internationalised name, as socket and ssl would encode it
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidURL("a host name that is not a valid internationalised name") from None
    if not all(" " < character < "\x7f" for character in host + target):
        raise InvalidURL("characters a request line cannot carry")
    return scheme, host.lower(), int(port_text) if port_text else (443 if scheme == "https" else 80), target


def origin(url: str) -> str:
    """scheme://host:port, which is all of a URL an error message may show (a path or query may hold a token)."""
    try:
        scheme, host, port, _ = split_url(url)
    except InvalidURL:
        return "(not an http(s) URL)"
    return f"{scheme}://{host}:{port}"


def check_endpoint(url: str, flag: str) -> str:
    """A URL a secret will be sent to: https (http only for loopback), a host, no user name or password in it.
    The URL itself is never quoted back: it may be the secret typed in the wrong place."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInput(f"{flag} must be an https URL such as https://api.example.com")
    if "@" in parts.netloc:
        raise InvalidInput(f"{flag} must not carry a user name or password; secrets go through the --…-stdin or "
                           "--…-env options")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise InvalidInput(f"{flag} must be https: a secret would cross the network in the clear (http is accepted "
                           "for loopback addresses only)")
    return url.strip()


def quote(text: str) -> str:
    """One path segment percent-encoded as urllib.parse.quote(text, safe='') encodes it."""
    unreserved = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~"
    return "".join(chr(byte) if chr(byte) in unreserved else f"%{byte:02X}" for byte in text.encode("utf-8"))


def send(request: Request, settings: Mapping[str, Any], timeout: float) -> tuple[int, Headers, bytes]:
    """(status, headers, body) for any HTTP answer, error statuses included, the body cut at MAX_BODY; network
    failures raise OSError (RedirectRefused and BadAnswer are ones). Redirects are followed as urllib follows them
    (GET and HEAD on any of 301, 302, 303, 307, 308; POST on 301, 302, 303 as a GET without its body), but only
    within the origin and without the request's unredirected headers.

    `timeout` bounds the whole call, redirects included (Deadline), not only each operation: it is the
    registration's fetch timeout, which is what the caller's outer bound (timebox.call_within, timeout + 1 s) allows
    a fetch, so a call that needs more could not have been used anyway; each operation's own timeout was this same
    figure, so min(per-operation timeout, time left) is the time left. A provider that makes several calls gives
    each the fetch timeout, as before; the outer bound still caps their sum."""
    deadline = Deadline(timeout)
    url, method, data = request.full_url, request.get_method(), request.data
    headers = {**request.headers, **request.unredirected_hdrs}  # urllib's precedence
    for redirects in range(MAX_REDIRECTS + 1):
        status, answer_headers, body = _exchange(url, method, data, headers, settings, deadline)
        location = answer_headers.get("location") or answer_headers.get("uri")
        follows = method in ("GET", "HEAD") or method == "POST" and status in (301, 302, 303)
        if status not in REDIRECT_STATUSES or location is None or not follows or redirects == MAX_REDIRECTS:
            return status, answer_headers, body
        target = _join(url, location.replace(" ", "%20"))
        if origin(target) != origin(url):
            raise RedirectRefused(f"redirected from {origin(url)} to {origin(target)}, another origin; not followed")
        url, method, data = target, "HEAD" if method == "HEAD" else "GET", None
        headers = {name: value for name, value in request.headers.items()
                   if name.lower() not in ("content-length", "content-type")}
    raise AssertionError("the loop returns")  # pragma: no cover


def _join(base: str, location: str) -> str:
    """An absolute URL for a Location header: absolute and root-relative ones here, the rest (rare) by urljoin."""
    if location.lower().startswith(("http://", "https://")):
        return location
    if location.startswith("/") and not location.startswith("//"):
        scheme, _, rest = base.partition("://")
        ends = [index for index in (rest.find("/"), rest.find("?"), rest.find("#")) if index >= 0]
        return f"{scheme}://{rest[:min(ends, default=len(rest))]}{location}"
    import urllib.parse

    return urllib.parse.urljoin(base, location)


def proxy_for(scheme: str, host: str, port: int, env: Mapping[str, str]) -> Optional[tuple[str, int, Optional[str]]]:
    """(host, port, Proxy-Authorization or None) of the proxy the environment names for this request, as urllib's
    ProxyHandler reads it: `<scheme>_proxy` (lower case first), not when `no_proxy` names the host (or a domain
    above it, or `*`); `HTTP_PROXY` is ignored in a CGI request (httpoxy)."""
    variables: dict[str, str] = {}  # urllib.request.getproxies_environment, line for line
    for name, value in env.items():
        if value and name.lower()[-6:] == "_proxy":
            variables[name.lower()[:-6]] = value
    if "REQUEST_METHOD" in env:
        variables.pop("http", None)
    for name, value in env.items():  # the lower-case spelling wins; an empty one unsets
        if name[-6:] == "_proxy":
            if value:
                variables[name.lower()[:-6]] = value
            else:
                variables.pop(name.lower()[:-6], None)
    proxy = variables.get(scheme)
    if not proxy or _bypassed(host, port, variables.get("no", "")):
        return None
    proxy_scheme, separator, rest = proxy.partition("://")
    if not separator:
        proxy_scheme, rest = "http", proxy
    userinfo, at, hostport = rest.split("/", 1)[0].rpartition("@")
    if hostport.startswith("["):
        proxy_host, _, proxy_port = hostport[1:].partition("]")
        proxy_port = proxy_port.removeprefix(":")
    else:
        proxy_host, _, proxy_port = hostport.partition(":")
    if not proxy_host or proxy_port and not (proxy_port.isascii() and proxy_port.isdigit()):
        raise OSError(f"the {scheme}_proxy variable is not a proxy URL such as http://proxy.example.com:3128")
    authorization = None
    if at and ":" in userinfo:
        import binascii
        from urllib.parse import unquote  # rare: a proxy with a password

        user, _, password = userinfo.partition(":")
        credentials = f"{unquote(user)}:{unquote(password)}".encode()
        authorization = "Basic " + binascii.b2a_base64(credentials, newline=False).decode("ascii")
    default_port = 443 if proxy_scheme.lower() == "https" else 80
    return proxy_host, int(proxy_port) if proxy_port else default_port, authorization


def _bypassed(host: str, port: int, no_proxy: str) -> bool:
    """urllib.request.proxy_bypass_environment's rule: `*`, or an entry equal to the host (or host:port), or a
    domain the host is under (a leading dot ignored)."""
    if no_proxy.strip() == "*":
        return True
    hostport = f"{host}:{port}"
    for name in no_proxy.split(","):
        name = name.strip().lstrip(".").lower()
        if name and (host == name or hostport == name or host.endswith("." + name) or hostport.endswith("." + name)):
            return True
    return False


def _exchange(url: str, method: str, data: Optional[bytes], headers: Mapping[str, str], settings: Mapping[str, Any],
              deadline: Deadline) -> tuple[int, Headers, bytes]:
    """One request and its answer over a new connection (`Connection: close`, as urllib sends)."""
    scheme, host, port, target = split_url(url)
    proxy = proxy_for(scheme, host, port, os.environ)
    lines = [f"{method} {url.partition('#')[0] if proxy and scheme == 'http' else target} HTTP/1.1"]
    names = {name.lower() for name in headers}
    default_port = 443 if scheme == "https" else 80
    host_header = f"[{host}]" if ":" in host else host
    sent = {"Host": host_header if port == default_port else f"{host_header}:{port}"}
    if "user-agent" not in names:
        from . import __version__

        sent["User-Agent"] = f"docker-credential-idp/{__version__}"
    if "accept-encoding" not in names:
        sent["Accept-Encoding"] = "identity"
    if data is not None:
        if "content-type" not in names:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        if "content-length" not in names:
            sent["Content-Length"] = str(len(data))
    if proxy and scheme == "http" and proxy[2]:
        sent["Proxy-Authorization"] = proxy[2]
    sent.update(headers)
    sent["Connection"] = "close"
    for name, value in sent.items():
        if not name or any(c in name for c in ":\r\n\0 \t") or any(c in str(value) for c in "\r\n\0"):
            raise ValueError("a header name or value with a line break, NUL or colon in it; not sent")
        lines.append(f"{name}: {value}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    connection = _connect(scheme, host, port, proxy, settings, deadline)
    with connection:
        _send_all(connection, head + (data or b""), deadline)
        return _read_answer(_Reader(connection, deadline), method)


def _send_all(connection: socket.socket, data: bytes, deadline: Deadline) -> None:
    """sendall, each send within what is left (an SSLSocket's sendall gives each piece the whole timeout)."""
    view = memoryview(data)
    while view:
        deadline.arm(connection)
        view = view[connection.send(view):]


class _Reader:
    """An answer's bytes as a buffered file gives them (readline, read), each recv within what is left of the
    deadline: a file from makefile would recv on for as long as bytes trickle in."""

    __slots__ = ("connection", "deadline", "buffer", "ended")

    def __init__(self, connection: socket.socket, deadline: Deadline) -> None:
        self.connection, self.deadline = connection, deadline
        self.buffer = bytearray()
        self.ended = False

    def _more(self) -> bool:
        if not self.ended:
            self.deadline.arm(self.connection)
            chunk = self.connection.recv(RECV_SIZE)
            self.buffer += chunk
            self.ended = not chunk
        return not self.ended

    def _take(self, size: int) -> bytes:
        taken = bytes(self.buffer[:size])
        del self.buffer[:size]
        return taken

    def readline(self, limit: int) -> bytes:
        """A line with its newline, or `limit` bytes of one, or what is left at the end."""
        searched = 0
        while True:
            end = self.buffer.find(b"\n", searched, limit)
            if end >= 0:
                return self._take(end + 1)
            if len(self.buffer) >= limit:
                return self._take(limit)
            searched = len(self.buffer)
            if not self._more():
                return self._take(limit)

    def read(self, size: int) -> bytes:
        """`size` bytes, or fewer at the end."""
        while len(self.buffer) < size and self._more():
            pass
        return self._take(size)


def _connect(scheme: str, host: str, port: int, proxy: Optional[tuple[str, int, Optional[str]]],
             settings: Mapping[str, Any], deadline: Deadline) -> socket.socket:
    """A connection to the server (through the proxy's tunnel for https), with TLS for https: verified first
    against the store's directory and, if that falls short, again from the start against the whole store
    (tls_context says why). ssl bounds a handshake by the socket's timeout as a whole; both tries share the
    deadline."""
    if scheme != "https":
        return _open(host, port, proxy, deadline, tunnel=False)
    tried = (settings.get("ca_file"), host, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    lean = not settings.get("insecure") and _store_directory() is not None and tried not in _directory_fell_short
    for whole_store in ((False, True) if lean else (True,)):
        context = tls_context(settings, whole_store)
        connection = _open(host, port, proxy, deadline, tunnel=True)
        try:
            deadline.arm(connection)
            return context.wrap_socket(connection, server_hostname=host.encode("ascii"))
        except ssl.SSLCertVerificationError:
            connection.close()
            if whole_store:
                raise
            _directory_fell_short.add(tried)
        except BaseException:
            connection.close()
            raise
    raise AssertionError("the loop returns or raises")  # pragma: no cover


def _open(host: str, port: int, proxy: Optional[tuple[str, int, Optional[str]]], deadline: Deadline,
          tunnel: bool) -> socket.socket:
    """A TCP connection to the server, or to the proxy (`tunnel`: through its CONNECT tunnel to the server). Host
    names go to the resolver and to ssl as ASCII bytes (split_url made them so): as str, both would load the idna
    codec."""
    if proxy is None:
        connection = _dial(host.encode("ascii"), port, deadline)
    else:
        proxy_host = proxy[0].encode("ascii" if proxy[0].isascii() else "idna")
        connection = _dial(proxy_host, proxy[1], deadline)
        if tunnel:
            try:
                _tunnel(connection, host, port, proxy[2], deadline)
            except BaseException:
                connection.close()
                raise
    return connection


def _dial(host: bytes, port: int, deadline: Deadline) -> socket.socket:
    """socket.create_connection's loop over the resolver's addresses (the last failure raised), each connect within
    what is left of the deadline rather than a whole timeout each. The resolver itself is not bounded: getaddrinfo
    cannot be interrupted (the outer timebox bounds a one-shot get; the agent's threads wait on the resolver)."""
    failure: Optional[OSError] = None
    for family, kind, protocol, _, address in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        left = deadline.left()  # before each address: past the deadline, no other is tried
        connection = socket.socket(family, kind, protocol)
        try:
            connection.settimeout(left)
            connection.connect(address)
            return connection
        except OSError as error:
            connection.close()
            failure = error
    raise failure or OSError("the resolver gave no address")


def _tunnel(connection: socket.socket, host: str, port: int, authorization: Optional[str],
            deadline: Deadline) -> None:
    """CONNECT host:port through the proxy on `connection`; OSError unless it answers 2xx."""
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if authorization:
        lines.append(f"Proxy-Authorization: {authorization}")
    _send_all(connection, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), deadline)
    # Byte by byte, so that nothing of the TLS handshake that follows is read into a buffer here.
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        deadline.arm(connection)
        byte = connection.recv(1)
        if not byte:
            raise BadAnswer("the proxy closed the connection before answering CONNECT")
        head += byte
        if len(head) > MAX_LINE:
            raise BadAnswer("the proxy's answer to CONNECT is too long")
    status = _status(head.split(b"\r\n", 1)[0])
    if not 200 <= status < 300:
        raise OSError(f"the proxy refused the tunnel (HTTP {status} to CONNECT)")


def _status(line: bytes) -> int:
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
        raise BadAnswer("the answer is not HTTP/1.x")
    return int(parts[1])


def _read_answer(stream: _Reader, method: str) -> tuple[int, Headers, bytes]:
    for _ in range(MAX_INTERIM + 1):
        line = stream.readline(MAX_LINE + 1)
        if not line:
            raise BadAnswer("the server closed the connection without answering")
        if len(line) > MAX_LINE:
            raise BadAnswer("the status line is too long")
        status = _status(line)
        headers = _read_headers(stream)
        if not 100 <= status < 200 or status == 101:
            break
    else:
        raise BadAnswer(f"more than {MAX_INTERIM} interim (1xx) answers before the final one")
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return status, headers, b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return status, headers, _read_chunked(stream)
    length = headers.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise BadAnswer("the answer's Content-Length is not a number")
        wanted = min(int(length), MAX_BODY)
        body = stream.read(wanted)
        if len(body) < wanted:
            raise BadAnswer(f"the answer ended after {len(body)} of its {length} bytes")
        return status, headers, body
    return status, headers, stream.read(MAX_BODY)


def _read_headers(stream: _Reader) -> Headers:
    headers = Headers()
    for _ in range(MAX_HEADERS + 1):
        line = stream.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise BadAnswer("a header line is too long")
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, colon, value = line.decode("latin-1").partition(":")
        if colon and name.strip():
            headers.setdefault(name.strip().lower(), value.strip())
    raise BadAnswer(f"more than {MAX_HEADERS} headers")


def _read_chunked(stream: _Reader) -> bytes:
    """A chunked body, cut at MAX_BODY (what is beyond is not read)."""
    body = bytearray()
    while True:
        size_text = stream.readline(MAX_LINE + 1).split(b";", 1)[0].strip()
        if not size_text or len(size_text) > 16 or not all(c in b"0123456789abcdefABCDEF" for c in size_text):
            raise BadAnswer("a chunk size that is not a hexadecimal number")
        size = int(size_text, 16)
        if size == 0:
            _read_headers(stream)  # the trailer
            return bytes(body)
        wanted = min(size, MAX_BODY - len(body))
        chunk = stream.read(wanted)
        if len(chunk) < wanted:
            raise BadAnswer("the answer ended inside a chunk")
        body += chunk
        if len(body) >= MAX_BODY:
            return bytes(body)
        stream.readline(MAX_LINE + 1)  # the CRLF after the chunk


def network_reason(error: BaseException) -> str:
    """A short, secret-free reason for a failed connection, with a hint for the TLS case."""
    reason = getattr(error, "reason", None)  # an exception that wraps another (urllib's URLError, in SDKs)
    reason = reason if isinstance(reason, BaseException) else error  # an SSLError's reason is a string
    if isinstance(reason, (RedirectRefused, BadAnswer)):
        return str(reason)
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS verification failed ({reason.verify_message}); trust its CA with --ca-file"
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return "timed out"
    return str(getattr(reason, "strerror", None) or reason)


def oauth_error(body: bytes) -> str:
    """What an OAuth error answer may show of itself: its error code (a word such as invalid_grant) and Entra ID's
    AADSTS number — never the description or the rest of the body, which an endpoint may fill with what it was sent
    (the identity token). "" when the answer names neither."""
    from .jsontext import loads

    try:
        detail = loads(body[:4096].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return ""
    if not isinstance(detail, dict):
        return ""
    code = detail.get("error")
    is_word = isinstance(code, str) and 0 < len(code) <= 64 and all(
        character.isascii() and (character.isalnum() or character in "_.-") for character in code)
    shown = str(code) if is_word else ""
    numbers = detail.get("error_codes")
    first = numbers[0] if isinstance(numbers, list) and numbers else None
    if isinstance(first, int) and not isinstance(first, bool) and 0 <= first < 10**9:
        shown = f"{shown} (AADSTS{first})".strip()
    return shown
