"""The credential service: request -> registration (matching) -> credential (provider), and the credsStore verbs.

This is the one place that combines the vault, the matching rules and the providers.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable, Mapping, Optional

from .errors import AmbiguousRegistry, CredentialsNotFound
from .matching import SCOPE_VARIABLE, Selection, host_of, parse_server, select, server_key
from .model import Credential, Registration, Secrets
from .providers import get_provider
from .providers.base import DEFAULT_TIMEOUT, FetchContext, Provider
from .vault import Table, Vault

ID_MAX = 253


def _id_for(prefix: str, taken: Mapping[str, object]) -> str:
    """A registration id derived from a prefix: `127.0.0.1:5000/team` -> `127.0.0.1-5000-team`."""
    chars = [c if c.isascii() and (c.isalnum() or c in ".-") else "-" for c in prefix.lower()]
    base = "".join(chars).strip(".-")[: ID_MAX - 4].strip(".-") or "registry"
    candidate, counter = base, 2
    while candidate in taken:
        candidate, counter = f"{base}-{counter}", counter + 1
    return candidate


class CredentialService:
    def __init__(
        self,
        vault: Vault,
        env: Mapping[str, str],
        warn: Callable[[str], None] = lambda message: None,
        providers: Callable[[str], Provider] = get_provider,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.vault = vault
        self.env = env
        self.warn = warn
        self.providers = providers
        self.now = now

    # -- matching ----------------------------------------------------------------------------------------------

    def choose(self, request: str) -> tuple[Registration, Selection]:
        """The registration serving a normalised request (see matching.select)."""
        on_host = self.vault.registrations_on_host(host_of(request))
        selection = select(request, [(r.prefix, r.id) for r in on_host], self.env.get(SCOPE_VARIABLE))
        return next(r for r in on_host if r.id == selection.registration_id), selection

    def _serving(self, request: str, table: Table) -> Optional[Registration]:
        try:
            selection = select(request, [(r.prefix, r.id) for r in table.values()], self.env.get(SCOPE_VARIABLE))
        except (CredentialsNotFound, AmbiguousRegistry):
            return None
        return table[selection.registration_id]

    # -- credentials -------------------------------------------------------------------------------------------

    def credential(self, registration: Registration) -> Credential:
        provider = self.providers(registration.type)
        timeout = float(registration.settings.get("timeout", DEFAULT_TIMEOUT))
        return provider.fetch(registration, FetchContext(env=self.env, timeout=timeout, now=self.now))

    def get(self, server: str) -> Credential:
        registration, _ = self.choose(parse_server(server))
        return self.credential(registration)

    # -- the credsStore verbs ----------------------------------------------------------------------------------

    def store(self, server: str, username: str, secret: str) -> None:
        """docker login's credentials: kept in a basic registration for exactly that server; never fails login
        because another type already serves the host."""
        request = parse_server(server)

        def change(table: Table) -> Optional[str]:
            target = next((r for r in table.values() if r.prefix == request), None) or self._serving(request, table)
            if target is not None and target.type != "basic":
                return (
                    f"docker-credential-idp: {request} is served by registration {target.id!r} (type {target.type}); "
                    "the credentials from docker login were not stored"
                )
            if target is not None and target.prefix == request:
                table[target.id] = replace(
                    target, settings={**target.settings, "username": username}, secrets=Secrets({"password": secret})
                )
                return None
            new_id = _id_for(request, table)
            table[new_id] = Registration(
                id=new_id,
                prefix=request,
                type="basic",
                settings={"username": username},
                secrets=Secrets({"password": secret}),
                origin="store",
            )
            return None

        note = self.vault.update(change)
        if note:
            self.warn(note)

    def erase(self, server: str) -> None:
        """docker logout: removes what store created; a registration added with `registry add` stays."""
        request = parse_server(server)

        def change(table: Table) -> Optional[str]:
            exact = next((r for r in table.values() if r.prefix == request), None)
            if exact is None:
                raise CredentialsNotFound()
            if exact.origin != "store":
                return (
                    f"docker-credential-idp: registration {exact.id!r} was added with `registry add` and stays; "
                    f"remove it with: docker-credential-idp registry remove {exact.id}"
                )
            del table[exact.id]
            return None

        if not self.vault.exists():
            raise CredentialsNotFound()
        note = self.vault.update(change)
        if note:
            self.warn(note)

    def list_servers(self) -> dict[str, str]:
        return {
            server_key(r.prefix): self.providers(r.type).username_hint(r)
            for r in sorted(self.vault.registrations().values(), key=lambda r: r.prefix)
        }
