"""httpclient.send, the one HTTP client (HTTP/1.1 over socket and ssl), against stand-ins on 127.0.0.1: what it
sends, what it reads back (Content-Length, chunked, to the end, bounded), TLS with a CA file, the redirects it
follows and the ones it refuses, and proxies from the environment as urllib read them (a CONNECT tunnel for https,
the absolute URL for http, no_proxy)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any, Callable

import pytest

from docker_credential_idp import httpclient
from docker_credential_idp.httpclient import (
    MAX_BODY,
    BadAnswer,
    InvalidURL,
    RedirectRefused,
    Request,
    network_reason,
    proxy_for,
    send,
    split_url,
)

from .servers import LocalServer, TunnelProxy, json_answer
from .tls import make_tls

PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "REQUEST_METHOD")


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def echo(method: str, path: str, headers: Any, body: bytes):
    """What the server saw, as JSON (header names in lower case)."""
    return json_answer({"method": method, "path": path, "body": body.decode(),
                        "headers": {name.lower(): value for name, value in headers.items()}})


class RawServer:
    """A server on 127.0.0.1 that reads a request's head and writes `answer` bytes as they are, then closes: for
    answers LocalServer cannot give (chunked, no length, broken)."""

    def __init__(self, answer: bytes) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.heads: list[bytes] = []

        def serve() -> None:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    head += chunk
                self.heads.append(head)
                connection.sendall(answer)

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.listener.close()
        self.thread.join(10)


def raw(answer: bytes, method: str = "GET") -> tuple[int, Any, bytes, bytes]:
    server = RawServer(answer)
    try:
        status, headers, body = send(Request(f"{server.url}/x", method=method), {}, 5)
        return status, headers, body, server.heads[0]
    finally:
        server.stop()


def serving(route: Callable[..., Any], tls: Any = None) -> LocalServer:
    return LocalServer(route, tls)


def test_what_is_sent_and_what_comes_back():
    server = serving(echo)
    try:
        request = Request(f"{server.url}/a/b?c=d#fragment", data=b"x=1", headers={"X-Custom": "v"})
        request.add_unredirected_header("Authorization", "Bearer t-1")
        status, headers, body = send(request, {}, 5)
        seen = httpclient_json(body)
        assert status == 200 and headers["content-type"] == headers.get("Content-Type") == "application/json"
        assert seen["method"] == "POST" and seen["path"] == "/a/b?c=d" and seen["body"] == "x=1"
        assert seen["headers"]["x-custom"] == "v" and seen["headers"]["authorization"] == "Bearer t-1"
        assert seen["headers"]["content-type"] == "application/x-www-form-urlencoded"
        assert seen["headers"]["content-length"] == "3" and seen["headers"]["connection"] == "close"
        assert seen["headers"]["host"] == server.address
        status, _, body = send(Request(f"{server.url}/p", method="GET", data=b""), {}, 5)
        assert httpclient_json(body)["method"] == "GET" and httpclient_json(body)["headers"]["content-length"] == "0"
    finally:
        server.stop()


def httpclient_json(body: bytes) -> Any:
    import json

    return json.loads(body)


def test_the_request_reads_back_as_urllib_s_did():
    request = Request("https://h.example.com/x#frag", headers={"user-agent": "ua", "Accept": "a"})
    request.add_unredirected_header("authorization", "Bearer s")
    assert request.full_url == "https://h.example.com/x" and request.get_method() == "GET"
    assert request.headers == {"User-agent": "ua", "Accept": "a"}
    assert request.unredirected_hdrs == {"Authorization": "Bearer s"}
    assert request.get_header("User-Agent") == "ua" and request.get_header("AUTHORIZATION") == "Bearer s"
    assert request.get_header("absent", "d") == "d" and request.has_header("accept")
    assert Request("http://h/", data=b"").get_method() == "POST"
    assert Request("http://h/", method="PUT").get_method() == "PUT"
    assert "Bearer s" not in repr(request)


def test_error_statuses_are_answers_not_exceptions():
    server = serving(lambda *_: json_answer({"error": "no"}, 403))
    try:
        status, _, body = send(Request(f"{server.url}/"), {}, 5)
        assert status == 403 and b"no" in body
    finally:
        server.stop()


def test_chunked_and_unsized_bodies_and_the_bound():
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX: y\r\n\r\n"
    assert raw(chunked)[:3:2] == (200, b"hello world")
    assert raw(b"HTTP/1.0 200 OK\r\nX-A: 1\r\n\r\nto the end")[2] == b"to the end"
    huge = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 10) + b"a" * (MAX_BODY + 10)
    assert len(raw(huge)[2]) == MAX_BODY
    huge_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % (MAX_BODY + 10) + b"b" * (MAX_BODY + 10)
    assert raw(huge_chunk)[2] == b"b" * MAX_BODY
    assert raw(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")[:3] == (204, {}, b"")
    status, headers, body, head = raw(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n", method="HEAD")
    assert (status, body) == (200, b"") and head.startswith(b"HEAD /x HTTP/1.1\r\n")


@pytest.mark.parametrize("answer", [b"", b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                                    b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n"])
def test_what_is_not_http_is_an_oserror_with_a_reason(answer):
    with pytest.raises(BadAnswer) as caught:
        raw(answer)
    assert isinstance(caught.value, OSError) and network_reason(caught.value)


def test_headers_that_would_split_the_request_are_not_sent():
    server = RawServer(b"HTTP/1.1 200 OK\r\n\r\n")
    try:
        for headers in ({"Authorization": "Bearer a\r\nX-Injected: 1"}, {"Bad\nName": "v"}):
            with pytest.raises(ValueError) as caught:
                send(Request(f"{server.url}/", headers=headers), {}, 5)
            assert "Bearer a" not in str(caught.value)
        assert server.heads == []
    finally:
        server.stop()


@pytest.mark.parametrize("url", ["ftp://h/x", "https://user:secret-1@h/x", "https:///x", "https://h:port/x",
                                 "https://h/a b", "https://[::1/x"])
def test_urls_it_will_not_send(url):
    with pytest.raises(InvalidURL) as caught:
        split_url(url)
    assert "secret-1" not in str(caught.value)


def test_split_url():
    assert split_url("HTTPS://Reg.Example.COM/v2/?q#f") == ("https", "reg.example.com", 443, "/v2/?q")
    assert split_url("http://127.0.0.1:8080") == ("http", "127.0.0.1", 8080, "/")
    assert split_url("https://[::1]:5000?x") == ("https", "::1", 5000, "/?x")
    assert split_url("https://bücher.example/") == ("https", "xn--bcher-kva.example", 443, "/")
    assert httpclient.origin("https://h.example.com/path?token=secret") == "https://h.example.com:443"


def test_tls_with_the_registration_s_ca_file_and_without(tmp_path):
    ca, cert, key = make_tls(tmp_path / "tls")
    server = serving(echo, (cert, key))
    try:
        status, _, _ = send(Request(f"{server.url}/"), {"ca_file": str(ca)}, 5)
        assert status == 200
        with pytest.raises(OSError) as caught:
            send(Request(f"{server.url}/"), {}, 5)
        assert "TLS verification failed" in network_reason(caught.value) and "--ca-file" in network_reason(caught.value)
        assert send(Request(f"{server.url}/"), {"insecure": True}, 5)[0] == 200
    finally:
        server.stop()


def test_the_store_s_directory_is_read_first_and_a_failure_is_checked_against_the_whole_store(tmp_path, monkeypatch):
    """With SSL_CERT_DIR holding the CA (under its OpenSSL hash name), verification succeeds from the directory;
    a server no store trusts is tried twice (directory, then whole store) and fails with the TLS reason."""
    ca, cert, key = make_tls(tmp_path / "tls")
    directory = tmp_path / "certs"
    directory.mkdir()
    (directory / f"{subject_hash(ca)}.0").write_bytes(ca.read_bytes())
    monkeypatch.setenv("SSL_CERT_DIR", str(directory))
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    httpclient._contexts.clear()
    server = serving(echo, (cert, key))
    try:
        assert send(Request(f"{server.url}/"), {}, 5)[0] == 200
        other_ca, other_cert, other_key = make_tls(tmp_path / "other")
        stranger = serving(echo, (other_cert, other_key))
        with pytest.raises(OSError) as caught:
            send(Request(f"{stranger.url}/"), {}, 5)
        assert "TLS verification failed" in network_reason(caught.value)
        stranger.stop()
    finally:
        server.stop()
        httpclient._contexts.clear()


def test_the_trust_store_is_the_one_ssl_cert_file_names_at_each_request(tmp_path, monkeypatch):
    """The resident agent sets os.environ to each caller's in turn: a caller's SSL_CERT_FILE (a company CA) is
    trusted for its requests, as a get of its own would trust it, and for no other caller's."""
    ca, cert, key = make_tls(tmp_path / "tls")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    httpclient._contexts.clear()
    httpclient._directory_fell_short.clear()
    server = serving(echo, (cert, key))
    try:
        with pytest.raises(OSError):
            send(Request(f"{server.url}/"), {}, 5)
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))
        assert send(Request(f"{server.url}/"), {}, 5)[0] == 200
        monkeypatch.delenv("SSL_CERT_FILE")
        with pytest.raises(OSError):
            send(Request(f"{server.url}/"), {}, 5)
    finally:
        server.stop()
        httpclient._contexts.clear()
        httpclient._directory_fell_short.clear()


