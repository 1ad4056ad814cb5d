"""Jittered exponential backoff with a deadline: how sqlresults waits.

Used wherever sqlresults waits for something another process holds: SQLite's write lock,
PostgreSQL serialization conflicts, a key's lock. The pause doubles from ``first`` up to ``cap``
seconds and is drawn at random from the upper half of that window, so waiters that collided once
spread out instead of retrying in lockstep, and none waits much longer than the window.
"""

from __future__ import annotations

import random
import time

__all__ = ["Backoff"]


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
