"""A real docker daemon for the end-to-end tests: Debian's dockerd 20.10 (with its containerd and embedded
BuildKit) as root, on its own socket, data and exec roots under /tmp, no networking of its own. It trusts the test
registry's CA through /etc/docker/certs.d (removed again when it stops), and lists the registry as an https
"insecure" registry so that BuildKit speaks TLS to 127.0.0.1 instead of plain HTTP. Started once per session,
stopped by its PID; `timeout` ends it should the session die first."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

MAX_LIFETIME_SECONDS = 1800
CERTS_D = Path("/etc/docker/certs.d")


class DockerDaemon:
    def __init__(self, registry_host: str, ca_path: Path) -> None:
        # Short paths: containerd's socket lives under the exec root, and unix socket paths stop at 108 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="idp-dockerd-", dir="/tmp"))
        self.socket = self.root / "docker.sock"
        self.url = f"unix://{self.socket}"
        self.pidfile = self.root / "docker.pid"
        self.certs = CERTS_D / registry_host
        self.certs.mkdir(parents=True, exist_ok=True)
        shutil.copy(ca_path, self.certs / "ca.crt")
        config = self.root / "daemon.json"
        config.write_text(json.dumps({"insecure-registries": [f"https://{registry_host}"]}))
        self.log = open(self.root / "dockerd.log", "wb")
        self.process = subprocess.Popen(
            ["timeout", str(MAX_LIFETIME_SECONDS), "dockerd", "--storage-driver", "vfs", "--iptables=false",
             "--ip6tables=false", "--ip-masq=false", "--bridge=none", "--userland-proxy=false",
             "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
             "--pidfile", str(self.pidfile), "-H", self.url, "--config-file", str(config)],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dockerd exited: {(self.root / 'dockerd.log').read_text()[-2000:]}")
            ping = subprocess.run(["docker", "-H", self.url, "version", "--format", "{{.Server.Version}}"],
                                  capture_output=True, text=True, timeout=30, check=False)
            if ping.returncode == 0:
                return
            time.sleep(0.3)
        raise RuntimeError(f"dockerd did not answer within 60 s: {(self.root / 'dockerd.log').read_text()[-2000:]}")

    def import_image(self, tag: str, rootfs: Path) -> None:
        """An image from a directory, without any registry (docker import of its tar)."""
        archive = self.root / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(archive), "."], check=True)
        subprocess.run(["docker", "-H", self.url, "import", str(archive), tag], check=True, capture_output=True,
                       timeout=120)

    def stop(self) -> None:
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            pid = None
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            if pid:
                os.kill(pid, signal.SIGKILL)
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.certs, ignore_errors=True)
        subprocess.run(["umount", "-R", "-l", str(self.root / "exec")], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
