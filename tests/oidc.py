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
