"""HTTPS calls with a registration's TLS choices (--ca-file, --insecure), for the providers that speak HTTP
themselves, for the sources' platform list and for `registry test`. Standard library only: loading an HTTP SDK
costs more than these calls take."""

from __future__ import annotations

import ipaddress
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Mapping, Optional

from .errors import InvalidInput, ProviderError

MAX_BODY = 1024 * 1024
# (request, the registration's settings for TLS, timeout) -> (status, headers, body): `send`, or in tests a function
# that answers in process (tests/test_provider_rules.py), as google-auth's transport.Request is injected.
# What providers build their requests with: Request(url, data=None, headers={}, method=None), read back through
# .full_url, .data, .get_method() and .get_header(name). One name, so that its implementation can change in one place.
Request = urllib.request.Request
Transport = Callable[[Request, Mapping[str, Any], float], tuple[int, Any, bytes]]
_contexts: dict[tuple[Optional[str], bool], ssl.SSLContext] = {}


def tls_context(settings: Mapping[str, Any]) -> ssl.SSLContext:
    """The system trust store plus the registration's CA file, or no verification when it says --insecure."""
    key = (settings.get("ca_file"), bool(settings.get("insecure")))
    if key not in _contexts:
        context = ssl.create_default_context()
        if key[1]:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif key[0]:
            try:
                context.load_verify_locations(cafile=key[0])
            except (OSError, ssl.SSLError) as error:
                raise ProviderError(f"cannot load the CA file {key[0]}: {getattr(error, 'strerror', None) or error}; "
                                    "check --ca-file") from None
        _contexts[key] = context
    return _contexts[key]


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def origin(url: str) -> str:
    """scheme://host:port, which is all of a URL an error message may show (a path or query may hold a token)."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme, 0)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def check_endpoint(url: str, flag: str) -> str:
    """A URL a secret will be sent to: https (http only for loopback), a host, no user name or password in it.
    The URL itself is never quoted back: it may be the secret typed in the wrong place."""
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


class RedirectRefused(OSError):
    """A redirect away from the origin a request was sent to: never followed, as it could carry a secret off."""


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> Optional[urllib.request.Request]:
        target = urllib.parse.urljoin(req.full_url, newurl)
        if origin(target) != origin(req.full_url):
            raise RedirectRefused(f"redirected from {origin(req.full_url)} to {origin(target)}, another origin; "
                                  "not followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def send(request: urllib.request.Request, settings: Mapping[str, Any], timeout: float) -> tuple[int, Any, bytes]:
    """(status, headers, body) for any HTTP answer, error statuses included; network failures raise OSError
    (urllib.error.URLError is one; so is RedirectRefused). Redirects are followed only within the origin."""
    handlers = [urllib.request.HTTPSHandler(context=tls_context(settings)), _SameOriginRedirects()]
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.headers, response.read(MAX_BODY)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read(MAX_BODY)


def network_reason(error: BaseException) -> str:
    """A short, secret-free reason for a failed connection, with a hint for the TLS case."""
    reason = getattr(error, "reason", error)
    if isinstance(reason, RedirectRefused):
        return str(reason)
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS verification failed ({reason.verify_message}); trust its CA with --ca-file"
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return "timed out"
    return str(getattr(reason, "strerror", None) or reason)
