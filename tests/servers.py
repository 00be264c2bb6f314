"""Local stand-ins for cloud token endpoints, speaking their documented wire formats on 127.0.0.1.

Each counts the calls it answers (the tests assert on those counts) and has fault modes: an HTTP status, a delay,
malformed JSON. They run in a daemon thread of the test process and stop with the fixture (or the process).
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional

Answer = tuple[int, dict[str, str], bytes]


def json_answer(value: Any, status: int = 200, headers: Optional[dict[str, str]] = None) -> Answer:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(value).encode()


def fake_jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


class QuietServer(ThreadingHTTPServer):
    """A client that gives up (the timeout tests) is expected; only other handler errors are printed."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError, TimeoutError)):
            super().handle_error(request, client_address)


class LocalServer:
    """An HTTP server on 127.0.0.1 whose answers come from `route(method, path, headers, body) -> Answer`."""

    def __init__(self, route: Callable[[str, str, Any, bytes], Answer], tls: Optional[tuple[Path, Path]] = None) -> None:
        self.route = route
        self.calls: list[tuple[str, str]] = []
        self.delay = 0.0
        self.fault: Optional[str] = None  # "500", "403", "garbage"
        self.fault_times: Optional[int] = None  # the fault hits only the first N calls
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer._lock:
                    outer.calls.append((self.command, self.path))
                    fault = outer.fault if outer.fault_times is None or len(outer.calls) <= outer.fault_times else None
                if outer.delay:
                    time.sleep(outer.delay)
                if fault == "garbage":
                    status, headers, payload = 200, {"Content-Type": "application/json"}, b"{not json"
                elif fault:
                    status, headers, payload = json_answer({"error": "injected_fault"}, int(fault))
                else:
                    status, headers, payload = outer.route(self.command, self.path, self.headers, body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.httpd.server_address[1]}"
        self.address = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def count(self, fragment: str = "") -> int:
        with self._lock:
            return sum(1 for _, path in self.calls if fragment in path)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def form(body: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}


def google_token_endpoint(access_token: str, expires_in: Callable[[], int] = lambda: 3600,
                          tls: Optional[tuple[Path, Path]] = None) -> LocalServer:
    """OAuth 2.0 token endpoint as google-auth's service-account flow uses it (JWT-bearer grant)."""

    def route(method: str, path: str, headers: Any, body: bytes) -> Answer:
        fields = form(body)
        jwt_bearer = fields.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        if method != "POST" or not jwt_bearer or not fields.get("assertion"):
            return json_answer({"error": "invalid_grant"}, 400)
        return json_answer({"access_token": access_token, "expires_in": expires_in(), "token_type": "Bearer"})

    return LocalServer(route, tls)


