"""Thread helpers shared by the lock and transaction tests."""

from __future__ import annotations

import threading
from typing import Any

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
