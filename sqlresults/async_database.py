"""The asyncio path of a PostgreSQL :class:`~sqlresults.database.Database`: statements awaited on
psycopg's ``AsyncConnection``, so a waiting call holds no thread.

One job: run the statements of :mod:`sqlresults.queries` from coroutines, with the guarantees of
the sync path. The same compiled SQL, the same parameters and the same "now" stamping; the same
error boundary (driver errors become :mod:`sqlresults.errors` exceptions through
:meth:`Database.translate`, busy errors are retried with jittered backoff for ``busy_timeout``
seconds, a dropped connection is reopened once); the same schema check before the first
statement.

Why psycopg directly and not SQLAlchemy's ``create_async_engine``: measured side by side (200
coroutines running 2,000 ``SELECT``s on 15 connections, median of 3 rounds on the 2-core
machine), SQLAlchemy's async engine managed about 1,250 statements/s and its pool with the
driver's own ``execute`` about 1,400, psycopg's ``AsyncConnection`` from a small pool of our own
about 8,000: SQLAlchemy's greenlet bridge and async pool cost more than the statements. The
sync path already runs its compiled statements on the DBAPI connection; this does the same.

Connections. Each event loop gets a pool of its own (asyncio objects belong to one loop, and
``asyncio.run()`` makes a new loop per call), at most :data:`POOL_SIZE` connections, made on
demand and kept; a connection idle for a while is pinged before use, one that moved a very large
value is closed rather than kept (libpq never shrinks its buffers), one whose operation was
cancelled is closed (its state is unknown). :meth:`AsyncDatabase.discard` (after a dropped
connection, or ``Database.close()``) retires every pooled connection. After ``fork()`` the child
makes its own: the parent's are set aside unclosed, as the sync path does.

SQLite has no asyncio path: its driver is synchronous, and wrapping it in threads is what
``asyncio.to_thread`` already does; :func:`async_database` returns None there and the callers keep
their worker threads.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any, TypeVar

from sqlresults.database import (
    Database,
    Params,
    Row,
    _ConnectionLostError,
    _moves_more_than,
)
from sqlresults.errors import SQLResultsError
from sqlresults.queries import Query
from sqlresults.schema import VERSION_TABLE

__all__ = ["POOL_SIZE", "AsyncDatabase", "AsyncWriteTransaction", "async_database", "close_now"]

T = TypeVar("T")

#: Connections one event loop may open to one database (the sync pool's 5 + 10 overflow).
POOL_SIZE = 15

# A pooled connection idle for longer than this (seconds) is pinged before use (as in
# sqlresults.database: a server restart or a firewall may have cut it meanwhile).
_PING_AFTER_IDLE = 30.0

_made_lock = threading.Lock()


def async_database(database: Database) -> AsyncDatabase | None:
    """The asyncio path of ``database``, made on first use; None on SQLite (whose callers run
    the sync methods in worker threads: SQLite has no asynchronous driver worth the name).

    Args:
        database: The database.
    """
    aio: AsyncDatabase | None = database._aio
    if aio is not None or not database.dialect.has_async_driver:
        return aio
    with _made_lock:
        aio = database._aio
        if aio is None:
            aio = database._aio = AsyncDatabase(database)
        return aio


class AsyncWriteTransaction:
    """Statements awaited inside one write transaction (see
    :meth:`AsyncDatabase.transaction`); the asyncio form of
    :class:`~sqlresults.database.WriteTransaction`."""

    __slots__ = ("_connection", "_database", "moved")

    def __init__(self, database: AsyncDatabase, connection: Any) -> None:
        self._database = database
        self._connection = connection
        #: Parameters and rows that went over the connection (see _moves_more_than).
        self.moved: list[Any] = []

    async def fetchone(self, query: Query, params: Params) -> Row | None:
        """Run ``query`` and return its first row, or None (``params["now"]`` is set)."""
        cursor = await self._database._execute(self._connection, query, params)
        row: Row | None = await cursor.fetchone()
        self.moved.append((params, row))
        return row

    async def execute(self, query: Query, params: Params) -> int:
        """Run ``query`` and return the number of rows it changed."""
        cursor = await self._database._execute(self._connection, query, params)
        self.moved.append(params)
        return await _changed_rows(cursor)


class AsyncDatabase:
    """Awaitable statements on a PostgreSQL :class:`~sqlresults.database.Database`.

    Made by :func:`async_database`, once per Database and process; it connects on first use.

    Args:
        database: The database (PostgreSQL).
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        engine = database.engine
        # SQLAlchemy's psycopg dialect turns the URL (host, port, query options such as
        # application_name, and its type adapters) into psycopg's connect arguments: the
        # sessions are set up as the sync path's are.
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        self._connect_args: tuple[Any, ...] = tuple(args)
        self._connect_kwargs: dict[str, Any] = dict(kwargs)
        self._options = database.execute_options
        self._buffer_limit = database.dialect.connection_buffer_limit()
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool] = (
            weakref.WeakKeyDictionary()
        )
        self._pools_lock = threading.Lock()
        self._loop_state: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._generation = 0

    def __repr__(self) -> str:
        return f"AsyncDatabase({self.database.display_url!r})"

    # -- statements ------------------------------------------------------------------------

    async def fetchone(self, query: Query, params: Params) -> Row | None:
        """Run one statement in autocommit mode and return its first row, or None.

        Args:
            query: The statement (from :mod:`sqlresults.queries`).
            params: Its named parameters; ``params["now"]`` is set as the sync path sets it.

        Raises:
            StorageUnavailableError: The database stayed busy for ``busy_timeout`` seconds or
                cannot be reached.
        """

        async def run(connection: Any) -> Row | None:
            cursor = await self._execute(connection, query, params)
            row: Row | None = await cursor.fetchone()
            return row

        return await self._run(run, params)

    async def fetchall(self, query: Query, params: Params) -> list[Row]:
        """Run one statement in autocommit mode and return all its rows (see
        :meth:`fetchone`)."""

        async def run(connection: Any) -> list[Row]:
            cursor = await self._execute(connection, query, params)
            rows: list[Row] = await cursor.fetchall()
            return rows

        return await self._run(run, params)

    async def execute(self, query: Query, params: Params) -> int:
        """Run one statement in autocommit mode and return the number of rows it changed (see
        :meth:`fetchone`)."""

        async def run(connection: Any) -> int:
            return await _changed_rows(await self._execute(connection, query, params))

        return await self._run(run, params)

    async def transaction(self, work: Callable[[AsyncWriteTransaction], Awaitable[T]]) -> T:
        """Await ``work`` inside one write transaction and commit it.

        A transaction that fails for a busy database (a serialization failure, a deadlock) is
        rolled back and ``work`` runs again, so it must not have effects outside the database.
        An exception from ``work`` rolls back and propagates.

        Args:
            work: Called with an :class:`AsyncWriteTransaction`; what it returns is returned.
        """
        moved: list[Any] = []

        async def attempt(connection: Any) -> T:
            transaction = AsyncWriteTransaction(self, connection)
            moved.append(transaction.moved)
            await connection.execute("BEGIN")
            try:
                result = await work(transaction)
                await connection.execute("COMMIT")
            except Exception:
                with suppress(Exception):  # the error that made us roll back is the news
                    await connection.execute("ROLLBACK")
                raise
            return result

        return await self._run(attempt, moved)

    async def _execute(self, connection: Any, query: Query, params: Params) -> Any:
        database = self.database
        sql = database.sql(query)
        database.stamp(params)
        return await connection.execute(sql, params, **self._options)

    # -- connections and errors ------------------------------------------------------------

    async def _run(self, operation: Callable[[Any], Awaitable[T]], params: Any = None) -> T:
        """Await ``operation`` on a pooled connection; retry it while the database is busy and
        once after a dropped connection; translate what is left (as ``Database._run``)."""
        database = self.database
        dialect = database.dialect
        wait = None
        reconnected = False
        while True:
            try:
                return await self._attempt(operation, params)
            except Exception as exc:
                failure = exc
            if isinstance(failure, _ConnectionLostError) and not reconnected:
                # A restarted server or a dropped network: every pooled connection is
                # suspect, so start afresh once, then give up.
                database._discard_connections()
                reconnected = True
                continue
            error = failure.error if isinstance(failure, _ConnectionLostError) else failure
            if isinstance(error, SQLResultsError) or not (
                database._is_driver_error(error) or dialect.is_bad_input(error)
            ):
                raise error
            busy = dialect.is_busy(error)
            if wait is None:
                wait = database._busy_backoff()
            if not busy or wait.expired():
                raise database.translate(error, waited=wait.waited if busy else None) from error
            await asyncio.sleep(wait.next_pause())

    async def _attempt(self, operation: Callable[[Any], Awaitable[T]], params: Any) -> T:
        """Await ``operation`` once on a pooled connection. A driver error that broke the
        connection is raised as ``_ConnectionLostError``; only here can the connection be asked
        whether it broke."""
        database = self.database
        if not database._schema_ready:
            await self._check_schema()
        pool = self._pool()
        connection, made_in = await pool.checkout(self._connect, self._generation)
        keep = False
        try:
            result = await operation(connection)
            # A connection that moved a huge value keeps buffers of its size: close it.
            keep = not _moves_more_than(self._buffer_limit, params, result)
            return result
        except Exception as exc:
            if database._is_driver_error(exc) and database.dialect.is_disconnect(exc, connection):
                raise _ConnectionLostError(exc) from exc
            keep = True  # an error of the statement leaves an autocommit connection usable
            raise
        finally:
            # Cancelled mid-statement (BaseException): the connection's state is unknown.
            pool.checkin(connection, made_in, keep and not connection.closed, self._generation)

    async def _connect(self) -> Any:
        """Open a connection (autocommit, as the sync path's).

        Raises:
            StorageUnavailableError: The server cannot be reached (an outage to lock waits:
                its cause is the driver's error, see ``Database.is_outage``).
        """
        database = self.database
        try:
            return await database.dialect.async_connect(self._connect_args, self._connect_kwargs)
        except Exception as exc:
            if not database._is_driver_error(exc):
                raise
            raise database.translate(exc) from exc

    async def _check_schema(self) -> None:
        """Check the schema revision on the asyncio path; anything but the current revision
        (a missing table, an old schema, a failure) is left to ``Database.ensure_schema``,
        which migrates or refuses, once per process, in a worker thread."""
        database = self.database
        revision = None
        pool = self._pool()
        connection, made_in = await pool.checkout(self._connect, self._generation)
        keep = False
        try:
            cursor = await connection.execute(f"SELECT version_num FROM {VERSION_TABLE}")
            row = await cursor.fetchone()
            revision = None if row is None else str(row[0])
            keep = True
        except Exception as exc:
            if not database._is_driver_error(exc):
                raise
            keep = not database.dialect.is_disconnect(exc, connection)
        finally:
            pool.checkin(connection, made_in, keep and not connection.closed, self._generation)
        if not database.accept_schema_revision(revision):
            # Rare (first use of a new database, or an upgrade): the sync path's migration.
            await asyncio.to_thread(database.ensure_schema)

    def _pool(self) -> _Pool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            with self._pools_lock:
                pool = self._pools.get(loop)
                if pool is None:
                    pool = self._pools[loop] = _Pool(POOL_SIZE)
                    # Close the idle connections when the loop is gone (asyncio.run() ends).
                    weakref.finalize(loop, pool.close_idle)
        return pool

    def loop_state(self, make: Callable[[], T]) -> T:
        """The running event loop's state of another asyncio module (its LISTEN connection,
        see :mod:`sqlresults.async_wakeups`), made by ``make()`` on first use; it goes with
        the loop. One module may use this."""
        loop = asyncio.get_running_loop()
        with self._pools_lock:
            state = self._loop_state.get(loop)
            if state is None:
                state = self._loop_state[loop] = make()
        result: T = state
        return result

    def discard(self) -> None:
        """Retire every pooled connection, of every event loop: each is closed when its loop
        next touches it (another loop's connections cannot be closed from here). Safe from any
        thread."""
        self._generation += 1


