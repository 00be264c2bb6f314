"""The vault: format, key sources, permissions, integrity, and locked atomic writes."""

import base64
import os
import stat
from pathlib import Path

import pytest

from docker_credential_idp import vault as vault_module
from docker_credential_idp.errors import VaultError
from docker_credential_idp.model import Registration, Secrets
from docker_credential_idp.vault import Vault

from .conftest import add_basic, assert_one_line_error, call_helper

SECRET = "vault-test-secret-9f3b"


def make_registration(registration_id="team-a", prefix="registry.example.com/team", password=SECRET):
    return Registration(registration_id, prefix, "basic", {"username": "alice"}, Secrets({"password": password}))


def put(vault, registration):
    vault.update(lambda table: table.__setitem__(registration.id, registration))


@pytest.fixture
def home(isolated_env):
    return Path(isolated_env["DOCKER_CREDENTIAL_IDP_HOME"])


def test_round_trip_and_permissions(home):
    put(Vault(home, os.environ), make_registration())
    reopened = Vault(home, os.environ).registrations()
    assert reopened["team-a"] == make_registration()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for name in ("vault.bin", "vault.key", "vault.lock"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name


def test_secret_is_not_in_plaintext_on_disk(home):
    put(Vault(home, os.environ), make_registration())
    for path in home.iterdir():
        data = path.read_bytes()
        assert SECRET.encode() not in data and b"registry.example.com" not in data, path


def test_registrations_on_host_reads_only_that_host(home):
    vault = Vault(home, os.environ)
    put(vault, make_registration("a", "registry.example.com/team"))
    put(vault, make_registration("b", "registry.example.com"))
    put(vault, make_registration("c", "registry.example.com.evil.io"))
    put(vault, make_registration("d", "registry.example.com:5000"))
    found = {r.id for r in Vault(home, os.environ).registrations_on_host("registry.example.com")}
    assert found == {"a", "b"}


def test_repr_never_shows_a_secret():
    registration = make_registration()
    assert SECRET not in repr(registration) and "password" in repr(registration)


def test_records_copy_as_frozen_dataclasses_did():
    """copy.copy and copy.deepcopy of a record (a frozen dataclass's were equal copies): a slotted record's default
    reduction sets its fields with setattr, which a frozen record refuses."""
    import copy

    from docker_credential_idp.model import Credential, Login

    registration = make_registration().replace(login=Login("bob", "login-secret-1234"))
    for record in (registration, Login("bob", "login-secret-1234"), Credential("u", "s-1234", 5.0)):
        assert copy.copy(record) == record and copy.deepcopy(record) == record
    with pytest.raises(AttributeError):
        registration.id = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        registration.unknown = 1  # type: ignore[attr-defined]


def test_env_key_creates_no_key_file_and_is_needed_to_read(home, monkeypatch):
    key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("DOCKER_CREDENTIAL_IDP_KEY", key)
    put(Vault(home, os.environ), make_registration())
    assert not (home / "vault.key").exists()
    assert Vault(home, os.environ).registrations()["team-a"].secrets["password"] == SECRET
    monkeypatch.setenv("DOCKER_CREDENTIAL_IDP_KEY", base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(VaultError, match="does not open"):
        Vault(home, os.environ).registrations()
    monkeypatch.delenv("DOCKER_CREDENTIAL_IDP_KEY")
    with pytest.raises(VaultError, match="key file .* is missing"):
        Vault(home, os.environ).registrations()


@pytest.mark.parametrize("bad", ["short", "!!!notbase64", base64.b64encode(b"x" * 16).decode()])
def test_env_key_must_be_32_bytes_base64(home, monkeypatch, bad):
    monkeypatch.setenv("DOCKER_CREDENTIAL_IDP_KEY", bad)
    with pytest.raises(VaultError, match="base64-encoded 32-byte key"):
        put(Vault(home, os.environ), make_registration())
    assert not (home / "vault.bin").exists()


def test_passphrase_vault(home, monkeypatch):
    monkeypatch.setenv("DOCKER_CREDENTIAL_IDP_PASSPHRASE", "correct horse battery staple")
    put(Vault(home, os.environ), make_registration())
    assert not (home / "vault.key").exists()
    assert Vault(home, os.environ).registrations()["team-a"].secrets["password"] == SECRET
    monkeypatch.setenv("DOCKER_CREDENTIAL_IDP_PASSPHRASE", "wrong")
    with pytest.raises(VaultError, match="does not open"):
        Vault(home, os.environ).registrations()
    monkeypatch.delenv("DOCKER_CREDENTIAL_IDP_PASSPHRASE")
    with pytest.raises(VaultError, match="set DOCKER_CREDENTIAL_IDP_PASSPHRASE"):
        Vault(home, os.environ).registrations()


def test_passphrase_vault_refuses_out_of_bounds_kdf_parameters(home, monkeypatch):
    monkeypatch.setenv("DOCKER_CREDENTIAL_IDP_PASSPHRASE", "pw")
    put(Vault(home, os.environ), make_registration())
    data = bytearray((home / "vault.bin").read_bytes())
    data[len(vault_module.MAGIC) + 2] = 30  # log2(n) = 30: 128 GiB of memory
    (home / "vault.bin").write_bytes(bytes(data))
    with pytest.raises(VaultError, match="never writes: the header was changed"):
        Vault(home, os.environ).registrations()


def corrupt(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        data = data[: len(data) // 2]
    elif how == "truncate-header":
        data = data[:20]
    elif how == "flip-payload":
        data[-5] ^= 0x01
    elif how == "flip-header":
        data[vault_module.HEADER_BYTES - 3] ^= 0x80
    elif how == "version":
        data[len(vault_module.MAGIC)] = 9
    elif how == "magic":
        data[0:8] = b"NOTVAULT"
    elif how == "extend":
        data += b"garbage"
    elif how == "empty":
        data = bytearray()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "how, message",
    [
        ("truncate", "integrity check"),
        ("truncate-header", "not a docker-credential-idp vault or is truncated"),
        ("flip-payload", "integrity check"),
        ("flip-header", "integrity check"),
        ("version", "format version 9"),
        ("magic", "not a docker-credential-idp vault"),
        ("extend", "integrity check"),
        ("empty", "truncated"),
    ],
)
def test_damaged_vault_is_one_clear_error_and_left_untouched(home, how, message):
    add_basic("team-a", "registry.example.com/team", "alice", SECRET)
    path = home / "vault.bin"
    corrupt(path, how)
    damaged = path.read_bytes()
    for args, stdin in ((("get",), "registry.example.com"), (("registry", "list"), ""),
                        (("store",), '{"ServerURL":"x.io","Username":"u","Secret":"s"}')):
        result = call_helper(*args, stdin=stdin)
        stream = "out" if args[0] in ("get", "store") else "err"
        assert_one_line_error(result, message, stream=stream)
        assert SECRET not in result.out + result.err
    result = call_helper("registry", "add", "x", "--prefix", "x.io", "--type", "basic", "--username", "u",
                        "--password-stdin", stdin="p")
    assert_one_line_error(result, message)
    assert path.read_bytes() == damaged


def test_wrong_key_file_is_one_clear_error(home):
    add_basic("team-a", "registry.example.com/team", "alice", SECRET)
    (home / "vault.key").write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    assert_one_line_error(call_helper("get", stdin="registry.example.com"), "does not open", stream="out")


def test_reading_never_creates_files(home):
    assert call_helper("get", stdin="registry.example.com").code == 1
    assert call_helper("list").out == "{}\n"
    assert not home.exists()


def test_a_write_landing_while_a_reader_reads_is_no_rollback(home, monkeypatch):
    """The false rollback 600 gets beside 40 writers met (see test_credential_store_defences): a reader read
    vault.bin at serial N, a writer put N+1 in place and recorded it in vault.serial, and the reader, reading the
    record after the vault, refused a rollback that never happened. Here the write lands just after the read."""
    put(Vault(home, os.environ), make_registration())
    real_read = vault_module._read_vault
    writes = []

    def read_then_a_writer_lands(path, vault_home):
        data = real_read(path, vault_home)
        if not writes:
            writes.append(1)
            put(Vault(home, os.environ), make_registration("team-b", "registry.example.com/b"))
        return data

    monkeypatch.setattr(vault_module, "_read_vault", read_then_a_writer_lands)
    reader = Vault(home, os.environ)
    assert list(reader.registrations()) == ["team-a"] and writes  # the vault as it was read; no refusal
    assert Vault(home, os.environ).open().serial == 2


def test_a_reader_never_lowers_the_recorded_serial(home):
    """A reader that read serial N records it after a writer recorded N+1: the record must stay N+1, or a restored
    copy of N would pass unnoticed."""
    vault = Vault(home, os.environ)
    put(vault, make_registration())
    put(vault, make_registration("team-b", "registry.example.com/b"))
    key = vault.data_key()
    assert vault_module.seen_serial(home, key) == 2
    assert vault_module.record_serial(home, key, 1) in (True, False)
    assert vault_module.seen_serial(home, key) == 2
