"""The process's standard streams at the file-descriptor level, so a closed stdin, a closed or full stdout and a
reader that went away are one line on stderr, not a traceback. Standard library `os` only: `get` goes through here."""

from __future__ import annotations

import os

# The descriptors the program reads and writes; tests that run cli.main in process point them at files (use).
STDIN, STDOUT, STDERR = 0, 1, 2


_closed_at_start: set[int] = set()


def guard_standard_descriptors() -> None:
    """Occupy a closed fd 0, 1 or 2 with /dev/null before anything else is opened, as OpenSSH's sanitise_stdfd
    does: otherwise the next file opened (a lock file, the vault) takes the number, and the answer — a secret —
    is written into it. A closed stdout is remembered, so that the answer is refused rather than lost."""
    for descriptor in (0, 1, 2):
        try:
            os.fstat(descriptor)
        except OSError:
            _closed_at_start.add(descriptor)
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != descriptor:  # the lowest free number is this one, unless a lower one was closed too
                os.dup2(opened, descriptor)
                os.close(opened)


def use(stdin: int, stdout: int, stderr: int) -> tuple[int, int, int]:
    """Read and write these descriptors from now on; returns the previous ones."""
    global STDIN, STDOUT, STDERR
    previous = STDIN, STDOUT, STDERR
    STDIN, STDOUT, STDERR = stdin, stdout, stderr
    return previous


class OutputFailed(Exception):
    """stdout could not take the answer (closed, a full disk, a reader that went away)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_stdin(limit: int) -> bytes:
    """At most `limit` bytes of stdin until end of file; a closed stdin reads as empty."""
    chunks = []
    left = limit
    while left > 0:
        try:
            chunk = os.read(STDIN, min(left, 65536))
        except InterruptedError:  # pragma: no cover - retried by Python itself since PEP 475
            continue
        except OSError:  # closed (EBADF) or not readable: no input
            break
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_all(descriptor: int, data: bytes) -> None:
    """Write every byte, or raise OutputFailed naming why not."""
    if descriptor in _closed_at_start:
        raise OutputFailed("it is closed")
    view = memoryview(data)
    while view:
        try:
            written = os.write(descriptor, view)
        except OSError as error:
            raise OutputFailed(error.strerror or type(error).__name__) from None
        view = view[written:]


def write_stdout(data: bytes) -> None:
    write_all(STDOUT, data)


def warn(line: str) -> None:
    """One line on stderr; a closed stderr is not worth failing over."""
    try:
        write_all(STDERR, (line + "\n").encode("utf-8", "replace"))
    except OutputFailed:
        pass


def silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's flush at exit cannot fail a second time."""
    if STDOUT != 1:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, STDOUT)
        os.close(devnull)
    except OSError:
        pass


def stdin_is_terminal() -> bool:
    return os.isatty(STDIN)
