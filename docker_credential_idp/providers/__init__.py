"""The table of provider types. Each type is one module exposing PROVIDER; modules load only when used."""

from __future__ import annotations

import importlib

from ..errors import InvalidInput

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .base import Provider

# type name -> module under docker_credential_idp.providers (also the PyInstaller hidden-import list)
MODULES: dict[str, str] = {
    "basic": "basic",
    "ecr": "ecr",
    "gcr": "gcr",
    "acr": "acr",
    "script": "script",
    "platform": "platform",
    "aws-secret": "aws_secret",
    "oidc": "oidc",
}
ALIASES: dict[str, str] = {"gar": "gcr"}


def canonical_type(type_name: str) -> str:
    name = ALIASES.get(type_name, type_name)
    if name not in MODULES:
        raise InvalidInput(f"unknown registry type {type_name!r}; choose one of: {', '.join(type_names())}")
    return name


def type_names() -> list[str]:
    return sorted([*MODULES, *ALIASES])


def get_provider(type_name: str) -> Provider:
    module = importlib.import_module(f"{__name__}.{MODULES[canonical_type(type_name)]}")
    return module.PROVIDER  # type: ignore[no-any-return]