def gce_metadata_server(access_token: str) -> LocalServer:
    """The GCE metadata server: every answer carries Metadata-Flavor: Google, every request must too."""

    def route(method: str, path: str, headers: Any, body: bytes) -> Answer:
        flavor = {"Metadata-Flavor": "Google"}
        if headers.get("Metadata-Flavor") != "Google":
            return 403, flavor, b"missing Metadata-Flavor"
        if "/token" in path:
            return json_answer({"access_token": access_token, "expires_in": 3599, "token_type": "Bearer"}, headers=flavor)
        if "recursive=true" in path:
            return json_answer({"email": "node@project.iam.gserviceaccount.com", "aliases": ["default"],
                                "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}, headers=flavor)
        return 200, {**flavor, "Content-Type": "application/text"}, b"project-id"

    return LocalServer(route)


ENTRA_FEDERATION_AUDIENCE = "api://AzureADTokenExchange"


def entra_and_acr_exchange(*, tenant: str, client_secret: str, registry_host: str,
                           refresh_token: str | Callable[[], str], federated_token: Optional[str] = None,
                           issuer: Any = None, client_ids: tuple[str, ...] = (),
                           tls: Optional[tuple[Path, Path]] = None) -> LocalServer:
    """Entra ID's client-credentials token endpoint (with the OpenID configuration MSAL reads first) and ACR's
    /oauth2/exchange, on one https server whose CA is `server.ca`.

    A client assertion (jwt-bearer) is accepted when it is `federated_token`, or, given `issuer` (tests/oidc.py), when
    that issuer signed it for api://AzureADTokenExchange and it has not expired, for an application of `client_ids`
    (any when empty), as a federated identity credential is checked; refusals carry Entra's AADSTS codes.
    `server.assertions` lists (client_id, subject) of the assertions accepted."""
    access_token = "entra-access-token-for-acr"
    server: list[LocalServer] = []
    assertions: list[tuple[str, str]] = []

    def federated_refusal(fields: dict[str, str]) -> Optional[Answer]:
        """None when the assertion is good, else Entra's answer (never quoting the assertion)."""
        from tests.oidc import TokenRefused

        if fields.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return entra_error(7000215, "Invalid client secret provided.")
        if issuer is None:
            return None if fields.get("client_assertion") == federated_token else entra_error(
                700211, "No matching federated identity record found for presented assertion issuer.")
        if client_ids and fields.get("client_id") not in client_ids:
            return entra_error(700016, "Application was not found in the directory.")
        try:
            claims = issuer.verify(fields.get("client_assertion", ""), ENTRA_FEDERATION_AUDIENCE)
        except TokenRefused as refused:
            code = 700024 if "expired" in str(refused) else 700212 if "audience" in str(refused) else 700211
            return entra_error(code, f"No matching federated identity record found for presented assertion: {refused}.")
        assertions.append((fields.get("client_id", ""), claims["sub"]))
        return None

    def route(method: str, path: str, headers: Any, body: bytes) -> Answer:
        fields = form(body)
        path, _, query = path.partition("?")
        base = server[0].url
        if path == f"/{tenant}/v2.0/.well-known/openid-configuration":
            return json_answer({"token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token", "issuer": f"{base}/{tenant}/v2.0",
                                "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
                                "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode"})
        if path == f"/{tenant}/oauth2/v2.0/token":
            if fields.get("grant_type") != "client_credentials":
                return json_answer({"error": "unsupported_grant_type"}, 400)
            if "client_assertion" in fields:
                refusal = federated_refusal(fields)
                if refusal:
                    return refusal
            elif fields.get("client_secret") != client_secret:
                return entra_error(7000215, "Invalid client secret provided.")
            return json_answer({"access_token": access_token, "expires_in": 3599, "token_type": "Bearer"})
        if path == "/oauth2/exchange":
            if fields.get("grant_type") != "access_token" or fields.get("access_token") != access_token \
                    or fields.get("service") != registry_host or fields.get("tenant", tenant) != tenant:
                return json_answer({"errors": [{"code": "UNAUTHORIZED"}]}, 401)
            return json_answer({"refresh_token": refresh_token() if callable(refresh_token) else refresh_token})
        return json_answer({"error": "not_found"}, 404)

    if tls is None:  # Entra ID is https only, even to a stand-in: a CA of its own, which clients trust via ca_file
        import tempfile

        from .tls import make_tls

        ca, cert, key = make_tls(Path(tempfile.mkdtemp(prefix="entra-tls-")))
        tls = (cert, key)
        server.append(LocalServer(route, tls))
        server[0].ca = ca  # type: ignore[attr-defined]
    else:
        server.append(LocalServer(route, tls))
    server[0].assertions = assertions  # type: ignore[attr-defined]
    return server[0]


def entra_error(code: int, description: str) -> Answer:
    return json_answer({"error": "invalid_client", "error_description": f"AADSTS{code}: {description}",
                        "error_codes": [code]}, 401)


TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


def google_sts_and_iam(issuer: Any, *, provider: str, audience: str, service_accounts: tuple[str, ...] = (),
                       lifetime: int = 3600) -> LocalServer:
    """Google's STS (`POST /v1/token`, RFC 8693 token exchange as federation.md writes it) and IAM Credentials
    (`POST /v1/projects/-/serviceAccounts/EMAIL:generateAccessToken`) on one http server on 127.0.0.1.

    STS takes a subject JWT only when `issuer` (tests/oidc.py) signed it for `audience` and it has not expired, and
    only for the pool provider `provider` (//iam.googleapis.com/projects/...); it answers a federated access token,
    new for every exchange. IAM Credentials takes only a Bearer STS issued, for an account of `service_accounts`,
    and answers that account's token. `server.subjects` lists the subjects exchanged; `server.impersonated` the
    accounts whose tokens were issued; `server.issued` every access token handed out (the tests look for them in
    the helper's files and output)."""
    subjects: list[str] = []
    impersonated: list[str] = []
    federated: list[str] = []
    issued: list[str] = []

    def sts(fields: dict[str, str]) -> Answer:
        if fields.get("grant_type") != TOKEN_EXCHANGE or fields.get("requested_token_type") != ACCESS_TOKEN_TYPE \
                or fields.get("subject_token_type") != "urn:ietf:params:oauth:token-type:jwt":
            return json_answer({"error": "invalid_request", "error_description": "Invalid token exchange request."}, 400)
        if fields.get("audience") != provider:
            return json_answer({"error": "invalid_target", "error_description": "The target service indicated by the "
                                "\"audience\" parameters is invalid."}, 400)
        # cloud-platform for the federated token itself; google-auth asks for the iam scope when it impersonates
        if not {CLOUD_PLATFORM, "https://www.googleapis.com/auth/iam"} & set(fields.get("scope", "").split()):
            return json_answer({"error": "invalid_scope", "error_description": "Scope is not supported."}, 400)
        from tests.oidc import TokenRefused

        try:
            claims = issuer.verify(fields.get("subject_token", ""), audience)
        except TokenRefused as refused:
            return json_answer({"error": "invalid_grant", "error_description": f"The ID Token is refused: {refused}."},
                               400)
        subjects.append(claims["sub"])
        token = f"ya29.federated-{len(issued) + 1}-{claims['sub'].replace(':', '-')}"
        federated.append(token)
        issued.append(token)
        return json_answer({"access_token": token, "issued_token_type": ACCESS_TOKEN_TYPE, "token_type": "Bearer",
                            "expires_in": lifetime})

    def generate_access_token(email: str, headers: Any, body: bytes) -> Answer:
        bearer = headers.get("Authorization", "")
        if not bearer.startswith("Bearer ") or bearer.removeprefix("Bearer ") not in federated:
            return json_answer({"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                                          "status": "UNAUTHENTICATED"}}, 401)
        if email not in service_accounts:
            return json_answer({"error": {"code": 403, "message": "Permission 'iam.serviceAccounts.getAccessToken' "
                                          "denied on resource (or it may not exist).", "status": "PERMISSION_DENIED"}},
                               403)
        try:
            scopes = json.loads(body).get("scope") or []
        except (ValueError, AttributeError):
            scopes = []
        if CLOUD_PLATFORM not in scopes:
            return json_answer({"error": {"code": 400, "message": "Scope required.", "status": "INVALID_ARGUMENT"}}, 400)
        impersonated.append(email)
        token = f"ya29.impersonated-{len(issued) + 1}-{email.split('@')[0]}"
        issued.append(token)
        expire = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(issuer.now() + lifetime))
        return json_answer({"accessToken": token, "expireTime": expire})

    def route(method: str, path: str, headers: Any, body: bytes) -> Answer:
        path = path.partition("?")[0]
        if method == "POST" and path == "/v1/token":
            return sts(form(body))
        prefix, suffix = "/v1/projects/-/serviceAccounts/", ":generateAccessToken"
        if method == "POST" and path.startswith(prefix) and path.endswith(suffix):
            return generate_access_token(urllib.parse.unquote(path[len(prefix):-len(suffix)]), headers, body)
        return json_answer({"error": {"code": 404, "status": "NOT_FOUND"}}, 404)

    server = LocalServer(route)
    server.subjects, server.impersonated, server.issued = subjects, impersonated, issued  # type: ignore[attr-defined]
    return server


def managed_identity_endpoint(*, identity_header: str, client_id: str, access_token: str) -> LocalServer:
    """App Service's managed identity endpoint (plain http on the machine itself), as azure-identity calls it when
    IDENTITY_ENDPOINT and IDENTITY_HEADER are set: `GET ?api-version=2019-08-01&resource=...&client_id=...`."""

    def route(method: str, path: str, headers: Any, body: bytes) -> Answer:
        asked = dict(urllib.parse.parse_qsl(path.partition("?")[2]))
        if headers.get("X-IDENTITY-HEADER") != identity_header or asked.get("api-version") != "2019-08-01" \
                or asked.get("client_id") != client_id or not asked.get("resource"):
            return json_answer({"error": "unauthorized", "error_description": "wrong header or identity"}, 401)
        return json_answer({"access_token": access_token, "expires_on": str(int(time.time()) + 3600),
                            "resource": asked["resource"], "token_type": "Bearer"})

    return LocalServer(route)


def ecr_api_endpoint(password: str, lifetime: float = 43200) -> LocalServer:
    """ECR's and ECR Public's GetAuthorizationToken in the AWS JSON 1.1 wire format, with a future expiresAt
    (moto's is in the past, so moto cannot show caching)."""
    return LocalServer(ecr_api_route(password, lifetime))


def ecr_api_route(password: str, lifetime: float = 43200) -> Callable[[str, str, Any, bytes], Answer]:
    def route(method: str, path: str, headers: Any, body: bytes) -> Answer:
        target = headers.get("X-Amz-Target", "")
        token = base64.b64encode(f"AWS:{password}".encode()).decode()
        data = {"authorizationToken": token, "expiresAt": time.time() + lifetime}
        if target == "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken":
            # The registry's own address, which Go's ecr-login checks against the host it was asked for.
            account = (json.loads(body or b"{}").get("registryIds") or ["123456789012"])[0]
            host = headers.get("Host", "")
            region = host.split(".")[2] if host.startswith("api.ecr.") else "eu-west-1"
            endpoint = f"https://{account}.dkr.ecr.{region}.amazonaws.com"
            return json_answer({"authorizationData": [{**data, "proxyEndpoint": endpoint}]},
                               headers={"Content-Type": "application/x-amz-json-1.1"})
        if target == "SpencerFrontendService.GetAuthorizationToken":
            return json_answer({"authorizationData": data}, headers={"Content-Type": "application/x-amz-json-1.1"})
        return json_answer({"__type": "UnknownOperationException"}, 400)

    return route


class InterceptingProxy:
    """An HTTPS proxy on 127.0.0.1 that answers CONNECT itself: it ends TLS with a certificate from the test CA
    (clients trust it through AWS_CA_BUNDLE or the like) and serves `route`. This is how a client with no endpoint
    override — Go's docker-credential-ecr-login — is pointed at a local stand-in."""

    def __init__(self, route: Callable[[str, str, Any, bytes], Answer], cert: Path, key: Path) -> None:
        self.calls: list[tuple[str, str]] = []
        self.delay = 0.0
        lock = threading.Lock()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_CONNECT(self) -> None:
                self.send_response(200)
                self.end_headers()
                self.close_connection = True
                with context.wrap_socket(self.connection, server_side=True) as tls, tls.makefile("rwb") as stream:
                    request_line = stream.readline().decode("latin-1").split()
                    if len(request_line) < 2:
                        return
                    headers = http.client.parse_headers(stream)
                    body = stream.read(int(headers.get("Content-Length") or 0))
                    with lock:
                        outer.calls.append((request_line[0], request_line[1]))
                    if outer.delay:
                        time.sleep(outer.delay)
                    status, answer_headers, payload = route(request_line[0], request_line[1], headers, body)
                    head = [f"HTTP/1.1 {status} OK", *(f"{k}: {v}" for k, v in answer_headers.items()),
                            f"Content-Length: {len(payload)}", "Connection: close", "", ""]
                    stream.write("\r\n".join(head).encode("latin-1") + payload)
                    stream.flush()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def count(self) -> int:
        return len(self.calls)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class TunnelProxy:
    """An HTTPS proxy on 127.0.0.1 whose every CONNECT to `port` reaches 127.0.0.1:`port`, whatever the name: how a
    client (skopeo, podman: Go's ProxyFromEnvironment) reaches a local registry under a name no resolver knows. TLS
    stays end to end; each tunnel ends when either side closes or is idle for `idle` seconds."""

    def __init__(self, port: int, idle: float = 30.0) -> None:
        import select
        import socket

        class Handler(BaseHTTPRequestHandler):
            def do_CONNECT(self) -> None:
                if self.path.rpartition(":")[2] != str(port):
                    self.send_error(403)
                    return
                with socket.create_connection(("127.0.0.1", port), timeout=idle) as upstream:
                    self.send_response(200)
                    self.end_headers()
                    self.close_connection = True
                    ends = [self.connection, upstream]
                    while True:
                        ready, _, _ = select.select(ends, [], [], idle)
                        if not ready:
                            return
                        for end in ready:
                            data = end.recv(65536)
                            if not data:
                                return
                            (upstream if end is self.connection else self.connection).sendall(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def write_key(directory: Path, key: dict, token_uri: str) -> Path:
    path = directory / "sa.json"
    path.write_text(json.dumps({**key, "token_uri": token_uri}))
    return path


def platform_creds_api(*, token: str, org: str, registries: dict[str, dict[str, Any]],
                       tls: Optional[tuple[Path, Path]] = None,
                       listing: Optional[list[dict[str, Any]]] = None) -> LocalServer:
    """The platform's `GET /orgs/{org}/registries/{id}/creds` (seed 000) behind a bearer token. A registry whose
    answer is None is forbidden to this token (403). With `listing` (which the test may edit while it runs), also
    `GET /orgs/{org}/registries`: objects with id, registry, type and enable_ci."""

    def route(method: str, path: str, headers: Any, body: bytes) -> Answer:
        if headers.get("Authorization") != f"Bearer {token}":
            return json_answer({"error": "unauthorized"}, 401)
        parts = path.split("/")
        if listing is not None and method == "GET" and len(parts) == 4 and parts[1] == "orgs" \
                and parts[3] == "registries" and urllib.parse.unquote(parts[2]) == org:
            return json_answer(listing)
        if method != "GET" or len(parts) != 6 or parts[1] != "orgs" or parts[3] != "registries" or parts[5] != "creds":
            return json_answer({"error": "not_found"}, 404)
        if urllib.parse.unquote(parts[2]) != org or urllib.parse.unquote(parts[4]) not in registries:
            return json_answer({"error": "not_found"}, 404)
        answer = registries[urllib.parse.unquote(parts[4])]
        return json_answer({"error": "forbidden"}, 403) if answer is None else json_answer(answer)

    return LocalServer(route, tls)
