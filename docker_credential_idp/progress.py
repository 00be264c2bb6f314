"""Progress lines on stderr for the commands that may take a while (`source add`, `source sync`, `doctor --online`):
a quick run says nothing; once `after` seconds have passed, the step under way (shown by a timer, so a first slow
step is seen too) and every step after it, one line each. Stdout, and so `--json`, is never touched."""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

StartTimer = Callable[[float, Callable[[], None]], Callable[[], None]]  # (seconds, callback) -> cancel


def daemon_timer(seconds: float, callback: Callable[[], None]) -> Callable[[], None]:
    timer = threading.Timer(seconds, callback)
    timer.daemon = True
    timer.start()
    return timer.cancel


class Progress:
    """Each line is `LABEL: step`. `close` ends it: a step after that (say, after a failure, whose own error line
    is all that follows) prints nothing."""

    def __init__(self, write: Callable[[str], None], label: str, after: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, start_timer: Optional[StartTimer] = None) -> None:
        self.write, self.label, self.after, self.clock = write, label, after, clock
        self.start_timer = start_timer  # None: daemon_timer, looked up when the first step starts
        self.started = clock()
        self.current: Optional[str] = None
        self.shown = False  # the time has come: every step is printed from then on
        self.closed = False
        self.lock = threading.Lock()
        self.cancel: Optional[Callable[[], None]] = None

    def step(self, text: str) -> None:
        with self.lock:
            if self.closed:
                return
            self.current = text
            if self.shown or self.clock() - self.started >= self.after:
                self._show()
            elif self.cancel is None:
                self.cancel = (self.start_timer or daemon_timer)(max(0.0, self.after - (self.clock() - self.started)),
                                                                 self._time_passed)

    def _time_passed(self) -> None:
        with self.lock:
            if not self.closed and not self.shown:
                self._show()

    def _show(self) -> None:
        self.shown = True
        if self.current is not None:
            self.write(f"{self.label}: {self.current}")
            self.current = None

    def finish(self, line: str) -> None:
        """The last step of a run that succeeded, printed when the others were, with the time it all took."""
        with self.lock:
            if self.shown and not self.closed:
                self.write(f"{self.label}: {line} ({self.clock() - self.started:.1f} s)")
        self.close()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            if self.cancel is not None:
                self.cancel()