def subject_hash(ca: Path) -> str:
    """OpenSSL's X509_NAME_hash of the CA's subject: the file name a hashed directory files it under."""
    import ctypes
    import ctypes.util

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    der = x509.load_pem_x509_certificate(ca.read_bytes()).public_bytes(Encoding.DER)
    libcrypto = ctypes.CDLL(ctypes.util.find_library("crypto"))
    libcrypto.d2i_X509.restype = ctypes.c_void_p
    libcrypto.d2i_X509.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long]
    libcrypto.X509_get_subject_name.restype = ctypes.c_void_p
    libcrypto.X509_get_subject_name.argtypes = [ctypes.c_void_p]
    libcrypto.X509_NAME_hash_ex.restype = ctypes.c_ulong
    libcrypto.X509_NAME_hash_ex.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    libcrypto.X509_free.argtypes = [ctypes.c_void_p]
    buffer = ctypes.c_char_p(der)
    certificate = libcrypto.d2i_X509(None, ctypes.byref(buffer), len(der))
    try:
        return f"{libcrypto.X509_NAME_hash_ex(libcrypto.X509_get_subject_name(certificate), None, None, None):08x}"
    finally:
        libcrypto.X509_free(certificate)


def test_redirects_within_the_origin_are_followed_without_the_token():
    def route(method: str, path: str, headers: Any, body: bytes):
        if path == "/old":
            return 302, {"Location": "/new?x=1"}, b""
        if path == "/post":
            return 303, {"Location": f"{server.url}/new"}, b""
        if path == "/post-307":
            return 307, {"Location": "/new"}, b""
        return echo(method, path, headers, body)

    server = serving(route)
    try:
        request = Request(f"{server.url}/old", headers={"Accept": "application/json"})
        request.add_unredirected_header("Authorization", "Bearer not-carried-1")
        status, _, body = send(request, {}, 5)
        seen = httpclient_json(body)
        assert status == 200 and seen["path"] == "/new?x=1" and seen["headers"]["accept"] == "application/json"
        assert "authorization" not in seen["headers"]
        status, _, body = send(Request(f"{server.url}/post", data=b"a=1"), {}, 5)
        seen = httpclient_json(body)
        assert seen["method"] == "GET" and seen["body"] == "" and "content-type" not in seen["headers"]
        assert send(Request(f"{server.url}/post-307", data=b"a"), {}, 5)[0] == 307  # as urllib: a POST is not re-sent
    finally:
        server.stop()