class _Pool:
    """The connections of one event loop to one database.

    Holds no reference to its loop (the pools are kept in a weak mapping by loop): waiters are
    futures, referenced only while they wait.

    Args:
        size: The most connections open at once.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._pid = os.getpid()
        self._open = 0
        self._idle: list[tuple[Any, int, float]] = []  # (connection, generation, idle since)
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def checkout(
        self, connect: Callable[[], Awaitable[Any]], generation: int
    ) -> tuple[Any, int]:
        """A connection of the current ``generation`` and that generation: an idle one
        (pinged if idle for long), a new one while fewer than ``size`` are open, else the next
        one checked in."""
        while True:
            while self._idle:
                connection, made_in, since = self._idle.pop()  # LIFO: the warmest first
                if made_in != generation or connection.closed:
                    self._close(connection)
                    continue
                if time.monotonic() - since >= _PING_AFTER_IDLE:
                    try:
                        await connection.execute("SELECT 1")
                    except Exception:
                        self._close(connection)
                        continue  # gone while idle: take another
                    except BaseException:
                        self._close(connection)
                        raise
                return connection, made_in
            if self._open < self._size:
                self._open += 1
                try:
                    return await connect(), generation
                except BaseException:
                    self._open -= 1
                    self._wake_one()
                    raise
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                with suppress(ValueError):
                    self._waiters.remove(waiter)
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken, then cancelled: pass the turn on
                raise

    def checkin(self, connection: Any, made_in: int, keep: bool, generation: int) -> None:
        """Give back ``connection``, made in generation ``made_in``: kept for reuse if
        ``keep`` and still of the current ``generation``, else closed."""
        if keep and made_in == generation:
            self._idle.append((connection, made_in, time.monotonic()))
        else:
            self._close(connection)
        self._wake_one()

    def _close(self, connection: Any) -> None:
        self._open -= 1
        close_now(connection)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close_idle(self) -> None:
        """Close the idle connections (the loop is gone; checked-out ones went with it)."""
        if os.getpid() != self._pid:
            return  # a forked child: they are the parent's sessions (see the module docstring)
        idle, self._idle = self._idle, []
        for connection, _, _ in idle:
            self._close(connection)


def close_now(connection: Any) -> None:
    """Close a connection without awaiting: libpq's ``PQfinish`` (psycopg's ``close()`` does
    the same, and needs the connection's loop, which may be gone)."""
    with suppress(Exception):
        connection.pgconn.finish()


async def _changed_rows(cursor: Any) -> int:
    if cursor.description is not None:
        return len(await cursor.fetchall())
    rowcount: int = cursor.rowcount
    return rowcount
