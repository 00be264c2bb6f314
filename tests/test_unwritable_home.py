"""A home the helper cannot write — a read-only mount (a Kubernetes Secret volume, a read-only image layer), a full
disk, a directory where tokens.bin should be — still answers from the vault: get, creds and kubelet answer, warn once
on stderr that nothing could be cached, and never report an unexpected error. A write to it (or to a home that
cannot be made there) is refused in one line that names the path and the fix. Mounts are made in a private mount
namespace (unshare -m), as root, which CI is."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import add_basic, helper_path, run_helper

HOST = "registry.example.com"
KUBELET_REQUEST = json.dumps({"apiVersion": "credentialprovider.kubelet.k8s.io/v1", "kind": "CredentialProviderRequest",
                              "image": f"{HOST}/team/app:1"})
CALLS = ((("get",), HOST), (("creds", HOST), ""), (("kubelet",), KUBELET_REQUEST))


def home() -> Path:
    return Path(os.environ["DOCKER_CREDENTIAL_IDP_HOME"])


def registrations() -> None:
    add_basic("static", HOST, "robot", "static-password-1")
    result = run_helper("registry", "add", "script", "--prefix", "script.example.com", "--type", "script",
                        "--script-stdin", stdin="echo robot:script-password-1")
    assert result.code == 0, result


def in_namespace(setup: str, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    """The helper in a private mount namespace where `setup` (sh, $H is the home) has run first."""
    command = f'{setup} && exec "$0" "$@"'
    return subprocess.run(["unshare", "-m", "sh", "-c", command, helper_path(), *args], input=stdin, text=True,
                          capture_output=True, timeout=60, env={**os.environ, "H": str(home())}, check=False)


def assert_answers_and_warns_once(result: subprocess.CompletedProcess[str], secret: str) -> None:
    assert result.returncode == 0, result
    assert secret in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and "without caching" in warnings[0], result.stderr
    assert "unexpected error" not in result.stderr


READ_ONLY = 'mount --bind "$H" "$H" && mount -o remount,bind,ro "$H"'


@pytest.mark.parametrize("argv, stdin", CALLS)
def test_read_only_home_answers(argv, stdin):
    registrations()
    assert_answers_and_warns_once(in_namespace(READ_ONLY, *argv, stdin=stdin), "static-password-1")
    assert not (home() / "tokens.bin").exists()


def test_read_only_home_runs_a_token_source_and_answers():
    registrations()
    result = in_namespace(READ_ONLY, "get", stdin="script.example.com")
    assert_answers_and_warns_once(result, "script-password-1")


def test_full_disk_answers(tmp_path):
    registrations()
    saved = tmp_path / "saved-home"
    shutil.copytree(home(), saved)
    # A 64 KiB tmpfs over the home, holding the vault and its key, filled to the last byte.
    fill = ('mount -t tmpfs -o size=64k,mode=0700 tmpfs "$H" && cp -a "$SAVED"/. "$H"/ && '
            '(dd if=/dev/zero of="$H/filler" bs=1k count=128 2>/dev/null; true)')
    os.environ["SAVED"] = str(saved)
    try:
        result = in_namespace(fill, "get", stdin=HOST)
    finally:
        del os.environ["SAVED"]
    assert_answers_and_warns_once(result, "static-password-1")


def test_a_directory_where_tokens_bin_should_be():
    registrations()
    (home() / "tokens.bin").mkdir()
    for argv, stdin in CALLS:
        result = run_helper(*argv, stdin=stdin)
        assert result.code == 0 and "static-password-1" in result.out, result
        warnings = [line for line in result.err.splitlines() if line.strip()]
        assert len(warnings) == 1 and "without caching" in warnings[0] and "tokens.bin" in warnings[0], result
    assert (home() / "tokens.bin").is_dir() and not list((home() / "tokens.bin").iterdir())
    assert [p.name for p in home().iterdir() if p.name.endswith(".tmp")] == []


# -- writing to a home that cannot be written: one line naming the path and the fix ---------------------------------

WRITES = (
    (("registry", "add", "another", "--prefix", "another.example.com", "--type", "basic", "--username", "u",
      "--password-stdin"), "another-password-1"),
    (("registry", "remove", "static"), ""),
    (("store",), json.dumps({"ServerURL": "stored.example.com", "Username": "u", "Secret": "stored-password-1"})),
    (("vault", "accept"), ""),
    (("configure-docker",), ""),  # its lock and what --force took over live in the home
)


@pytest.mark.parametrize("argv, stdin", WRITES,
                         ids=["registry-add", "registry-remove", "store", "vault-accept", "configure-docker"])
def test_a_write_to_a_read_only_home_is_one_line(argv, stdin):
    registrations()
    before = (home() / "vault.bin").read_bytes()
    result = in_namespace(READ_ONLY, *argv, stdin=stdin)
    stream = result.stdout if argv[0] == "store" else result.stderr
    lines = [line for line in stream.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result
    assert f"cannot write in {home()}: it is on a read-only file system" in lines[0], result
    assert "remount it read-write" in lines[0] and "DOCKER_CREDENTIAL_IDP_HOME" in lines[0], result
    assert "unexpected error" not in result.stdout + result.stderr and "Traceback" not in result.stderr
    assert (home() / "vault.bin").read_bytes() == before


def test_a_new_home_under_a_read_only_mount_is_one_line(tmp_path):
    parent = tmp_path / "mounted"
    parent.mkdir(mode=0o700)
    new_home = parent / "idp"  # to be made by the helper, beneath a mount that is read-only
    argv, stdin = WRITES[0]
    result = subprocess.run(["unshare", "-m", "sh", "-c", f'{READ_ONLY} && exec "$0" "$@"', helper_path(), *argv],
                            input=stdin, text=True, capture_output=True, timeout=60, check=False,
                            env={**os.environ, "H": str(parent), "DOCKER_CREDENTIAL_IDP_HOME": str(new_home)})
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result
    assert f"cannot create {new_home}: it is on a read-only file system" in lines[0], result
    assert "unexpected error" not in result.stderr
    assert not new_home.exists()


def test_cache_clear_on_a_read_only_home_is_one_line_and_fails():
    registrations()
    assert run_helper("get", stdin=HOST).code == 0
    before = (home() / "tokens.bin").read_bytes()
    for argv in (("cache", "clear"), ("cache", "clear", "static")):
        result = in_namespace(READ_ONLY, *argv, stdin="")
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 1 and len(lines) == 1 and result.stdout == "", result
        assert f"cannot write in {home()}: it is on a read-only file system" in lines[0], result
        assert "remount it read-write" in lines[0] and "without caching" not in lines[0], result
    assert (home() / "tokens.bin").read_bytes() == before
