"""The records everything else passes around: a registration (its secrets, a docker login stored over it) and the
credential it yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from .cache_policy import DEFAULT_MIN_TTL, DEFAULT_REFRESH_MARGIN

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


@dataclass(frozen=True)
class Login:
    """What `docker login` stored over a registration that `registry add` made: served instead of the
    registration's own credential until `docker logout` erases it, and kept apart so that the logout restores
    exactly what the administrator registered."""

    username: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class Registration:
    """One row of the registry table. `prefix` is normalised (see matching.parse_prefix)."""

    id: str
    prefix: str
    type: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    secrets: Secrets = field(default_factory=Secrets)
    # "add": created with `registry add`; "store": created by `docker login` through the protocol's store verb;
    # "source:ID": synced from registry source ID (sources.py).
    origin: str = "add"
    login: Optional[Login] = None

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


@dataclass(frozen=True)
class Credential:
    username: str
    secret: str = field(repr=False)
    # Seconds since the epoch; None for credentials that do not expire (static passwords).
    expires_at: Optional[float] = None
