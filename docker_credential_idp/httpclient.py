"""HTTPS calls with a registration's TLS choices (--ca-file, --insecure), for the providers that speak HTTP
themselves and for `registry test`. Standard library only: loading an HTTP SDK costs more than these calls take."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from typing import Any, Mapping, Optional

from .errors import ProviderError

MAX_BODY = 1024 * 1024
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
                                    "check --ca-file", retryable=False) from None
        _contexts[key] = context
    return _contexts[key]


def send(request: urllib.request.Request, settings: Mapping[str, Any], timeout: float) -> tuple[int, Any, bytes]:
    """(status, headers, body) for any HTTP answer, error statuses included; network failures raise OSError
    (urllib.error.URLError is one)."""
    handlers = [urllib.request.HTTPSHandler(context=tls_context(settings))]
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
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS verification failed ({reason.verify_message}); trust its CA with --ca-file"
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return "timed out"
    return str(getattr(reason, "strerror", None) or reason)
