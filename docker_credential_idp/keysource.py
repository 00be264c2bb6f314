"""Where the vault's key-encryption key comes from: a key file, DOCKER_CREDENTIAL_IDP_KEY, or a passphrase."""

from __future__ import annotations

import binascii
import os

from . import crypto, fsutil
from .errors import PROG, VaultError

TYPE_CHECKING = False  # typing itself is not imported: it costs a cache hit several ms
if TYPE_CHECKING:
    from typing import Mapping

    Home = str | os.PathLike[str]

KEY_VARIABLE = "DOCKER_CREDENTIAL_IDP_KEY"
PASSPHRASE_VARIABLE = "DOCKER_CREDENTIAL_IDP_PASSPHRASE"
KEY_FILE_NAME = "vault.key"

# Kinds recorded in the vault header: which family of key sources can open it.
RAW_KEY = 1
PASSPHRASE = 2

SCRYPT_DEFAULT = (15, 8, 1)  # log2(n), r, p: about 32 MiB and 60-100 ms, once per call that needs the vault
# What a vault header may ask for: what this release writes, and the next step up a later release might write.
SCRYPT_ACCEPTED = ((15, 8, 1), (16, 8, 1))
SCRYPT_MEMORY_LIMIT = 256 * 1024 * 1024


class ScryptParams(tuple):  # type: ignore[type-arg]
    """(log2_n, r, p) as recorded in the vault header. A plain tuple: NamedTuple would load typing on every get."""

    __slots__ = ()

    def __new__(cls, log2_n: int, r: int, p: int) -> ScryptParams:
        return tuple.__new__(cls, (log2_n, r, p))

    log2_n = property(lambda self: self[0])
    r = property(lambda self: self[1])
    p = property(lambda self: self[2])

    def check(self, where: str) -> None:
        """Only parameters we write: a tampered header must not make every get spend seconds and hundreds of MB,
        nor make a good passphrase look wrong."""
        if tuple(self) not in SCRYPT_ACCEPTED:
            raise VaultError(f"the header of {where} asks for scrypt n=2^{self.log2_n}, r={self.r}, p={self.p}, which "
                             f"{PROG} never writes: the header was changed or damaged; restore the vault "
                             "from a backup")


# Keys derived in this process, by (passphrase, salt, parameters): the cache-hit path, the resolution and the
# service each open the vault, and scrypt costs about 100 ms a time.
_derived: dict[tuple[str, bytes, tuple[int, int, int]], bytes] = {}


class KeySource:
    """A resolved key source. `kek(...)` returns the 32-byte key-encryption key."""

    def __init__(self, kind: int, description: str, raw_key: bytes | None = None, passphrase: str | None = None):
        self.kind = kind
        self.description = description
        self._raw_key = raw_key
        self._passphrase = passphrase

    def kek(self, salt: bytes, params: ScryptParams) -> bytes:
        if self.kind == RAW_KEY:
            assert self._raw_key is not None
            return self._raw_key
        import hashlib

        assert self._passphrase is not None
        memo = (self._passphrase, bytes(salt), (params.log2_n, params.r, params.p))
        if memo not in _derived:
            _derived[memo] = hashlib.scrypt(
                self._passphrase.encode("utf-8"),
                salt=salt,
                n=1 << params.log2_n,
                r=params.r,
                p=params.p,
                maxmem=SCRYPT_MEMORY_LIMIT + 1024 * 1024,
                dklen=crypto.KEY_BYTES,
            )
        return _derived[memo]


def _decode_key(text: str, where: str) -> bytes:
    # Canonical base64 only: decoded, it must encode back to exactly what was given (a2b_base64 alone skips
    # stray characters, and its strict_mode is Python 3.11's).
    try:
        given = text.strip().encode("ascii")
        key = binascii.a2b_base64(given)
        if binascii.b2a_base64(key, newline=False) != given:
            key = b""
    except (binascii.Error, ValueError, UnicodeEncodeError):
        key = b""
    if len(key) != crypto.KEY_BYTES:
        raise VaultError(f"{where} must hold a base64-encoded 32-byte key; generate one with: openssl rand -base64 32")
    return key


def key_file_path(home: Home) -> str:
    return os.path.join(home, KEY_FILE_NAME)


def _read_key_file(path: str) -> bytes:
    try:
        data = fsutil.read_private(path, 4096)
        text = None if data is None else data.decode("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise VaultError(f"cannot read the vault key file {path}: {getattr(exc, 'strerror', None) or 'not ASCII'}") from None
    if text is None:
        raise VaultError(
            f"the vault key file {path} is missing; restore it, or set {KEY_VARIABLE} to the key the vault was created with"
        )
    return _decode_key(text, f"the key file {path}")


def for_existing_vault(kind: int, home: Home, env: Mapping[str, str]) -> KeySource:
    """The key source able to open a vault whose header records `kind`."""
    if kind == PASSPHRASE:
        passphrase = env.get(PASSPHRASE_VARIABLE)
        if not passphrase:
            raise VaultError(f"the vault is sealed with a passphrase; set {PASSPHRASE_VARIABLE}")
        return KeySource(PASSPHRASE, f"passphrase from {PASSPHRASE_VARIABLE}", passphrase=passphrase)
    if env.get(PASSPHRASE_VARIABLE):
        raise VaultError(f"{PASSPHRASE_VARIABLE} is set, but the vault is sealed with a key, not a passphrase, so the "
                         f"passphrase would be ignored; unset {PASSPHRASE_VARIABLE}")
    if env.get(KEY_VARIABLE):
        return KeySource(RAW_KEY, f"key from {KEY_VARIABLE}", raw_key=_decode_key(env[KEY_VARIABLE], KEY_VARIABLE))
    path = key_file_path(home)
    return KeySource(RAW_KEY, f"key file {path}", raw_key=_read_key_file(path))


def describe_new(home: Home, env: Mapping[str, str]) -> str:
    """What for_new_vault would use, without creating anything."""
    if env.get(KEY_VARIABLE):
        return f"key from {KEY_VARIABLE}"
    if env.get(PASSPHRASE_VARIABLE):
        return f"passphrase from {PASSPHRASE_VARIABLE}"
    return f"key file {key_file_path(home)} (created on first write)"


def for_new_vault(home: Home, env: Mapping[str, str]) -> KeySource:
    """The key source a new vault is sealed with: DOCKER_CREDENTIAL_IDP_KEY, a passphrase, else a new key file."""
    if env.get(KEY_VARIABLE):
        return KeySource(RAW_KEY, f"key from {KEY_VARIABLE}", raw_key=_decode_key(env[KEY_VARIABLE], KEY_VARIABLE))
    if env.get(PASSPHRASE_VARIABLE):
        return KeySource(PASSPHRASE, f"passphrase from {PASSPHRASE_VARIABLE}", passphrase=env[PASSPHRASE_VARIABLE])
    path = key_file_path(home)
    if os.path.lexists(path):
        return KeySource(RAW_KEY, f"key file {path}", raw_key=_read_key_file(path))
    fsutil.check_home(home)
    fsutil.ensure_private_dir(home)
    key = crypto.random_key()
    # Whole or not at all (the caller holds vault.lock): a writer killed half-way must not leave an empty key file
    # that every later call refuses.
    fsutil.atomic_write(path, binascii.b2a_base64(key))
    return KeySource(RAW_KEY, f"key file {path}", raw_key=key)
