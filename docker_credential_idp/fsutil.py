"""Private directories, atomic file replacement and exclusive locks: the only way this program writes files."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time

TYPE_CHECKING = False  # typing itself is not imported: it costs a cache hit several ms
if TYPE_CHECKING:
    from typing import Iterator, Optional, Union

    PathLike = Union[str, os.PathLike[str]]


class LockTimeout(Exception):
    """The lock stayed held by another process for longer than the caller would wait."""


def ensure_private_dir(path: PathLike) -> PathLike:
    """Create `path` (and parents) 0700 if missing. An existing directory keeps the mode its owner chose."""
    if not os.path.isdir(path):
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            from .errors import ConfigError
            from .paths import not_a_directory

            raise ConfigError(not_a_directory(path)) from None
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    return path


def atomic_write(path: PathLike, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` so that readers see the old or the new content, never a mix. The caller holds
    the lock that guards `path`.

    Temp file in the same directory, fsync, rename over the target, fsync the directory for the rename itself.
    """
    directory = os.path.dirname(os.fspath(path)) or "."
    ensure_private_dir(directory)
    name = os.path.basename(path)
    _sweep_temp_files(directory, name)
    temp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    os.close(fd)
    try:
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _sweep_temp_files(directory: str, name: str) -> None:
    """Remove temp files a killed writer left behind. Callers hold the file's lock, so no live writer owns one."""
    prefix = f".{name}."
    for entry in os.listdir(directory):
        if entry.startswith(prefix) and entry.endswith(".tmp"):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, entry))


def acquire_lock(path: PathLike, wait: Optional[float] = None) -> int:
    """An exclusive flock on `path` (created 0600), as an open descriptor: closing it, or the process ending,
    releases the lock. With `wait`, LockTimeout after that many seconds instead of queueing behind a stuck holder."""
    ensure_private_dir(os.path.dirname(os.fspath(path)) or ".")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if wait is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return fd
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(str(path)) from None
                time.sleep(0.02)
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def exclusive_lock(path: PathLike, wait: Optional[float] = None) -> Iterator[None]:
    """Hold acquire_lock(path, wait) for the duration of the block."""
    fd = acquire_lock(path, wait)
    try:
        yield
    finally:
        os.close(fd)  # closing drops the lock


def read_file(path: PathLike, limit: int) -> bytes | None:
    """The file's bytes, or None when it does not exist. Refuses files larger than `limit`."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        return None
    if len(data) > limit:
        raise OSError(f"{path} is larger than {limit} bytes")
    return data
