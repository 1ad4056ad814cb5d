"""Lock-release announcements for coroutines: one LISTEN connection per event loop and database,
shared by every coroutine that waits for a lock there.

One job: let an awaiting lock waiter sleep until the key it waits for is announced free. The
sync waiters of :meth:`Database.wakeups` each LISTEN on a pooled connection of their own (a
thread is blocked anyway); 200 coroutines waiting for 200 keys share one connection here, whose
reader task hands each notification to the waiters of its payload
(:func:`~sqlresults.dialects.release_payload`). The connection is opened when the first waiter
of the loop subscribes and closed when the last one leaves.

Listening is an optimisation, as on the sync path: a waiter always checks the lock itself, and
pauses at most as long as its caller says (its fallback poll, or the holder's lease end, which
nobody announces). When the connection drops, every waiter is woken (a release may go unheard
while nobody listens) and the next pause listens again; while the server cannot be reached, or
if it refuses LISTEN (a hot standby), pauses are plain sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from sqlresults.async_database import AsyncDatabase, close_now
from sqlresults.errors import SQLResultsError

__all__ = ["Wakeup", "wakeups"]


@asynccontextmanager
async def wakeups(aio: AsyncDatabase, payload: str) -> AsyncIterator[Wakeup]:
    """Listen for announcements of ``payload`` for the duration of the block.

    The LISTEN is in place when the block starts (or the database cannot be reached, or
    refuses it): a waiter that checks its lock inside the block misses no release announced
    after that check.

    Args:
        aio: The database's asyncio path.
        payload: The announcement to wake up for.

    Yields:
        A :class:`Wakeup`, whose ``pause(seconds)`` ends early at the announcement.
    """
    listener = aio.loop_state(lambda: _Listener(aio))
    wakeup = Wakeup(listener)
    listener.subscribe(payload, wakeup.event)
    try:
        await listener.listen()
        yield wakeup
    finally:
        listener.unsubscribe(payload, wakeup.event)


class Wakeup:
    """One waiter's subscription (see :func:`wakeups`)."""

    def __init__(self, listener: _Listener) -> None:
        self._listener = listener
        #: Set when the payload is announced, or the listening connection dropped.
        self.event = asyncio.Event()

    @property
    def listening(self) -> bool:
        """Whether announcements can reach this waiter now (else pauses are plain sleeps)."""
        return self._listener.listening

    async def pause(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the announcement. Returns at once after listening
        again on a new connection (a release may have gone unheard meanwhile: check now)."""
        listener = self._listener
        if not listener.listening and not listener.refused and await listener.listen():
            self.event.clear()
            return
        with suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.event.wait()
        self.event.clear()


class _Listener:
    """The LISTEN connection of one event loop to one database, and its waiters.

    It keeps no reference to its loop while nobody waits (the state is kept in a weak mapping by
    loop): the reader task is dropped when it ends.
    """

    def __init__(self, aio: AsyncDatabase) -> None:
        self._aio = aio
        self._channel = aio.database.dialect.release_channel
        self._connection: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._opening: asyncio.Future[bool] | None = None
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._subscribers = 0
        #: LISTEN failed on a healthy connection (a hot standby refuses it): sleep only.
        self.refused = False

    @property
    def listening(self) -> bool:
        return self._connection is not None

    def subscribe(self, payload: str, event: asyncio.Event) -> None:
        self._waiters.setdefault(payload, set()).add(event)
        self._subscribers += 1

    def unsubscribe(self, payload: str, event: asyncio.Event) -> None:
        events = self._waiters.get(payload)
        if events is not None:
            events.discard(event)
            if not events:
                del self._waiters[payload]
        self._subscribers -= 1
        if self._subscribers == 0:
            self._stop()

    async def listen(self) -> bool:
        """LISTEN on a new connection unless already listening; False if that cannot be done
        now (an outage, a refusal). Concurrent callers share one attempt."""
        if self._connection is not None:
            return True
        if self.refused or self._channel is None:
            return False
        opening = self._opening
        if opening is not None:
            return await asyncio.shield(opening)
        opening = self._opening = asyncio.get_running_loop().create_future()
        try:
            listening = await self._open()
        except BaseException:
            opening.set_result(False)
            raise
        finally:
            self._opening = None
        if not opening.done():
            opening.set_result(listening)
        return listening

    async def _open(self) -> bool:
        aio = self._aio
        try:
            connection = await aio._connect()
        except SQLResultsError:
            return False  # cannot be reached now: the next pause tries again
        try:
            await connection.execute(f"LISTEN {self._channel}")
        except BaseException as exc:
            close_now(connection)
            if isinstance(exc, Exception) and not aio.database.dialect.is_disconnect(
                exc, connection
            ):
                self.refused = True
            if not isinstance(exc, Exception):
                raise
            return False
        if self._subscribers == 0:  # everyone left meanwhile
            close_now(connection)
            return False
        self._connection = connection
        self._reader = asyncio.get_running_loop().create_task(self._read(connection))
        return True

    async def _read(self, connection: Any) -> None:
        """Hand each announcement to its payload's waiters, until the connection drops or
        the last waiter leaves."""
        try:
            payloads = self._aio.database.dialect.notification_payloads(connection)
            async for payload in payloads:
                for event in self._waiters.get(payload, ()):
                    event.set()
        except Exception:
            pass  # dropped: the waiters are woken below and listen again at their next pause
        finally:
            if self._connection is connection:
                self._connection = None
            self._reader = None
            close_now(connection)
            for events in self._waiters.values():
                for event in events:
                    event.set()

    def _stop(self) -> None:
        reader, self._reader = self._reader, None
        connection, self._connection = self._connection, None
        if reader is not None:
            reader.cancel()  # its finally closes the connection
        elif connection is not None:
            close_now(connection)
