"""The docker-credential-* protocol as a pure function: (verb, stdin bytes, service) -> (stdout bytes, exit status).

Wire format and messages follow docker/docker-credential-helpers (credentials/credentials.go, credentials/error.go).
Errors go to stdout: docker shows the helper's stdout to the user and compares it with the not-found text.
"""

from __future__ import annotations

from . import __version__
from .errors import PROG, IdpError, InvalidInput
from .jsontext import is_text

TYPE_CHECKING = False  # typing and json load only when a verb needs them: `get` is on every pull's path
if TYPE_CHECKING:
    from typing import Callable, Protocol

    class Answer(Protocol):
        username: str
        secret: str

    class CredentialStore(Protocol):
        """What the verbs need: `get` is the pipeline's (light), the others the service's."""

        def get(self, server: str) -> Answer: ...
        def store(self, server: str, username: str, secret: str) -> None: ...
        def erase(self, server: str) -> None: ...
        def list_servers(self) -> dict[str, str]: ...

# json.dumps's escaping for ASCII text, without loading json (and re) or even the _json extension: a get answer is
# nearly always ASCII. Anything else goes through _json, the C accelerator json.dumps itself uses.
_ASCII_ESCAPES = {**{c: f"\\u{c:04x}" for c in range(0x20)}, 0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f",
                  0x0D: "\\r", 0x22: '\\"', 0x5C: "\\\\", 0x7F: "\\u007f"}


def _quote(text: str) -> str:
    if text.isascii():
        return '"' + text.translate(_ASCII_ESCAPES) + '"'
    from _json import encode_basestring_ascii

    return str(encode_basestring_ascii(text))

PACKAGE = "docker_credential_idp"
VERBS = ("store", "get", "erase", "list", "version")
MAX_INPUT_BYTES = 1024 * 1024
VERB_HELP = {
    "get": f"docker sends the server URL on stdin: echo registry.example.com | {PROG} get",
    "store": 'docker login sends {"ServerURL": ..., "Username": ..., "Secret": ...} on stdin',
    "erase": f"docker logout sends the server URL on stdin: echo registry.example.com | {PROG} erase",
    "list": "prints {server: username} for every server a client may ask for (stdin is ignored)",
    "version": "prints the version",
}


def usage() -> str:
    return f"Usage: {PROG} <{'|'.join(VERBS)}>"


def _text(stdin: bytes) -> str:
    if len(stdin) > MAX_INPUT_BYTES:
        raise InvalidInput(f"input is larger than {MAX_INPUT_BYTES // 1024} KiB; send one server URL or one JSON object")
    try:
        return stdin.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("input is not UTF-8 text; send the server URL or a JSON object") from None


def _server(stdin: bytes) -> str:
    server = _text(stdin).strip()
    if not server:
        raise InvalidInput("no credentials server URL")
    return server


def _store_request(stdin: bytes) -> tuple[str, str, str]:
    from .jsontext import loads

    text = _text(stdin).strip()
    try:
        request = loads(text) if text else None
    except ValueError:
        request = None
    if not isinstance(request, dict):
        raise InvalidInput('store expects a JSON object {"ServerURL": "...", "Username": "...", "Secret": "..."}')
    fields = [request.get(name) for name in ("ServerURL", "Username", "Secret")]
    if any(value is not None and not isinstance(value, str) for value in fields):
        raise InvalidInput("ServerURL, Username and Secret must be strings")
    if not all(is_text(value) for value in fields if value):
        raise InvalidInput("ServerURL, Username and Secret must be Unicode text; a lone \\uD800-\\uDFFF escape is not")
    server, username, secret = (value or "" for value in fields)
    if not server.strip():
        raise InvalidInput("no credentials server URL")
    if not username:
        raise InvalidInput("no credentials username")
    return server, username, secret


def _dump(value: object) -> bytes:
    import json

    return (json.dumps(value) + "\n").encode("utf-8")


def render_get(server: str, answer: Answer) -> bytes:
    """`get`'s answer, byte for byte what json.dumps would write (tests/test_pipeline.py)."""
    return (f'{{"ServerURL": {_quote(server)}, "Username": {_quote(answer.username)}, '
            f'"Secret": {_quote(answer.secret)}}}\n').encode("utf-8")


def handle(verb: str, stdin: bytes, service: Callable[[], CredentialStore]) -> tuple[bytes, int]:
    """Answer one protocol call. `service` is called only when the verb needs the vault."""
    try:
        if verb == "version":
            return f"{PROG} ({PACKAGE}) {__version__}\n".encode(), 0
        if verb == "get":
            server = _server(stdin)
            return render_get(server, service().get(server)), 0
        if verb == "store":
            service().store(*_store_request(stdin))
            return b"", 0
        if verb == "erase":
            service().erase(_server(stdin))
            return b"", 0
        if verb == "list":
            _text(stdin)
            return _dump(service().list_servers()), 0
        return f"{PROG}: unknown action: {verb}\n".encode(), 1
    except IdpError as error:
        return (error.message + "\n").encode("utf-8"), error.exit_code
