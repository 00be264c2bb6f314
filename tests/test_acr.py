"""ACR through azure-identity: each kind of Entra ID identity — service principal, workload identity, managed
identity (App Service's endpoint, which azure-identity takes from IDENTITY_ENDPOINT and IDENTITY_HEADER), the
default chain (AZURE_* variables) — against local stand-ins for Entra ID (https, its own CA), the managed identity
endpoint and ACR's token exchange."""

from __future__ import annotations

import json

import pytest

from .conftest import assert_one_line_error, call_helper
from .oidc import Issuer
from .servers import (
    ENTRA_FEDERATION_AUDIENCE,
    LocalServer,
    entra_and_acr_exchange,
    fake_jwt,
    json_answer,
    managed_identity_endpoint,
)
from .test_token_cache import imports_of_get

HOST = "myregistry.azurecr.io"
USERNAME = "00000000-0000-0000-0000-000000000000"
REFRESH = fake_jwt({"exp": 4102444800})


ISSUER = Issuer(iss="https://oidc.prod-aks.azure.com/tenant-1/")


@pytest.fixture
def entra():
    server = entra_and_acr_exchange(tenant="t1", client_secret="sp-secret-1", issuer=ISSUER, client_ids=("c1",),
                                    registry_host=HOST, refresh_token=REFRESH)
    yield server
    server.stop()


def add(entra, *identity: str, stdin: str = ""):
    result = call_helper("registry", "add", "acr", "--prefix", HOST, "--type", "acr", *identity, "--authority-host",
                        entra.url, "--exchange-url", f"{entra.url}/oauth2/exchange", "--ca-file", str(entra.ca),
                        stdin=stdin)
    assert result.code == 0, result
    return result


def get(env=None) -> dict:
    result = call_helper("get", stdin=HOST, env=env)
    assert result.code == 0, result
    return json.loads(result.out)


def test_service_principal(entra):
    add(entra, "--tenant", "t1", "--client-id", "c1", "--client-secret-stdin", stdin="sp-secret-1")
    assert get() == {"ServerURL": HOST, "Username": USERNAME, "Secret": REFRESH}
    assert entra.count("/oauth2/exchange") == 1
    show = json.loads(call_helper("registry", "show", "acr", "--json").out)
    assert show["identity"] == "service principal c1 in tenant t1" and "sp-secret-1" not in json.dumps(show)


def test_workload_identity_federated_token_file(entra, tmp_path):
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(ISSUER.mint(ENTRA_FEDERATION_AUDIENCE, subject="system:serviceaccount:ci:builder"))
    add(entra, "--tenant", "t1", "--client-id", "c1", "--federated-token-file", str(token_file))
    assert get()["Secret"] == REFRESH
    assert entra.assertions == [("c1", "system:serviceaccount:ci:builder")]


def test_a_federated_token_file_without_a_jwt_is_one_line_naming_the_file(entra, tmp_path):
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text("not-a-token-5c1e")
    add(entra, "--tenant", "t1", "--client-id", "c1", "--federated-token-file", str(token_file))
    line = assert_one_line_error(call_helper("get", stdin=HOST), f"file {token_file} does not hold a JWT", stream="out")
    assert "not-a-token-5c1e" not in line and not entra.count("/oauth2/")


def test_managed_identity_through_the_app_service_endpoint(entra):
    add(entra, "--managed-identity", "--managed-identity-client-id", "mi-client-1")
    endpoint = managed_identity_endpoint(identity_header="mi-header-1", client_id="mi-client-1",
                                         access_token="entra-access-token-for-acr")
    env = {"IDENTITY_ENDPOINT": f"{endpoint.url}/msi/token", "IDENTITY_HEADER": "mi-header-1"}
    try:
        assert get(env)["Secret"] == REFRESH
        assert endpoint.count("/msi/token") == 1
        call_helper("cache", "clear")
        wrong = call_helper("get", stdin=HOST, env={**env, "IDENTITY_HEADER": "not-the-header"})
        assert_one_line_error(wrong, "registration 'acr' (acr)", "managed identity mi-client-1", stream="out")
    finally:
        endpoint.stop()


