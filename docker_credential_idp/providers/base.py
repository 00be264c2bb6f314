"""The provider interface: declare your `registry add` options, validate them, fetch a credential.

Providers never read the environment, stdin or stdout themselves and never cache: `registry add` resolves secret
options before `configure`, and the get pipeline caches what `fetch` returns (pipeline.py, token_cache.py). SDKs are
imported inside `fetch`.
"""

from __future__ import annotations

import time

from ..errors import InvalidInput, ProviderUnavailable
from ..model import DEFAULT_FETCH_TIMEOUT, Credential, Record, Registration

# Neither typing nor the HTTP client is imported here: a `script` fetch needs neither (tests/test_pipeline.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, ClassVar, Mapping, Optional

    from ..httpclient import Request, Transport


class Option(Record):
    """One `registry add` option. A secret option becomes `--NAME-stdin` and `--NAME-env VAR` (and `--NAME-file`
    when `from_file`), so a secret never has to appear in argv."""

    __slots__ = ("name", "help", "secret", "required", "flag", "from_file", "metavar", "convert")
    name: str
    help: str
    secret: bool
    required: bool
    flag: bool  # a boolean switch rather than a value
    from_file: bool
    metavar: Optional[str]
    # Settings whose value is a number of seconds, an integer, and so on.
    convert: Optional[Callable[[str], Any]]

    def __init__(self, name: str, help: str, secret: bool = False, required: bool = False, flag: bool = False,
                 from_file: bool = False, metavar: Optional[str] = None,
                 convert: Optional[Callable[[str], Any]] = None) -> None:
        self._set(name=name, help=help, secret=secret, required=required, flag=flag, from_file=from_file,
                  metavar=metavar, convert=convert)

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


def send(request: Request, settings: Mapping[str, Any], timeout: float) -> tuple[int, Any, bytes]:
    """httpclient.send, imported by the first fetch that speaks HTTP (ssl and socket are most of a cold fetch's
    imports, and a script never needs them)."""
    from ..httpclient import send

    return send(request, settings, timeout)


class FetchContext(Record):
    __slots__ = ("host", "env", "timeout", "now", "transport", "sleep", "identity_token", "annotations")
    _hidden = ("identity_token",)
    # The registry host the credential is for: the registration's, or the one a pattern registration matched.
    host: str
    env: Mapping[str, str]
    timeout: float
    now: Callable[[], float]
    transport: Transport
    sleep: Callable[[float], None]
    # The kubelet's request (KEP-4412): the pod's service-account token and its service account's annotations. Empty
    # outside `kubelet` mode; `identity.obtain` reads the token for registrations with --oidc-token kubelet.
    identity_token: str
    annotations: Mapping[str, str]

    def __init__(self, host: str = "", env: Optional[Mapping[str, str]] = None, timeout: float = DEFAULT_FETCH_TIMEOUT,
                 now: Callable[[], float] = time.time, transport: Transport = send,
                 sleep: Callable[[float], None] = time.sleep, identity_token: str = "",
                 annotations: Optional[Mapping[str, str]] = None) -> None:
        self._set(host=host, env={} if env is None else env, timeout=timeout, now=now, transport=transport,
                  sleep=sleep, identity_token=identity_token, annotations={} if annotations is None else annotations)


