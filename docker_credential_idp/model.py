"""The records everything else passes around: a registration (its secrets, a docker login stored over it) and the
credential it yields."""

from __future__ import annotations

from collections.abc import Mapping

from .cache_policy import DEFAULT_MIN_TTL, DEFAULT_REFRESH_MARGIN

TYPE_CHECKING = False  # typing and dataclasses are not imported: a cold fetch pays ~12 ms for them (performance.md)
if TYPE_CHECKING:
    from typing import Any, ClassVar, Optional

    from typing_extensions import Self

# Seconds one fetch may take unless the registration says otherwise (--timeout). A user's script may wait on a slow
# CLI or a person, so it gets longer. The vault stores each registration's figure beside its record, so that a
# caller waiting for another's fetch knows how long without parsing the record (pipeline.py).
DEFAULT_FETCH_TIMEOUT = 10.0
DEFAULT_FETCH_TIMEOUTS = {"script": 30.0}


ID_MAX_LENGTH = 253


def validate_id(registration_id: str) -> str:
    """Ids follow the Kubernetes/IBM Code Engine naming rule (a DNS subdomain): lowercase alphanumerics, '-' and '.',
    at most 253 characters, each '.'-separated part starting and ending with a letter or digit — so no '..', and a
    platform's listed id `.dot` or `-dash` does not become `idp..dot` or `idp.-dash`."""
    import re

    from .errors import InvalidInput

    part = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
    if len(registration_id) > ID_MAX_LENGTH or not re.fullmatch(rf"{part}(\.{part})*", registration_id):
        raise InvalidInput(
            f"invalid registration id {registration_id[:64]!r}: use lowercase letters, digits, '-' and '.', each "
            "'.'-separated part starting and ending with a letter or digit, at most 253 characters"
        )
    return registration_id


class Record:
    """A frozen record in place of `@dataclass(frozen=True)`, whose import (with `inspect` and `ast`) costs a cold
    fetch ~9 ms. A record's fields are its class's `__slots__` (records are not subclassed further), set once by its
    `__init__` through `_set`; equality and hash by type and fields; `replace` a copy with some fields changed;
    `repr` leaves out the fields named in `_hidden` (secrets), as `field(repr=False)` did."""

    __slots__: tuple[str, ...] = ()
    _hidden: ClassVar[tuple[str, ...]] = ()

    def _set(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; use replace()")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Record)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((type(self), *self._fields().values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self._fields().items() if name not in self._hidden)
        return f"{type(self).__name__}({shown})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Through __init__ (copy, deepcopy, pickle): the default reduction of a slotted object sets the fields with
        # setattr, which a frozen record refuses.
        return _rebuild, (type(self), self._fields())

    def replace(self, **changes: Any) -> Self:
        unknown = set(changes) - set(self._fields())
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {sorted(unknown)[0]}")
        return type(self)(**{**self._fields(), **changes})


def _rebuild(cls: type[Record], fields: dict[str, Any]) -> Record:
    return cls(**fields)


class Secrets(Mapping[str, str]):
    """A read-only mapping of secret values whose repr never shows them."""

    __slots__ = ("_values",)

    def __init__(self, values: Optional[Mapping[str, str]] = None) -> None:
        self._values = dict(values or {})

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secrets) and self._values == other._values

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Secrets({', '.join(sorted(self._values))}: hidden)"

    def to_dict(self) -> dict[str, str]:
        return dict(self._values)


class Login(Record):
    """What `docker login` stored over a registration that `registry add` made: served instead of the
    registration's own credential until `docker logout` erases it, and kept apart so that the logout restores
    exactly what the administrator registered."""

    __slots__ = ("username", "secret")
    _hidden = ("secret",)
    username: str
    secret: str

    def __init__(self, username: str, secret: str) -> None:
        self._set(username=username, secret=secret)


class Registration(Record):
    """One row of the registry table. `prefix` is normalised (see matching.parse_prefix)."""

    __slots__ = ("id", "prefix", "type", "settings", "secrets", "origin", "login")
    id: str
    prefix: str
    type: str
    settings: Mapping[str, Any]
    secrets: Secrets
    # "add": created with `registry add`; "store": created by `docker login` through the protocol's store verb;
    # "source:ID": synced from registry source ID (sources.py).
    origin: str
    login: Optional[Login]

    def __init__(self, id: str, prefix: str, type: str, settings: Optional[Mapping[str, Any]] = None,
                 secrets: Optional[Secrets] = None, origin: str = "add", login: Optional[Login] = None) -> None:
        self._set(id=id, prefix=prefix, type=type, settings={} if settings is None else settings,
                  secrets=Secrets() if secrets is None else secrets, origin=origin, login=login)

    @property
    def host(self) -> str:
        return self.prefix.split("/", 1)[0]

    @property
    def source_id(self) -> Optional[str]:
        """The registry source this registration was synced from; None for one a person made."""
        return self.origin.removeprefix("source:") if self.origin.startswith("source:") else None

    @property
    def fetch_timeout(self) -> float:
        """Seconds one fetch of this registration's credential may take."""
        configured = self.settings.get("timeout")
        return float(configured) if configured else DEFAULT_FETCH_TIMEOUTS.get(self.type, DEFAULT_FETCH_TIMEOUT)

    @property
    def refresh_margin(self) -> float:
        """Seconds before expiry at which a cached credential is fetched anew (--refresh-margin; cache_policy)."""
        return float(self.settings.get("refresh_margin", DEFAULT_REFRESH_MARGIN))

    @property
    def min_ttl(self) -> float:
        """Seconds of life a credential has left whenever it is served from the cache (--min-ttl; cache_policy)."""
        return float(self.settings.get("min_ttl", DEFAULT_MIN_TTL))

    def to_record(self) -> dict[str, Any]:
        record = {
            "id": self.id,
            "prefix": self.prefix,
            "type": self.type,
            "settings": dict(self.settings),
            "secrets": self.secrets.to_dict(),
            "origin": self.origin,
        }
        if self.login is not None:
            record["login"] = {"username": self.login.username, "secret": self.login.secret}
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Registration:
        return cls(
            id=record["id"],
            prefix=record["prefix"],
            type=record["type"],
            settings=dict(record.get("settings") or {}),
            secrets=Secrets(record.get("secrets") or {}),
            origin=record.get("origin", "add"),
            login=Login(record["login"]["username"], record["login"]["secret"]) if record.get("login") else None,
        )


class Credential(Record):
    __slots__ = ("username", "secret", "expires_at")
    _hidden = ("secret",)
    username: str
    secret: str
    # Seconds since the epoch; None for credentials that do not expire (static passwords).
    expires_at: Optional[float]

    def __init__(self, username: str, secret: str, expires_at: Optional[float] = None) -> None:
        self._set(username=username, secret=secret, expires_at=expires_at)
