"""AWS stand-ins that check what moto does not: STS's AssumeRoleWithWebIdentity verifying the identity token (an
`Issuer`'s signature, the audience sts.amazonaws.com, expiry) and the session name before moto issues the keys, and
an ECR endpoint that verifies each request's Signature Version 4 with botocore's own signer, for the keys it knows."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.request
from typing import Any, Callable, Optional

from tests.oidc import Issuer, TokenRefused
from tests.servers import Answer, LocalServer, form, json_answer

XML = {"Content-Type": "text/xml"}


def sts_error(code: str, message: str, status: int = 400) -> Answer:
    body = (f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
            f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>r-1</RequestId></ErrorResponse>")
    return status, XML, body.encode()


def _xml_text(text: str, name: str) -> str:
    start = text.find(f"<{name}>")
    return text[start + len(name) + 2:text.find(f"</{name}>")] if start >= 0 else ""


class StsWebIdentity:
    """STS in front of moto: AssumeRoleWithWebIdentity is answered by moto only for a token `issuer` signed for
    `audience` and still valid, and a session name that `expect_session` accepts (when given); other actions pass
    through. `received` holds each exchange's fields, `issued` the keys moto handed out (access key id -> (secret,
    session token))."""

    def __init__(self, issuer: Issuer, moto_url: str, audience: str = "sts.amazonaws.com",
                 expect_session: Optional[Callable[[str], bool]] = None) -> None:
        self.issuer, self.moto_url, self.audience, self.expect_session = issuer, moto_url, audience, expect_session
        self.received: list[dict[str, str]] = []
        self.issued: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()
        self.server = LocalServer(self.route)
        self.url = self.server.url

    def route(self, method: str, path: str, headers: Any, body: bytes) -> Answer:
        fields = form(body)
        if fields.get("Action") == "AssumeRoleWithWebIdentity":
            with self._lock:
                self.received.append(fields)
            if "Authorization" in headers:
                return sts_error("InvalidRequest", "AssumeRoleWithWebIdentity is not signed")
            try:
                self.issuer.verify(fields.get("WebIdentityToken", ""), self.audience)
            except TokenRefused as refused:
                return sts_error("InvalidIdentityToken", f"Token refused: {refused}")
            if self.expect_session and not self.expect_session(fields.get("RoleSessionName", "")):
                return sts_error("ValidationError", "unexpected RoleSessionName")
        request = urllib.request.Request(f"{self.moto_url}/", data=body, method="POST",
                                         headers={"Content-Type": headers.get("Content-Type", ""),
                                                  "Authorization": headers.get("Authorization", ""),
                                                  "X-Amz-Date": headers.get("X-Amz-Date", "")})
        with urllib.request.urlopen(request, timeout=10) as answer:
            text = answer.read().decode()
        key = _xml_text(text, "AccessKeyId")
        if key:
            with self._lock:
                self.issued[key] = (_xml_text(text, "SecretAccessKey"), _xml_text(text, "SessionToken"))
        return 200, XML, text.encode()

    def session_tokens(self) -> list[str]:
        with self._lock:
            return [token for _, token in self.issued.values()]

    def stop(self) -> None:
        self.server.stop()


def verify_sigv4(method: str, path: str, headers: Any, body: bytes,
                 secrets: Callable[[str], Optional[tuple[str, Optional[str]]]]) -> Optional[str]:
    """None when the request carries a valid SigV4 signature by a key `secrets` knows (-> (secret, session token)),
    else what is wrong. The signature is recomputed by botocore's SigV4Auth over the headers the request signed."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    authorization = headers.get("Authorization", "")
    if not authorization.startswith("AWS4-HMAC-SHA256 "):
        return "not signed"
    parts = dict(item.strip().split("=", 1) for item in authorization[len("AWS4-HMAC-SHA256 "):].split(","))
    key_id, date, region, service, _ = parts["Credential"].split("/")
    known = secrets(key_id)
    if known is None:
        return f"unknown key {key_id}"
    secret, token = known
    if token and headers.get("X-Amz-Security-Token") != token:
        return "wrong or missing session token"
    names = parts["SignedHeaders"].split(";")
    if "host" not in names or "x-amz-date" not in names:
        return "host and x-amz-date must be signed"
    request = AWSRequest(method=method, url=f"http://{headers['Host']}{path}", data=body,
                         headers={name: headers[name] for name in names})
    request.context["timestamp"] = headers["X-Amz-Date"]
    if headers["X-Amz-Date"][:8] != date:
        return "credential scope date differs from X-Amz-Date"
    signer = SigV4Auth(Credentials(key_id, secret, token), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    return None if expected == parts["Signature"] else "signature does not match"


def checked_ecr_api(password: str, secrets: Callable[[str], Optional[tuple[str, Optional[str]]]],
                    lifetime: float = 43200) -> LocalServer:
    """ECR's GetAuthorizationToken (JSON 1.1) answering only requests signed for service `ecr` by a known key;
    `server.refusals` lists what was wrong with the others (answered 403 as ECR answers a bad signature)."""
    refusals: list[str] = []

    def route(method: str, path: str, headers: Any, body: bytes) -> Answer:
        problem = verify_sigv4(method, path, headers, body, secrets)
        if problem is None and "/ecr/aws4_request" not in headers.get("Authorization", ""):
            problem = "not signed for service ecr"
        if problem:
            refusals.append(problem)
            return json_answer({"__type": "InvalidSignatureException", "message": problem}, 403,
                               {"Content-Type": "application/x-amz-json-1.1"})
        if headers.get("X-Amz-Target") != "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken":
            return json_answer({"__type": "UnknownOperationException"}, 400)
        account = (json.loads(body or b"{}").get("registryIds") or ["123456789012"])[0]
        token = base64.b64encode(f"AWS:{password}".encode()).decode()
        return json_answer({"authorizationData": [{"authorizationToken": token, "expiresAt": time.time() + lifetime,
                                                   "proxyEndpoint": f"https://{account}.dkr.ecr.eu-west-1.amazonaws.com"}]},
                           headers={"Content-Type": "application/x-amz-json-1.1"})

    server = LocalServer(route)
    server.refusals = refusals  # type: ignore[attr-defined]
    return server