def test_a_redirect_to_another_origin_is_refused_and_a_loop_ends():
    elsewhere = serving(echo)
    server = serving(lambda m, path, h, b: (302, {"Location": f"{elsewhere.url}/steal" if path == "/off" else "/loop"},
                                            b""))
    try:
        with pytest.raises(RedirectRefused) as caught:
            send(Request(f"{server.url}/off"), {}, 5)
        assert "another origin" in network_reason(caught.value) and elsewhere.count() == 0
        assert send(Request(f"{server.url}/loop"), {}, 5)[0] == 302
        assert server.count("/loop") == 11
    finally:
        server.stop()
        elsewhere.stop()


def test_https_goes_through_the_proxy_s_connect_tunnel(tmp_path, monkeypatch):
    """A name no resolver knows, reached only through the proxy (TunnelProxy sends every CONNECT to 127.0.0.1),
    TLS verified end to end for that name."""
    ca, cert, key = make_tls(tmp_path / "tls", ("platform.internal.test",))
    server = serving(echo, (cert, key))
    proxy = TunnelProxy(server.httpd.server_address[1])
    port = server.httpd.server_address[1]
    url = f"https://platform.internal.test:{port}/creds"
    try:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        status, _, body = send(Request(url), {"ca_file": str(ca)}, 5)
        assert status == 200 and httpclient_json(body)["headers"]["host"] == f"platform.internal.test:{port}"
        monkeypatch.setenv("no_proxy", ".internal.test")  # the lower-case spelling wins, as with urllib
        with pytest.raises(OSError):
            send(Request(url), {"ca_file": str(ca)}, 5)  # direct: the name does not resolve
    finally:
        proxy.stop()
        server.stop()


