"""Every file this program keeps in its home, checked as OpenSSH's StrictModes checks ~/.ssh: the home and each
directory above it owned by us or root and writable by nobody else (a sticky directory such as /tmp excepted), our
files ours, regular, not readable by others, opened without following a link or blocking on a FIFO, read with a
bound, written atomically, locked with a bounded wait. Standard library `os`, `stat` and `fcntl` only: the cache-hit
path goes through here."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time

from .errors import PROG, NotRegularFile, UnsafePath

TYPE_CHECKING = False  # typing itself is not imported: it costs a cache hit several ms
if TYPE_CHECKING:
    from typing import Optional, Union

    PathLike = Union[str, os.PathLike[str]]

DEFAULT_LOCK_WAIT = 10.0  # seconds any lock is waited for; a stopped process holding one must not hang every pull
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_checked_homes: set[str] = set()


class LockTimeout(Exception):
    """The lock stayed held by another process for longer than the caller would wait."""


def lock_busy(path: PathLike, wait: float = DEFAULT_LOCK_WAIT) -> str:
    """The one line for a lock another process has held too long."""
    return (f"another process has held {path} for more than {wait:g} s (a stopped {PROG}?); try again, "
            f"or find it with: fuser {path}")


# -- what a refusal says ---------------------------------------------------------------------------------------------


def _owner(uid: int) -> str:
    try:
        import pwd

        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _me() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())


def _refuse(path: PathLike, info: os.stat_result, why: str, fix: str) -> UnsafePath:
    return UnsafePath(f"refusing {path}: {why} (owned by {_owner(info.st_uid)}, mode "
                      f"{stat.S_IMODE(info.st_mode):04o}); another user could have planted or changed it; fix: {fix}")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "symbolic link"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISDIR, "directory"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


# -- the home --------------------------------------------------------------------------------------------------------


def check_home(home: PathLike) -> None:
    """Refuse a home another user could have planted or can change. Checked once per process."""
    path = os.fspath(home)
    if path in _checked_homes:
        return
    if not os.path.isabs(path):
        raise UnsafePath(f"the home {path!r} is not an absolute path; set DOCKER_CREDENTIAL_IDP_HOME to one")
    real = os.path.realpath(path)
    me = os.geteuid()
    try:
        info = os.stat(real)
    except FileNotFoundError:
        info = None
    except NotADirectoryError:
        from .paths import not_a_directory

        raise UnsafePath(not_a_directory(path)) from None
    if info is not None:
        if not stat.S_ISDIR(info.st_mode):
            from .paths import not_a_directory

            raise UnsafePath(not_a_directory(path))
        if info.st_uid != me:
            raise _refuse(path, info, "the home is another user's", f"chown -R {_me()} {path}")
        if info.st_mode & 0o022:
            raise _refuse(path, info, "the home is writable by group or others", f"chmod 700 {path}")
    _check_ancestors(real, me)
    _checked_homes.add(path)


def _check_ancestors(real: str, me: int) -> None:
    """Each directory above: owned by us or root, and writable by nobody else unless sticky (then others cannot
    rename or remove the entry of ours, or root's, beneath it)."""
    parent = os.path.dirname(real)
    while True:
        try:
            info = os.stat(parent)
        except FileNotFoundError:
            info = None
        if info is not None:
            if info.st_uid not in (0, me):
                raise _refuse(parent, info, "a directory above the home is another user's",
                              f"move DOCKER_CREDENTIAL_IDP_HOME out of {parent}")
            if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
                raise _refuse(parent, info, "a directory above the home is writable by others and not sticky",
                              f"chmod go-w {parent}, or move DOCKER_CREDENTIAL_IDP_HOME elsewhere")
        if parent == os.path.dirname(parent):
            return
        parent = os.path.dirname(parent)


def ensure_private_dir(path: PathLike, link_ok: bool = True) -> PathLike:
    """Create `path` and every missing directory above it 0700, whatever the umask; refuse a file in the way, and a
    link at `path` unless `link_ok`. An existing directory keeps the mode its owner chose."""
    from .paths import not_a_directory

    text = os.fspath(path)
    missing = []
    probe = text
    while True:
        try:
            info = os.lstat(probe)
        except FileNotFoundError:
            missing.append(probe)
            if probe == os.path.dirname(probe):
                break
            probe = os.path.dirname(probe)
            continue
        except NotADirectoryError:
            raise UnsafePath(not_a_directory(text)) from None
        if probe == text and stat.S_ISLNK(info.st_mode) and not link_ok:
            raise _refuse(text, info, "it is a symbolic link, not a directory", f"rm {text}")
        if not stat.S_ISDIR(os.stat(probe).st_mode):
            raise UnsafePath(not_a_directory(probe))
        break
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue  # another process made it first
        except NotADirectoryError:
            raise UnsafePath(not_a_directory(directory)) from None
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
    return path


# -- reading ---------------------------------------------------------------------------------------------------------


def read_private(path: PathLike, limit: int, secret: bool = True) -> Optional[bytes]:
    """A file of ours: None when it does not exist. Refused when it is a link or not a regular file (a FIFO would
    block), another user's, or — a `secret` — open to group or others. Larger than `limit`: OSError(EFBIG)."""
    try:
        descriptor = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise _refuse(path, os.lstat(path), "it is a symbolic link",
                          f"replace it with the file itself: rm {path}") from None
        raise
    try:
        info = os.fstat(descriptor)
        check_ours(path, info, secret)
        chunks = []
        left = limit + 1
        while left > 0:
            chunk = os.read(descriptor, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(descriptor)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes")
    return data


def check_ours(path: PathLike, info: os.stat_result, secret: bool = True) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise NotRegularFile(f"{path} is a {_kind(info.st_mode)}, not a regular file; remove it (rm -r {path}) and "
                             f"let {PROG} write it again")
    if info.st_uid != os.geteuid():
        raise _refuse(path, info, "it is another user's", f"remove it if you did not make it, else chown {_me()} {path}")
    if secret and info.st_mode & 0o077:
        raise _refuse(path, info, "it is open to group or others", f"chmod 600 {path}")


# -- writing ---------------------------------------------------------------------------------------------------------


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
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.fchmod(descriptor, mode)
        view = memoryview(data)
        while view:
            written = os.write(descriptor, view)
            view = view[written:]
        os.fsync(descriptor)
        os.close(descriptor)
        descriptor = -1
        os.replace(temp, path)
    except BaseException:
        if descriptor >= 0:
            os.close(descriptor)
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    directory_descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(directory_descriptor)
    finally:
        os.close(directory_descriptor)


def _sweep_temp_files(directory: str, name: str) -> None:
    """Remove temp files a killed writer left behind. Callers hold the file's lock, so no live writer owns one."""
    prefix = f".{name}."
    for entry in os.listdir(directory):
        if entry.startswith(prefix) and entry.endswith(".tmp"):
            try:
                os.unlink(os.path.join(directory, entry))
            except OSError:
                pass


def cannot_write(error: OSError, home: PathLike) -> str:
    """The one line for a write in the home that the system refused: which path, why, and the fix."""
    from .paths import HOME_VARIABLE

    home = os.fspath(home)
    path = os.fspath(error.filename) if error.filename else home
    elsewhere = f"or set {HOME_VARIABLE} to a directory you can write"
    if error.errno == errno.EROFS and not os.path.isdir(home):
        return f"cannot create {path}: it is on a read-only file system; remount it read-write, {elsewhere}"
    if error.errno == errno.EROFS:
        return (f"cannot write in {home}: it is on a read-only file system (get still answers from it, but nothing "
                f"can change it); remount it read-write, {elsewhere}")
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"cannot write in {home}: {error.strerror}; free some space there and run the command again"
    if error.errno in (errno.EACCES, errno.EPERM):
        if not os.path.isdir(home):  # making the home (or a directory above it) was refused
            return (f"cannot create {path}: permission denied; create the home for this user (as root: install -d "
                    f"-m 700 -o {_me()} {home}), {elsewhere}")
        return f"cannot write in {home}: permission denied; let its owner write it (chmod u+w {home}), {elsewhere}"
    return f"cannot write in {home}: {error.strerror or error}; {elsewhere}"


# -- locking ---------------------------------------------------------------------------------------------------------


def acquire_lock(path: PathLike, wait: float = DEFAULT_LOCK_WAIT) -> int:
    """An exclusive flock on `path` (a regular file of ours, created 0600, never through a link), as an open
    descriptor: closing it, or the process ending, releases the lock. LockTimeout after `wait` seconds instead of
    queueing behind a stuck holder."""
    ensure_private_dir(os.path.dirname(os.fspath(path)) or ".")
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise _refuse(path, os.lstat(path), "it is a symbolic link", f"rm {path}") from None
        raise
    try:
        check_ours(path, os.fstat(descriptor), secret=False)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return descriptor
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(str(path)) from None
                time.sleep(0.02)
    except BaseException:
        os.close(descriptor)
        raise


class exclusive_lock:  # noqa: N801 - used as `with exclusive_lock(path):`, like the function it replaced
    """Hold acquire_lock(path, wait) for the duration of a `with` block (no contextlib: the cache-hit path)."""

    def __init__(self, path: PathLike, wait: float = DEFAULT_LOCK_WAIT) -> None:
        self.path, self.wait, self.descriptor = path, wait, -1

    def __enter__(self) -> None:
        self.descriptor = acquire_lock(self.path, self.wait)

    def __exit__(self, *exc: object) -> None:
        os.close(self.descriptor)  # closing drops the lock


def read_file(path: PathLike, limit: int) -> bytes | None:
    """A file outside our home (docker's config.json): followed through links as docker does, bounded, never
    blocking on a FIFO. None when it does not exist."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"a {_kind(mode)}, not a regular file")
        data = b""
        while len(data) <= limit:
            chunk = os.read(descriptor, 1 << 20)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(descriptor)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes")
    return data
