"""Static username and password: Docker Hub, Harbor, JFrog, GitHub, GitLab, Azure service principals, IBM iamapikey."""

from __future__ import annotations

from ..errors import InvalidInput
from ..model import Credential, Registration
from .base import FetchContext, Option, Provider

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class BasicProvider(Provider):
    type_name = "basic"
    summary = "a static username and password (or token) kept in the vault"
    options = (
        Option("username", "registry username (IBM Cloud: iamapikey; an identity token: <token>)", required=True),
        Option("password", "the password, access token or API key", secret=True, required=True),
    )

    def validate(self, settings: dict[str, Any], secrets: dict[str, str]) -> None:
        # Basic auth sends base64(username:password): a ':' in the name moves the split, a line break ends a header.
        if ":" in settings["username"] or any(ord(c) < 32 or ord(c) == 127 for c in settings["username"]):
            raise InvalidInput("--username cannot hold ':' or a control character such as a line break (Basic auth "
                               "sends username:password); give the registry's user name alone")

    def fetch(self, registration: Registration, context: FetchContext) -> Credential:
        return Credential(username=registration.settings["username"], secret=registration.secrets["password"])

    def username_hint(self, registration: Registration) -> str:
        return str(registration.settings.get("username", ""))


PROVIDER = BasicProvider()
