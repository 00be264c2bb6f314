"""A stand-in OIDC issuer for the identity-token tests: real RS256 JWTs (`iss`, `aud`, `sub`, `iat`, `exp`) signed
with a key made per issuer, and verified the way an exchange verifies them (signature, issuer, audience, expiry).
Plus GitHub Actions' token endpoint, which mints one for the audience asked and counts the mints."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from typing import Any, Callable, Optional

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.servers import Answer, LocalServer, json_answer

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _watch(value: str) -> None:
    """Identity tokens and the request token are secrets: the leak watch (conftest.py) looks for them in every output
    but an answer, and in every file of the test's homes."""
    from tests.conftest import LEAKS

    LEAKS.watch(value)


class TokenRefused(Exception):
    """What an exchange answers 401/403 for: a bad signature, another issuer or audience, an expired token."""


class Issuer:
    """Signs and verifies identity tokens. `now` is injectable so that expiry can be tested without waiting."""

    def __init__(self, iss: str = GITHUB_ISSUER, now: Callable[[], float] = time.time) -> None:
        self.iss = iss
        self.now = now
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = _b64(self.key.public_key().public_numbers().n.to_bytes(256, "big")[:8])
        self.minted: list[str] = []

    def mint(self, audience: str, subject: str = "repo:example/app:ref:refs/heads/main", lifetime: float = 300,
             **extra: Any) -> str:
        issued = int(self.now())
        claims = {"iss": self.iss, "aud": audience, "sub": subject, "iat": issued, "nbf": issued,
                  "exp": issued + int(lifetime), **extra}
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        token = f"{signing_input}.{_b64(signature)}"
        self.minted.append(token)
        _watch(token)
        return token

    def verify(self, token: str, audience: str) -> dict[str, Any]:
        """The claims of a token this issuer signed for `audience`, still valid now; else TokenRefused."""
        try:
            header_part, claims_part, signature_part = token.split(".")
            header = json.loads(_unb64(header_part))
            claims = json.loads(_unb64(claims_part))
            signature = _unb64(signature_part)
        except ValueError:
            raise TokenRefused("not a JWT") from None
        if header.get("alg") != "RS256":
            raise TokenRefused(f"alg {header.get('alg')!r}")
        try:
            self.key.public_key().verify(signature, f"{header_part}.{claims_part}".encode(), padding.PKCS1v15(),
                                         hashes.SHA256())
        except InvalidSignature:
            raise TokenRefused("bad signature") from None
        if claims.get("iss") != self.iss:
            raise TokenRefused("wrong issuer")
        audiences = claims.get("aud") if isinstance(claims.get("aud"), list) else [claims.get("aud")]
        if audience not in audiences:
            raise TokenRefused(f"wrong audience {claims.get('aud')!r}, expected {audience!r}")
        if not claims.get("exp", 0) > self.now():
            raise TokenRefused("expired")
        return claims

    def jwks(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        return {"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
                          "n": _b64(numbers.n.to_bytes(256, "big")), "e": _b64(numbers.e.to_bytes(3, "big"))}]}


def github_token_endpoint(issuer: Issuer, request_token: str, lifetime: float = 300,
                          subject: str = "repo:example/app:ref:refs/heads/main") -> LocalServer:
    """GitHub Actions' OIDC token endpoint: GET <ACTIONS_ID_TOKEN_REQUEST_URL>&audience=AUD with `Authorization:
    Bearer <ACTIONS_ID_TOKEN_REQUEST_TOKEN>` -> {"value": JWT}. Without an audience, GitHub's default (the owner's
    URL). `server.count("/token")` is the number of mints asked for. Its URL for the environment: `request_url(s)`."""
    _watch(request_token)

    def route(method: str, path: str, headers: Any, body: bytes) -> Answer:
        if method != "GET" or headers.get("Authorization") != f"Bearer {request_token}":
            return json_answer({"message": "Bad credentials"}, 401)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        audience = query.get("audience", ["https://github.com/example"])[0]
        return json_answer({"value": issuer.mint(audience, subject=subject, lifetime=lifetime), "count": 1})

    return LocalServer(route)


def request_url(server: LocalServer) -> str:
    """ACTIONS_ID_TOKEN_REQUEST_URL as the runner sets it: it already carries a query string."""
    return f"{server.url}/_apis/token?api-version=2.0"


