"""Sync and async transaction scenarios written once: a scenario is a coroutine function that
opens transactions through a :class:`Flavor`, and each flavor runs it its own way.

The sync flavor drives the coroutine by hand, in the test's own thread and with no event loop
running, so its transactions are exactly the sync code of a plain ``with`` block: its helpers
never suspend, and a scenario that does (awaits something really asynchronous) fails instead
of passing by accident. The async flavor runs the scenario on a fresh event loop with
``run_async`` (conftest.py), under the hang guard. Each helper checks that the call it settles
is of its flavor (a plain value for sync, an awaitable for async), so a sync method that
returned a coroutine, or an async one that did not, fails the test.

Scenarios with two parties (a writer holding a key's lock, a reader or writer waiting for it)
start the other party with :meth:`Flavor.start`: a thread for sync transactions, a task of the
same event loop for async ones, as Prefect's two halves of those tests do.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from conftest import run_async
from threads import JOIN_TIMEOUT, join, run_in_thread

from sqlresults.transactions import IsolationLevel

T = TypeVar("T")


@dataclass(frozen=True)
class Flavor:
    """One way of running a transaction scenario.

    Args:
        name: "sync" or "async" (the test id).
        transaction_class: The class a scenario builds transactions from.
        transaction: The context manager function (``transaction`` or ``atransaction``).
        isolation_level: The isolation level enum its transactions take (sqlresults' or
            Prefect's).
    """

    name: str
    transaction_class: Any
    transaction: Callable[..., Any]
    isolation_level: Any = IsolationLevel

    @property
    def is_async(self) -> bool:
        """Whether transactions are entered with ``async with``."""
        return self.name == "async"

    def __str__(self) -> str:
        return self.name

    def run(self, scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``scenario()`` this flavor's way and return what it returns."""
        if self.is_async:
            return run_async(scenario)
        coroutine = scenario()
        try:
            coroutine.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        coroutine.close()
        raise AssertionError("a sync scenario suspended: it awaited something asynchronous")

    def open(self, manager: Any) -> AbstractAsyncContextManager[Any]:
        """``async with flavor.open(txn) as txn:`` enters ``manager`` (a transaction, or what
        ``transaction()`` returns) with ``with`` or ``async with``."""
        return _open_async(manager) if self.is_async else _open_sync(manager)

    async def done(self, outcome: Any) -> Any:
        """The result of a call of a method both kinds have (``commit``, ``rollback``,
        ``read``, ``__aenter__``/``__enter__``): awaited for async, as it is for sync."""
        assert inspect.isawaitable(outcome) == self.is_async, f"{outcome!r} is not {self}"
        return await outcome if self.is_async else outcome

    async def enter(self, txn: Any) -> Any:
        """Enter ``txn`` by hand (``__enter__`` or ``__aenter__``)."""
        return await self.done(txn.__aenter__() if self.is_async else txn.__enter__())

    async def exit(self, txn: Any) -> Any:
        """Leave ``txn`` by hand, with no exception (``__exit__`` or ``__aexit__``)."""
        method = txn.__aexit__ if self.is_async else txn.__exit__
        return await self.done(method(None, None, None))

    async def read(self, store: Any, key: str) -> Any:
        """``store.read(key)``, or ``await store.aread(key)``."""
        return await self.done(store.aread(key) if self.is_async else store.read(key))

    def event(self) -> Any:
        """An event of this flavor: a ``threading.Event`` or an ``asyncio.Event``."""
        return asyncio.Event() if self.is_async else threading.Event()

    async def wait(self, event: Any) -> None:
        """Wait for ``event`` (from :meth:`event`); fail after the hang guard."""
        if self.is_async:
            await asyncio.wait_for(event.wait(), JOIN_TIMEOUT)
        else:
            assert event.wait(JOIN_TIMEOUT), "hang guard: the event was never set"

    async def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass (not a measurement: time for another party to get going)."""
        if self.is_async:
            await asyncio.sleep(seconds)
        else:
            time.sleep(seconds)

    def start(self, scenario: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        """Start ``scenario()`` alongside the caller: in a thread of its own (sync), or as a
        task of the running loop (async). :meth:`finish` waits for it."""
        if self.is_async:
            return asyncio.create_task(scenario())
        outcome: list[tuple[bool, Any]] = []

        def target() -> None:
            try:
                outcome.append((True, self.run(scenario)))
            except BaseException as exc:
                outcome.append((False, exc))

        return run_in_thread(target), outcome

    async def finish(self, started: Any) -> Any:
        """Wait for a scenario :meth:`start` started and return its result (or raise its
        error)."""
        if self.is_async:
            return await asyncio.wait_for(started, JOIN_TIMEOUT)
        thread, outcome = started
        join(thread)
        [(ok, value)] = outcome
        if not ok:
            raise value
        return value


@asynccontextmanager
async def _open_sync(manager: Any) -> AsyncIterator[Any]:
    with manager as entered:
        yield entered


@asynccontextmanager
async def _open_async(manager: Any) -> AsyncIterator[Any]:
    async with manager as entered:
        yield entered
