"""A call bounded in wall-clock time: socket timeouts bound each read, not a server that trickles its answer or an
SDK that retries on its own, so the whole call runs in a thread that is given up on at the deadline."""

from __future__ import annotations

import threading

TYPE_CHECKING = False  # typing is not imported on the fetch path
if TYPE_CHECKING:
    from typing import Callable, TypeVar

    T = TypeVar("T")


class TimedOut(Exception):
    """The call had not returned when its time was up (its thread is abandoned; it is a daemon)."""


def call_within(seconds: float, work: Callable[[], T]) -> T:
    """work()'s result, or whatever it raised, as long as it ends within `seconds`; TimedOut otherwise."""
    outcome: list[tuple[bool, object]] = []

    def run() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as error:  # noqa: BLE001 - carried to the caller's thread
            outcome.append((False, error))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if not outcome:
        raise TimedOut()
    finished, value = outcome[0]
    if not finished:
        assert isinstance(value, BaseException)
        raise value
    return value  # type: ignore[return-value]