class Provider:
    type_name: ClassVar[str]
    summary: ClassVar[str]
    options: ClassVar[tuple[Option, ...]] = ()
    # The module the provider imports inside fetch, and the pip requirement that installs it.
    sdk: ClassVar[Optional[tuple[str, str]]] = None
    # How long a credential holds when its source does not say (or says something unbelievable), unless the
    # registration says otherwise (--expire).
    default_expire: ClassVar[float] = 3600.0
    # kubelet mode (KEP-4412): setting name -> service-account annotation key whose value, when the pod's service
    # account carries it, stands in for the registration's own setting (e.g. role_arn -> eks.amazonaws.com/role-arn).
    annotation_keys: ClassVar[Mapping[str, str]] = {}

    def configure(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """Split validated option values into (settings, secrets). `values` holds only the options given."""
        settings: dict[str, Any] = {}
        secrets: dict[str, str] = {}
        for option in self.options:
            value = values.get(option.dest)
            if value is None or value is False:
                if option.required:
                    raise InvalidInput(f"--type {self.type_name} needs {_spelling(option)}")
                continue
            if option.secret:
                secrets[option.dest] = value
            else:
                settings[option.dest] = option.convert(value) if option.convert and not option.flag else value
        self.validate(settings, secrets)
        return settings, secrets

    def validate(self, settings: dict[str, Any], secrets: dict[str, str]) -> None:
        """Checks across options; raise InvalidInput."""

    def check_installed(self) -> None:
        """At `registry add`: refuse a type whose SDK cannot be imported, rather than fail the next pull."""
        if self.sdk is not None:
            import_sdk(self.type_name, *self.sdk)

    def check_identity(self, registration: Registration, env: Mapping[str, str]) -> Optional[str]:
        """For `doctor`: what keeps this registration from getting a credential, found without calling out (its
        SDK missing, no identity in the chain); None when nothing does."""
        try:
            self.check_installed()
        except ProviderUnavailable as error:
            return error.message
        return None

    def check_prefix(self, registration: Registration) -> None:
        """Refuse, at `registry add`, a prefix this type cannot serve; raise InvalidInput."""

    def fetch(self, registration: Registration, context: FetchContext) -> Credential:
        raise NotImplementedError

    def token_audience(self, registration: Registration) -> str:
        """The audience of the identity token a registration with --oidc-token uses: --oidc-audience, else what its
        exchange expects; "" when neither says (the kubelet's config needs one)."""
        return str(registration.settings.get("oidc_audience") or "")

    def hands_over_token(self, registration: Registration) -> bool:
        """Whether the identity token itself is the password (no exchange): the kubelet then caches the answer per
        token (cacheType Token), since it refuses one that echoes the token under any other cache type."""
        return False

    def lifetime(self, registration: Registration) -> float:
        """Seconds a credential from this registration holds when its source gives no usable expiry."""
        return float(registration.settings.get("expire", self.default_expire))

    def username_hint(self, registration: Registration) -> str:
        """The username `list` reports without fetching anything."""
        return ""

    def describe(self, registration: Registration) -> dict[str, Any]:
        """What `registry show` prints: the settings and the names (never values) of the secrets."""
        return {"settings": dict(registration.settings), "secrets": sorted(registration.secrets)}


def import_sdk(type_name: str, module: str, requirement: str) -> Any:
    """The SDK module, or ProviderUnavailable naming the install line that fixes it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ProviderUnavailable(type_name, requirement, f"{type(error).__name__}: {error}"[:160]) from None


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """`90s`, `30m`, `1h`, `12h`, `1d` or `1h30m` (or plain seconds) -> seconds, as --expire takes them."""
    import re

    value = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        seconds = float(value)
    elif re.fullmatch(r"(\d+[smhd])+", value):
        seconds = float(sum(int(n) * _UNITS[unit] for n, unit in re.findall(r"(\d+)([smhd])", value)))
    else:
        raise InvalidInput(f"{text!r} is not a duration; write it like 90s, 30m, 1h, 12h or 1d")
    if not 0 < seconds <= 30 * 86400:
        raise InvalidInput(f"duration {text!r} must be more than 0 and at most 30 days")
    return seconds


def format_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def expire_option(default: float) -> Option:
    """--expire, whose help shows the type's default_expire (`default`, in seconds)."""
    return Option("expire", f"how long a credential from this source holds (default {format_duration(default)}; 30m, "
                  "1h, 12h style)",
                  metavar="DURATION", convert=parse_duration)


def _spelling(option: Option) -> str:
    if option.secret:
        sources = [f"--{option.name}-stdin", f"--{option.name}-env VAR"]
        if option.from_file:
            sources.insert(0, f"--{option.name}-file PATH")
        return " or ".join(sources)
    return f"--{option.name}"