def github_env(server: LocalServer, request_token: str, extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    return {"ACTIONS_ID_TOKEN_REQUEST_URL": request_url(server), "ACTIONS_ID_TOKEN_REQUEST_TOKEN": request_token,
            "GITHUB_RUN_ID": "4242", "GITHUB_RUN_ATTEMPT": "1", "GITHUB_REPOSITORY": "example/app", **(extra or {})}


# -- the exchanges: one stand-in per kind, each verifying the identity token as its service does -------------------

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
GITHUB_DEFAULT_AUDIENCE = "https://github.com/example"  # what github_token_endpoint mints without an audience


class Exchange:
    """One exchange's stand-in on 127.0.0.1 (https with `tls`): it reads the request in the service's documented
    format, verifies the identity token with `issuer` (signature, issuer, `audience`, expiry), and answers as the
    service does with `answer()` as the registry token. `verified` holds the claims of each token it accepted,
    `refused` the reason for each it did not; `server.count()` every call."""

    def __init__(self, kind: str, issuer: Issuer, audience: str, answer: str | Callable[[], str], *,
                 tls: Optional[tuple[Any, Any]] = None, connection_id: str = "", provider_name: str = "",
                 robot: str = "", identity: str = "", username: Optional[str] = None,
                 expires_in: Optional[int] = None) -> None:
        self.kind, self.issuer, self.audience = kind, issuer, audience
        self.answer = answer if callable(answer) else (lambda: answer)
        self.connection_id, self.provider_name, self.robot, self.identity = connection_id, provider_name, robot, identity
        self.username, self.expires_in = username, expires_in
        self.verified: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self.issued: list[str] = []
        self.server = LocalServer(getattr(self, f"_{kind}"), tls)
        self.url = self.server.url

    def count(self, fragment: str = "") -> int:
        return self.server.count(fragment)

    def stop(self) -> None:
        self.server.stop()

    def _check(self, token: str, status: int, error: dict[str, Any]) -> Optional[Answer]:
        try:
            self.verified.append(self.issuer.verify(token, self.audience))
        except TokenRefused as reason:
            self.refused.append(str(reason))
            return json_answer(error, status)
        return None

    def _issue(self) -> str:
        token = self.answer()
        self.issued.append(token)
        _watch(token)  # an exchanged token may appear in an answer and nowhere else
        return token

    def _dockerhub(self, method: str, path: str, headers: Any, body: bytes) -> Answer:
        """identity.docker.com: RFC 8693 form POST /oauth/token."""
        fields = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        if method != "POST" or urllib.parse.urlsplit(path).path != "/oauth/token" \
                or headers.get("Content-Type") != "application/x-www-form-urlencoded":
            return json_answer({"error": "invalid_request"}, 400)
        if fields.get("grant_type") != TOKEN_EXCHANGE or fields.get("subject_token_type") != ID_TOKEN_TYPE \
                or not fields.get("expires_in", "").isdigit() or not 300 <= int(fields["expires_in"]) <= 3600:
            return json_answer({"error": "invalid_request"}, 400)
        if fields.get("connection_id") != self.connection_id:
            return json_answer({"error": "invalid_client"}, 401)
        refused = self._check(fields.get("subject_token", ""), 401, {"error": "invalid_grant"})
        if refused:
            return refused
        return json_answer({"access_token": self._issue(), "token_type": "Bearer",
                            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                            "expires_in": self.expires_in or int(fields["expires_in"])})

    def _jfrog(self, method: str, path: str, headers: Any, body: bytes) -> Answer:
        """Artifactory's Access: JSON POST /access/api/v1/oidc/token."""
        if method != "POST" or path != "/access/api/v1/oidc/token" or headers.get("Content-Type") != "application/json":
            return json_answer({"errors": [{"status": 400, "message": "Bad request"}]}, 400)
        request = json.loads(body or b"{}")
        if request.get("grant_type") != TOKEN_EXCHANGE or request.get("subject_token_type") != ID_TOKEN_TYPE:
            return json_answer({"errors": [{"status": 400, "message": "unsupported grant"}]}, 400)
        if request.get("provider_name") != self.provider_name:
            return json_answer({"errors": [{"status": 401, "message": "OIDC provider not found"}]}, 401)
        refused = self._check(str(request.get("subject_token", "")), 401,
                              {"errors": [{"status": 401, "message": "Failed to authenticate"}]})
        if refused:
            return refused
        answer: dict[str, Any] = {"access_token": self._issue(), "token_type": "Bearer", "scope": "applied-permissions/user",
                                  "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"}
        if self.username is not None:
            answer["username"] = self.username
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        return json_answer(answer)

    def _quay(self, method: str, path: str, headers: Any, body: bytes) -> Answer:
        """Quay: GET /oauth2/federation/robot/token with Basic ORG+ROBOT:JWT."""
        if method != "GET" or urllib.parse.urlsplit(path).path != "/oauth2/federation/robot/token":
            return json_answer({"error": "not found"}, 404)
        authorization = headers.get("Authorization", "")
        robot, _, token = (base64.b64decode(authorization[6:]).decode() if authorization.startswith("Basic ")
                           else "").partition(":")
        if robot != self.robot:
            return json_answer({"error": "invalid robot"}, 401)
        return self._check(token, 401, {"error": "Could not validate federated token"}) \
            or json_answer({"token": self._issue()})

    def _chainguard(self, method: str, path: str, headers: Any, body: bytes) -> Answer:
        """issuer.enforce.dev: GET /sts/exchange?aud=cgr.dev&identity=ID with the JWT as a bearer."""
        parts = urllib.parse.urlsplit(path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(parts.query).items()}
        if method != "GET" or parts.path != "/sts/exchange" or query.get("aud") != "cgr.dev":
            return json_answer({"code": 3, "message": "invalid request"}, 400)
        if query.get("identity") != self.identity:
            return json_answer({"code": 7, "message": "permission denied"}, 403)
        authorization = headers.get("Authorization", "")
        token = authorization[7:] if authorization.startswith("Bearer ") else ""
        return self._check(token, 403, {"code": 7, "message": "permission denied"}) \
            or json_answer({"token": self._issue()})

    def _none(self, method: str, path: str, headers: Any, body: bytes) -> Answer:
        """No exchange: a registry (Harbor with workload identity federation, zot) whose /v2/ takes the identity
        token as the Basic password."""
        challenge = {"WWW-Authenticate": 'Basic realm="registry"', "Docker-Distribution-Api-Version": "registry/2.0"}
        authorization = headers.get("Authorization", "")
        if not authorization.startswith("Basic "):
            return 401, {**challenge, "Content-Type": "application/json"}, b'{"errors":[{"code":"UNAUTHORIZED"}]}'
        _, _, token = base64.b64decode(authorization[6:]).decode().partition(":")
        refused = self._check(token, 401, {"errors": [{"code": "UNAUTHORIZED"}]})
        if refused:
            return refused[0], {**refused[1], **challenge}, refused[2]
        return 200, {"Content-Type": "application/json", "Docker-Distribution-Api-Version": "registry/2.0"}, b"{}"