def test_http_goes_to_the_proxy_with_the_absolute_url(monkeypatch):
    proxy = serving(echo)  # stands in for the proxy: it answers itself, saying what it was asked
    try:
        monkeypatch.setenv("http_proxy", f"http://robot:pa%3Ass@{proxy.address}")
        status, _, body = send(Request("http://registry.internal.test:5000/v2/"), {}, 5)
        seen = httpclient_json(body)
        assert status == 200 and seen["path"] == "http://registry.internal.test:5000/v2/"
        assert seen["headers"]["proxy-authorization"] == "Basic cm9ib3Q6cGE6c3M="  # robot:pa:ss
        monkeypatch.setenv("REQUEST_METHOD", "GET")  # a CGI request: HTTP_PROXY may be the client's header
        monkeypatch.delenv("http_proxy")
        monkeypatch.setenv("HTTP_PROXY", f"http://{proxy.address}")
        assert proxy_for("http", "registry.internal.test", 5000, dict(__import__("os").environ)) is None
    finally:
        proxy.stop()


@pytest.mark.parametrize("no_proxy, host, bypassed", [
    ("*", "a.example.com", True), ("example.com", "a.example.com", True), (".example.com", "example.com", True),
    ("a.example.com:8443", "a.example.com", True), ("xample.com", "a.example.com", False),
    ("other.com, ,example.org", "a.example.com", False), ("", "a.example.com", False),
])
def test_no_proxy_as_urllib_reads_it(no_proxy, host, bypassed):
    env = {"https_proxy": "proxy.example.com:3128", "no_proxy": no_proxy}
    assert (proxy_for("https", host, 8443, env) is None) is bypassed
    if not bypassed:
        assert proxy_for("https", host, 8443, env) == ("proxy.example.com", 3128, None)


def test_a_malformed_proxy_variable_is_a_network_failure_that_names_it(monkeypatch):
    monkeypatch.setenv("https_proxy", "http://proxy.example.com:not-a-port")
    with pytest.raises(OSError) as caught:
        send(Request("https://registry.example.com/v2/"), {}, 5)
    assert "https_proxy" in network_reason(caught.value)


class SlowServer:
    """A server on 127.0.0.1 that reads a request's head (or nothing, `reads_head=False`: a TLS client speaks first
    and is answered byte by byte here) and then writes `answer`'s pieces, one every `every` seconds: an answer that
    never completes as an exchange, though every recv gets something within any per-operation timeout. The loop is
    bounded (`pieces` at most) and ends when the client goes away or `stop` is called."""

    def __init__(self, answer: Callable[[int], bytes], every: float, reads_head: bool = True,
                 pieces: int = 600) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.port = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        self.connections = 0

        def serve() -> None:
            while not self.stopped.is_set():
                try:
                    connection, _ = self.listener.accept()
                except OSError:
                    return
                self.connections += 1
                threading.Thread(target=answer_on, args=(connection,), daemon=True).start()

        def answer_on(connection: socket.socket) -> None:
            with connection:
                try:
                    connection.settimeout(10)
                    head = b""
                    while reads_head and b"\r\n\r\n" not in head:
                        chunk = connection.recv(65536)
                        if not chunk:
                            return
                        head += chunk
                    for index in range(pieces):
                        if self.stopped.wait(every):
                            return
                        connection.sendall(answer(index))
                except OSError:  # the client gave up: what the tests expect
                    return

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        try:  # wakes the accept (closing the listener from here would not)
            socket.create_connection(("127.0.0.1", self.port), 1).close()
        except OSError:
            pass
        self.thread.join(10)
        self.listener.close()


