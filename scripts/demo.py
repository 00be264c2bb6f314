"""The main job on the default configuration, start to finish, in throwaway directories:

start a private registry that demands a password (Debian's docker-registry, htpasswd, TLS on 127.0.0.1), register
it in a new vault (default key source: a key file), route docker to the helper, and let skopeo and the docker CLI
pull through it. Nothing outside a temporary directory is touched.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.registry import Registry, ensure_tools  # noqa: E402  (the same harness the tests use)

HELPER = Path(sys.executable).parent / "docker-credential-idp"


def step(title: str, argv: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    print(f"\n$ {' '.join(argv)}" + (" <<< (from stdin)" if stdin else ""))
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120, check=False)
    for line in (result.stdout + result.stderr).strip().splitlines()[:12]:
        print(f"  {line}")
    if result.returncode != 0:
        raise SystemExit(f"demo failed at: {title}")
    return result


def main() -> int:
    ensure_tools()
    with tempfile.TemporaryDirectory(prefix="idp-demo-") as base:
        work = Path(base)
        os.environ.update({
            "DOCKER_CREDENTIAL_IDP_HOME": str(work / "idp"),
            "DOCKER_CONFIG": str(work / "docker"),
            "HOME": str(work / "home"),
            "XDG_RUNTIME_DIR": str(work / "run"),
            "PATH": f"{HELPER.parent}{os.pathsep}{os.environ['PATH']}",
        })
        os.environ.pop("REGISTRY_AUTH_FILE", None)
        for directory in ("home", "run"):
            (work / directory).mkdir(mode=0o700)
        password = secrets.token_urlsafe(18)
        (work / "registry").mkdir()
        registry = Registry(work / "registry", {"demo": password})
        try:
            registry.push_image("team/app", "1", "demo")
            print(f"A private registry is running at https://{registry.host} (user 'demo', a random password).")
            step("register", [str(HELPER), "registry", "add", "local", "--prefix", f"{registry.host}/team",
                              "--type", "basic", "--username", "demo", "--password-stdin"], stdin=password)
            step("list", [str(HELPER), "registry", "list"])
            step("resolve", [str(HELPER), "resolve", f"{registry.host}/team/app:1"])
            step("configure docker", [str(HELPER), "configure-docker"])
            print(f"  config.json: {json.loads((work / 'docker' / 'config.json').read_text())}")
            step("skopeo", ["skopeo", "--policy", str(registry.policy), "inspect", "--cert-dir", str(registry.ca_dir),
                            "--format", "{{.Name}} {{.Digest}}", f"docker://{registry.host}/team/app:1"])
            step("docker", ["docker", "manifest", "inspect", "--insecure", f"{registry.host}/team/app:1"])
            step("vault", [str(HELPER), "vault", "status"])
            step("doctor", [str(HELPER), "doctor"])
        finally:
            registry.stop()
    print("\nDone: skopeo and docker pulled from an authenticated registry with credentials from docker-credential-idp.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
