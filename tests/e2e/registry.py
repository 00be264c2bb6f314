"""A real registry for the end-to-end tests: Debian's docker-registry (distribution v2) with TLS, listening on
127.0.0.1 only, stopped by the fixture and, failing that, by `timeout` on its own. It demands either htpasswd
(Basic) auth, or Bearer tokens from a token service (`TokenService`, in this process) as most registries do."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import ssl
import subprocess
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Mapping

from ..tls import make_tls

REQUIRED_TOOLS = {
    "docker-registry": "docker-registry",
    "htpasswd": "apache2-utils",
    "skopeo": "skopeo",
    "podman": "podman",
    "docker": "docker.io",
    "dockerd": "docker.io",
    "buildah": "buildah",
    "busybox": "busybox-static",
}
MAX_LIFETIME_SECONDS = 1800
PATTERN_NAME = "registry.idp-e2e.example.com"
POLICY = {"default": [{"type": "insecureAcceptAnything"}]}


def ensure_tools() -> None:
    """Install what the real-client tests need (they are never skipped). CI runs as root, like this machine."""
    missing = sorted({package for tool, package in REQUIRED_TOOLS.items() if not shutil.which(tool)})
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError(f"missing {', '.join(missing)}; install them (make setup) and run again")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_htpasswd(path: Path, users: Mapping[str, str]) -> None:
    path.write_text("")
    for user, password in users.items():
        # -i reads the password from stdin; bcrypt (-B) is the only scheme distribution accepts.
        subprocess.run(["htpasswd", "-B", "-i", str(path), user], input=password.encode(), check=True,
                       capture_output=True)


def _blob(directory: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (directory / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (directory / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static: a shell for the RUN steps of the daemon tests


def make_oci_image(directory: Path, tag: str, content: bytes, with_shell: bool = False) -> None:
    """A one-layer OCI image layout holding /hello.txt (and with_shell: a static busybox as /bin/sh), for skopeo to
    push."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        files = [("hello.txt", content, 0o644)]
        if with_shell:
            files.append(("bin/busybox", BUSYBOX.read_bytes(), 0o755))
        for name, data, mode in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, mode
            archive.addfile(info, io.BytesIO(data))
        if with_shell:
            link = tarfile.TarInfo("bin/sh")
            link.type, link.linkname, link.mtime = tarfile.SYMTYPE, "busybox", 0
            archive.addfile(link)
    layer_tar = raw.getvalue()
    layer = _blob(directory, gzip.compress(layer_tar, mtime=0))
    config = _blob(directory, json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer_tar).hexdigest()}"]},
    }).encode())
    manifest = _blob(directory, json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
    }).encode())
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest,
        "annotations": {"org.opencontainers.image.ref.name": tag}}]}))


class TokenService:
    """The Bearer token service of docker/distribution's token auth (docs/spec/auth/token.md): GET /token with Basic
    auth answers a JWT (ES256, its certificate in x5c) granting the scopes asked for; the registry checks it
    against the signing certificate it is configured to trust."""

    SERVICE = "idp-test-registry"
    ISSUER = "idp-test-token-issuer"

    def __init__(self, workdir: Path, users: Mapping[str, str], tls: tuple[Path, Path]) -> None:
        from ..servers import LocalServer, json_answer

        self.users = dict(users)
        self.signing_key, self.signing_cert = _signing_identity()
        self.root_bundle = workdir / "token-signing.crt"
        from cryptography.hazmat.primitives import serialization

        self.root_bundle.write_bytes(self.signing_cert.public_bytes(serialization.Encoding.PEM))

        def route(method: str, path: str, headers, body: bytes):  # noqa: ANN001
            user = self._user(headers.get("Authorization", ""))
            if user is None:
                return json_answer({"errors": [{"code": "UNAUTHORIZED"}]}, 401)
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
            token = self._token(user, query.get("service", [""])[0], query.get("scope", []))
            return json_answer({"token": token, "access_token": token, "expires_in": 300})

        self.server = LocalServer(route, tls)
        self.realm = f"{self.server.url}/token"

    def _user(self, authorization: str):  # noqa: ANN202
        if not authorization.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        return user if self.users.get(user) == password else None

    def _token(self, user: str, service: str, scopes: list[str]) -> str:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":") if scope.count(":") == 2 else ("", "", "")
            if kind == "repository":
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256",
                  "x5c": [base64.b64encode(self.signing_cert.public_bytes(serialization.Encoding.DER)).decode()]}
        claims = {"iss": self.ISSUER, "sub": user, "aud": service, "exp": now + 300, "nbf": now - 10, "iat": now,
                  "jti": os.urandom(8).hex(), "access": access}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self.signing_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def stop(self) -> None:
        self.server.stop()


def _signing_identity():  # noqa: ANN202
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp test token signer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2)).sign(key, hashes.SHA256()))
    return key, cert


class Registry:
    def __init__(self, workdir: Path, users: Mapping[str, str], bearer: bool = False) -> None:
        self.workdir = workdir
        self.users = dict(users)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        # PATTERN_NAME: the registry under a name with a registrable domain, reached through a TunnelProxy.
        self.ca_path, cert, key = make_tls(workdir, (PATTERN_NAME,))
        self.ca_dir = self.ca_path.parent
        self.policy = workdir / "policy.json"
        self.policy.write_text(json.dumps(POLICY))
        self.token_service = TokenService(workdir, users, (cert, key)) if bearer else None
        if self.token_service:
            auth = {"token": {"realm": self.token_service.realm, "service": TokenService.SERVICE,
                              "issuer": TokenService.ISSUER, "rootcertbundle": str(self.token_service.root_bundle)}}
        else:
            write_htpasswd(workdir / "htpasswd", users)
            auth = {"htpasswd": {"realm": "idp-test", "path": str(workdir / "htpasswd")}}
        (workdir / "config.yml").write_text(json.dumps({
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(workdir / "data")}},
            "http": {"addr": self.host, "tls": {"certificate": str(cert), "key": str(key)}},
            "auth": auth,
        }))
        self.log = open(workdir / "registry.log", "wb")
        self.process = subprocess.Popen(
            ["timeout", str(MAX_LIFETIME_SECONDS), "docker-registry", "serve", str(workdir / "config.yml")],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_path))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {(self.workdir / 'registry.log').read_text()}")
            try:
                urllib.request.urlopen(f"https://{self.host}/v2/", context=context, timeout=2)
            except urllib.error.HTTPError as error:
                if error.code == 401:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("docker-registry did not start within 30 s")

    def auth_file(self, user: str) -> Path:
        """A static containers auth.json for one user: used only to seed images, never by the tests' clients."""
        path = self.workdir / f"seed-auth-{user}.json"
        token = base64.b64encode(f"{user}:{self.users[user]}".encode()).decode()
        path.write_text(json.dumps({"auths": {self.host: {"auth": token}}}))
        return path

    def push_image(self, repository: str, tag: str, user: str, content: bytes = b"hello from idp\n",
                   with_shell: bool = False) -> None:
        layout = self.workdir / "layouts" / repository.replace("/", "_")
        make_oci_image(layout, tag, content, with_shell)
        subprocess.run(
            ["skopeo", "--policy", str(self.policy), "copy", "--quiet", "--dest-authfile", str(self.auth_file(user)),
             "--dest-cert-dir", str(self.ca_dir), f"oci:{layout}:{tag}", f"docker://{self.host}/{repository}:{tag}"],
            check=True, capture_output=True, timeout=120, env={**os.environ, "REGISTRY_AUTH_FILE": ""},
        )

    def stop(self) -> None:
        if self.token_service:
            self.token_service.stop()
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
        self.log.close()