def test_default_chain_from_the_environment(entra):
    add(entra)
    env = {"AZURE_TENANT_ID": "t1", "AZURE_CLIENT_ID": "c1", "AZURE_CLIENT_SECRET": "sp-secret-1",
           "AZURE_AUTHORITY_HOST": entra.url}
    assert get(env)["Secret"] == REFRESH
    assert "default chain" in json.loads(call_helper("registry", "show", "acr", "--json").out)["identity"]


def test_a_wrong_secret_names_the_identity_and_the_entra_error_never_the_secret(entra):
    add(entra, "--tenant", "t1", "--client-id", "c1", "--client-secret-stdin", stdin="wrong-secret-1")
    line = assert_one_line_error(call_helper("get", stdin=HOST), "service principal c1 in tenant t1",
                                 "AADSTS7000215", stream="out")
    assert "wrong-secret-1" not in line


def test_no_identity_in_the_default_chain_is_one_line():
    assert call_helper("registry", "add", "acr", "--prefix", HOST, "--type", "acr", "--timeout", "5").code == 0
    env = {"IDENTITY_ENDPOINT": "http://127.0.0.1:9/msi/token", "IDENTITY_HEADER": "h", "PATH": "/nonexistent"}
    assert_one_line_error(call_helper("get", stdin=HOST, env=env), "registration 'acr' (acr)", "default chain",
                          stream="out")


@pytest.mark.parametrize("argv, fragment", [
    (("--tenant", "t", "--client-id", "c", "--client-secret-stdin", "--managed-identity"), "takes one identity"),
    (("--client-secret-stdin",), "needs --tenant and --client-id"),
    (("--managed-identity-client-id", "x"), "goes with --managed-identity"),
    (("--managed-identity", "--authority-host", "http://127.0.0.1:9"), "must be an https URL"),
    (("--managed-identity", "--authority-host", "http://login.example.com"), "must be https"),
])
def test_identity_options_are_checked_at_registry_add(argv, fragment):
    result = call_helper("registry", "add", "a", "--prefix", HOST, "--type", "acr", *argv, stdin="s")
    assert_one_line_error(result, fragment)


def test_a_cache_hit_does_not_import_azure_identity(entra):
    add(entra, "--tenant", "t1", "--client-id", "c1", "--client-secret-stdin", stdin="sp-secret-1")
    get()
    imported = imports_of_get(HOST)
    assert "docker_credential_idp.pipeline" in imported
    assert not {m for m in imported if m.startswith(("azure", "msal"))}


@pytest.mark.parametrize("answer, shown", [
    ({"error": f"invalid_grant {REFRESH}", "error_codes": [REFRESH]}, "HTTP 401"),  # an echo: nothing of it shown
    ({"error": REFRESH.replace(".", "")[:60] + " x"}, "HTTP 401"),
    ({"error": "invalid_grant", "error_codes": [70008]}, "HTTP 401 invalid_grant (AADSTS70008)"),
])
def test_a_refused_exchange_shows_its_error_code_never_what_it_echoes(entra, answer, shown):
    """An exchange may fill its error with what it was sent (the Entra token): only a word of a code and a number
    are shown."""
    hostile = LocalServer(lambda method, path, headers, body: json_answer(answer, 401))
    try:
        result = call_helper("registry", "add", "acr", "--prefix", HOST, "--type", "acr", "--tenant", "t1",
                             "--client-id", "c1", "--client-secret-stdin", "--authority-host", entra.url,
                             "--exchange-url", f"{hostile.url}/oauth2/exchange", "--ca-file", str(entra.ca),
                             stdin="sp-secret-1")
        assert result.code == 0, result
        line = assert_one_line_error(call_helper("get", stdin=HOST), "the ACR token exchange refused the request",
                                     stream="out")
    finally:
        hostile.stop()
    assert line.endswith(shown) or f"{shown};" in line or f"{shown} " in line, line
    assert REFRESH not in line and REFRESH.replace(".", "")[:60] not in line
