"""One body of logic for both sync and async callers: plans that yield effects.

Transactions, tasks and flows come in sync and async kinds whose logic is the same but for the
places where it waits: on the database, a lock, a hook, the user's function. Each such logic is
written once, as a generator (a *plan*) that yields an :class:`Effect` wherever it needs
something done and receives the effect's outcome back (or its exception, thrown in at the
``yield``, so the plan's ``try``/``except``/``finally`` work as in straight-line code).
:func:`run_plan` carries the effects out synchronously; :func:`arun_plan` awaits them, so the
async kind never blocks its event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable, Generator
from typing import Any, TypeVar

__all__ = [
    "Call",
    "Effect",
    "Plan",
    "Sleep",
    "arun_plan",
    "asettle",
    "in_event_loop",
    "run_coroutine",
    "run_plan",
    "settle",
]

T = TypeVar("T")


class Effect:
    """Something a plan needs done: :meth:`run` does it synchronously, :meth:`arun` without
    blocking the event loop."""

    def run(self) -> Any:
        """Do it, blocking."""
        raise NotImplementedError

    async def arun(self) -> Any:
        """Do it without blocking the event loop."""
        raise NotImplementedError


Plan = Generator[Effect, Any, T]


class Call(Effect):
    """Call a function (sync or async) with arguments; its result is the outcome."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]):
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def run(self) -> Any:
        return settle(self.fn(*self.args, **self.kwargs))

    async def arun(self) -> Any:
        return await asettle(self.fn(*self.args, **self.kwargs))


class Sleep(Effect):
    """Pause for ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def run(self) -> None:
        time.sleep(self.seconds)

    async def arun(self) -> None:
        await asyncio.sleep(self.seconds)


def run_plan(plan: Plan[T]) -> T:
    """Carry out ``plan``'s effects synchronously and return its result."""
    try:
        effect = next(plan)
        while True:
            try:
                outcome = effect.run()
            except BaseException as exc:  # the plan's own try/except decide
                effect = plan.throw(exc)
            else:
                effect = plan.send(outcome)
    except StopIteration as stop:
        result: T = stop.value
        return result


async def arun_plan(plan: Plan[T]) -> T:
    """Carry out ``plan``'s effects without blocking the event loop; return its result."""
    try:
        effect = next(plan)
        while True:
            try:
                outcome = await effect.arun()
            except BaseException as exc:  # the plan's own try/except decide
                effect = plan.throw(exc)
            else:
                effect = plan.send(outcome)
    except StopIteration as stop:
        result: T = stop.value
        return result


def settle(outcome: Any) -> Any:
    """The value of something that may be awaitable (an async method's coroutine), from sync
    code."""
    return run_coroutine(outcome) if inspect.isawaitable(outcome) else outcome


async def asettle(outcome: Any) -> Any:
    """The value of something that may be awaitable, from async code."""
    return await outcome if inspect.isawaitable(outcome) else outcome


def in_event_loop() -> bool:
    """Whether an event loop is running in this thread (so blocking here blocks it)."""
    # _get_running_loop() returns None outside a loop, where get_running_loop() would raise.
    return asyncio._get_running_loop() is not None


def run_coroutine(awaitable: Any) -> Any:
    """Run an awaitable to completion from synchronous code, in or out of an event loop.

    Outside a loop it runs on a new one here; inside one (this thread's loop is busy running
    the caller) it runs on a new loop in a helper thread, and the caller waits.
    """

    async def wrapper() -> Any:
        return await awaitable

    if not in_event_loop():
        return asyncio.run(wrapper())
    result: list[Any] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(wrapper()))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="sqlresults-coroutine")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]
