"""Thread helpers shared by the lock and transaction tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# A hang guard, not a measurement: a correct test never comes near it.
JOIN_TIMEOUT = 60.0


def run_in_thread(target: Any, *args: Any) -> threading.Thread:
    """Start ``target(*args)`` in a daemon thread and return the thread."""
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def join(thread: threading.Thread) -> None:
    """Wait for ``thread``; fail the test if it is still blocked after the hang guard."""
    thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive(), "hang guard: the thread is still waiting"


def wait_until(
    condition: Callable[[], T],
    watched: threading.Thread | None = None,
    outcome: object = None,
) -> T:
    """Poll ``condition`` until it returns something true, and return that.

    Fails the test if the hang guard passes first, or if ``watched`` (a thread that should
    still be waiting) ends first, showing ``outcome`` (what that thread left behind), which
    explains the failure better than a timeout would.
    """
    deadline = time.monotonic() + JOIN_TIMEOUT
    while not (result := condition()):
        assert watched is None or watched.is_alive(), f"the thread stopped waiting: {outcome!r}"
        assert time.monotonic() < deadline, "hang guard: the condition never came true"
        time.sleep(0.01)
    return result