def ends_within(limit: float, work: Callable[[], Any]) -> tuple[float, BaseException | None]:
    """(seconds taken, what `work` raised) — or a test failure when it is still running after `limit` seconds (the
    thread is left: it is a daemon, and the server behind it stops with the test)."""
    import time

    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            work()
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome.append(error)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"send was still running after {limit} s"
    return time.monotonic() - started, outcome[0]


def piece_of(text: bytes, then: bytes) -> Callable[[int], bytes]:
    """The bytes of `text` one at a time, then `then` for ever."""
    return lambda index: text[index:index + 1] if index < len(text) else then


TRICKLES = {
    # a byte every 0.2 s: the status line, then a header line that never ends
    "status and headers": piece_of(b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a"),
    # interim answers, one every 0.2 s, for ever
    "endless 100 Continue": lambda index: b"HTTP/1.1 100 Continue\r\n\r\n",
    # the head at once, then the body a byte every 0.2 s
    "sized body": lambda index: b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" if index == 0 else b"b",
    "chunked body": lambda index: (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n186a0\r\n" if index == 0
                                   else b"c"),
    "unsized body": lambda index: b"HTTP/1.0 200 OK\r\n\r\n" if index == 0 else b"d",
}


@pytest.mark.parametrize("trickle", TRICKLES)
def test_an_answer_that_trickles_ends_at_the_timeout(trickle):
    """Every recv gets a byte within 0.2 s, under the 1 s timeout; the exchange as a whole must still end at it, with
    the timeout's OSError (what callers and network_reason already treat as a transient "timed out")."""
    server = SlowServer(TRICKLES[trickle], every=0.2)
    try:
        taken, error = ends_within(10, lambda: send(Request(f"{server.url}/x"), {}, 1.0))
        assert isinstance(error, TimeoutError) and network_reason(error) == "timed out", error
        assert taken >= 0.9  # the deadline, not a recv's timeout, ended it: each recv had a byte within 0.2 s
    finally:
        server.stop()


def test_redirect_hops_share_the_deadline():
    """Eleven hops of 0.3 s each: under the old per-hop timeout this took 3.3 s and returned the last 302."""
    import time

    def route(method: str, path: str, headers: Any, body: bytes):
        time.sleep(0.3)
        return 302, {"Location": "/again"}, b""

    server = serving(route)
    try:
        taken, error = ends_within(10, lambda: send(Request(f"{server.url}/x"), {}, 1.0))
        assert isinstance(error, TimeoutError), error
        assert server.count() <= 5  # it stopped hopping at the deadline, not at MAX_REDIRECTS
    finally:
        server.stop()


def test_the_proxy_s_connect_answer_trickling_ends_at_the_timeout(monkeypatch):
    proxy = SlowServer(piece_of(b"HTTP/1.1 200 Connection established\r\nX-Slow: ", b"p"), every=0.2)
    try:
        monkeypatch.setenv("https_proxy", proxy.url)
        taken, error = ends_within(10, lambda: send(Request("https://registry.internal.test/v2/"), {}, 1.0))
        assert isinstance(error, TimeoutError), error
    finally:
        proxy.stop()


def test_a_tls_handshake_that_trickles_ends_at_the_timeout():
    """A TLS record header announcing 16 KiB, then a byte every 0.2 s. ssl bounds one handshake by the socket's
    timeout already; with the store's directory tried first and the whole store after, there can be two."""
    server = SlowServer(piece_of(b"\x16\x03\x03\x40\x00", b"\x00"), every=0.2, reads_head=False)
    try:
        taken, error = ends_within(10, lambda: send(Request(f"https://127.0.0.1:{server.port}/"), {}, 1.0))
        assert isinstance(error, TimeoutError), error
    finally:
        server.stop()


def test_interim_answers_are_capped():
    """Eleven 100 Continue answers at once, then a final answer: more interim answers than any server sends, so the
    answer is refused rather than read on (an endless stream of them would otherwise run to the deadline)."""
    cap = getattr(httpclient, "MAX_INTERIM", 10)
    many = b"HTTP/1.1 100 Continue\r\n\r\n" * (cap + 1) + b"HTTP/1.1 204 No Content\r\n\r\n"
    with pytest.raises(BadAnswer) as caught:
        raw(many)
    assert "interim" in network_reason(caught.value)
    few = b"HTTP/1.1 100 Continue\r\n\r\n" * cap + b"HTTP/1.1 204 No Content\r\n\r\n"
    assert raw(few)[0] == 204
