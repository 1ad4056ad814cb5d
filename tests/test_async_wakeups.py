"""Tests of sqlresults.async_wakeups: the LISTEN connection that every waiting coroutine of an
event loop shares (PostgreSQL only: SQLite has no notifications)."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import OwnSessions, run_async
from threads import JOIN_TIMEOUT

from sqlresults.async_database import AsyncDatabase, async_database
from sqlresults.async_wakeups import Wakeup, wakeups
from sqlresults.database import Database
from sqlresults.locking import SQLLockManager

pytestmark = pytest.mark.postgres


def aio_of(database: Database) -> AsyncDatabase:
    aio = async_database(database)
    assert aio is not None
    return aio


async def eventually(condition: object) -> None:
    """Wait (off the loop) until ``condition()`` is true; the hang guard fails otherwise."""
    deadline = time.monotonic() + JOIN_TIMEOUT
    while not await asyncio.to_thread(condition):  # type: ignore[arg-type]
        assert time.monotonic() < deadline, "hang guard: the condition never came true"
        await asyncio.sleep(0.05)


async def woken(wakeup: Wakeup) -> None:
    """A pause of an hour that must end early; the hang guard fails the test otherwise."""
    await asyncio.wait_for(wakeup.pause(3600), JOIN_TIMEOUT)


def test_waiters_share_one_listening_session(
    postgres_url: str, namespace: str, own_sessions: OwnSessions
) -> None:
    """100 coroutines waiting for 100 keys hold one LISTEN session between them (not one
    each), and it is closed once the last of them stops waiting."""
    manager = SQLLockManager(Database(own_sessions.url), namespace=namespace)
    holder = SQLLockManager(Database(postgres_url), namespace=namespace)
    keys = [f"k{i}" for i in range(100)]
    for key in keys:
        assert holder.acquire_lock(key, "holder1", hold_timeout=3600)

    async def scenario() -> tuple[int, list[bool]]:
        waiting = [asyncio.ensure_future(manager.await_for_lock(key)) for key in keys]
        await eventually(own_sessions.listening)
        await asyncio.sleep(0.2)
        listening = len(await asyncio.to_thread(own_sessions.listening))
        for key in keys:
            await asyncio.to_thread(holder.release_lock, key, "holder1")
        done = await asyncio.wait_for(asyncio.gather(*waiting), JOIN_TIMEOUT)
        await eventually(lambda: not own_sessions.listening())
        return listening, list(done)

    listening, done = run_async(scenario)
    assert listening == 1
    assert done == [True] * 100


def test_an_ended_listening_session_wakes_the_waiters_who_listen_again(
    postgres_url: str, namespace: str, own_sessions: OwnSessions
) -> None:
    """The server ends the listening session: every waiter is woken (a release may go unheard
    while nobody listens), the next pause listens on a new session, and an announcement made
    then reaches the waiter."""
    aio = aio_of(Database(own_sessions.url))
    holder = SQLLockManager(Database(postgres_url), namespace=namespace)
    assert holder.acquire_lock("k", "holder1", hold_timeout=3600)

    async def scenario() -> list[bool]:
        seen = []
        async with wakeups(aio, f"{namespace}/k") as wakeup:
            seen.append(wakeup.listening)
            ended = await asyncio.to_thread(own_sessions.terminate)
            # Woken by the dropped session; a pause that starts after the drop was noticed
            # listens again at once and returns (the waiter must check: a release may have
            # gone unheard), so this takes one pause or two.
            await woken(wakeup)
            if not wakeup.listening:
                await woken(wakeup)
            seen.append(wakeup.listening)
            assert set(await asyncio.to_thread(own_sessions.listening)).isdisjoint(ended)
            await asyncio.to_thread(holder.release_lock, "k", "holder1")
            await woken(wakeup)  # by the release announcement
        return seen

    assert run_async(scenario) == [True, True]
