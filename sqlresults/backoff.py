"""Jittered exponential backoff with a deadline, and retry delays: how sqlresults waits.

Used wherever sqlresults waits for something another process holds: SQLite's write lock,
PostgreSQL serialization conflicts, a key's lock. The pause doubles from ``first`` up to ``cap``
seconds and is drawn at random from the upper half of that window, so waiters that collided once
spread out instead of retrying in lockstep, and none waits much longer than the window.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

__all__ = ["Backoff", "RetryDelay", "exponential_backoff", "retry_delay"]

#: How long a task or flow waits before a retry: seconds, one value per retry (the last one
#: repeating), or Prefect's form, a function of the number of retries returning such a list
#: (``exponential_backoff(10)``).
RetryDelay = float | int | list[float] | list[int] | Callable[[int], list[float] | float]


class Backoff:
    """The pauses of one wait.

    Args:
        timeout: Seconds the whole wait may take; None waits forever.
        first: The first pause window, in seconds.
        cap: The largest pause window, in seconds.
    """

    __slots__ = ("_cap", "_window", "deadline", "started")

    def __init__(self, timeout: float | None, *, first: float, cap: float) -> None:
        self.started = time.monotonic()
        self.deadline = None if timeout is None else self.started + timeout
        self._window = first
        self._cap = cap

    @property
    def waited(self) -> float:
        """Seconds since the wait began."""
        return time.monotonic() - self.started

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.deadline is not None and time.monotonic() >= self.deadline

    def next_pause(self) -> float:
        """The next pause in seconds (never past the deadline); widens the window."""
        pause = random.uniform(self._window / 2, self._window)
        self._window = min(self._window * 2, self._cap)
        if self.deadline is not None:
            pause = min(pause, max(0.0, self.deadline - time.monotonic()))
        return pause

    def sleep(self) -> None:
        """Sleep for :meth:`next_pause` seconds."""
        time.sleep(self.next_pause())


def retry_delay(delay: RetryDelay | None, retry: int, retries: int) -> float:
    """Seconds to wait before retry number ``retry`` (0 for the first) of ``retries``.

    Args:
        delay: A :data:`RetryDelay`, or None for no wait.
        retry: Which retry comes next, counted from 0.
        retries: How many retries there are in all.
    """
    if callable(delay):
        delay = delay(retries)
    if delay is None:
        return 0.0
    if isinstance(delay, list):
        return float(delay[min(retry, len(delay) - 1)]) if delay else 0.0
    return float(delay)


def exponential_backoff(backoff_factor: float) -> Callable[[int], list[float]]:
    """Retry delays that double: ``backoff_factor``, then twice that, and so on (Prefect's
    ``exponential_backoff``, for ``retry_delay_seconds``).

    Args:
        backoff_factor: The first delay, in seconds.
    """

    def delays(retries: int) -> list[float]:
        return [backoff_factor * 2**retry for retry in range(retries)]

    return delays
