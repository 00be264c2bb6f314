"""What the program does first, before it may open the vault: no core dumps (a core holds the decrypted vault), not
dumpable (other processes of the same user cannot ptrace it or read its memory), and the vault's key variables taken
out of the environment every child inherits (a boto3 credential_process, a git credential helper, a user script)."""

from __future__ import annotations

import os
import sys

SECRET_VARIABLES = ("DOCKER_CREDENTIAL_IDP_KEY", "DOCKER_CREDENTIAL_IDP_PASSPHRASE")
PR_SET_PDEATHSIG, PR_SET_DUMPABLE = 1, 4
SIGKILL = 9


def harden() -> dict[str, str]:
    """Apply the above to this process; returns the environment for its own use (key variables included)."""
    env = dict(os.environ)
    for name in SECRET_VARIABLES:
        os.environ.pop(name, None)  # unsetenv(3): gone for every child from now on
    _no_core_dumps()
    return env


def no_core_dumps() -> None:
    """RLIMIT_CORE 0: a crash writes no core holding what this process read."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass


def _no_core_dumps() -> None:
    no_core_dumps()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None)
            libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
            if getattr(sys, "frozen", False):
                # The bundle's bootloader is the process callers see and kill; die with it, so that what we
                # started (a script, through its lifeline) goes too.
                parent = os.getppid()
                libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)
                if os.getppid() != parent:
                    os._exit(1)
        except (OSError, AttributeError):
            pass


def outlive_parent() -> None:
    """Undo the bundle's PR_SET_PDEATHSIG: the agent `agent start` leaves behind outlives the command that started
    it (it runs in its own session)."""
    if sys.platform.startswith("linux") and getattr(sys, "frozen", False):
        try:
            import ctypes

            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0)
        except (OSError, AttributeError):
            pass
