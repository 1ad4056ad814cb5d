"""Tests of sqlresults.async_database: the asyncio path of a PostgreSQL database. Statements give
what the sync path gives, driver errors are translated at the same boundary, the pool survives
dropped sessions and cancelled statements, and nothing of it is pickled or used on SQLite."""

from __future__ import annotations

import asyncio
import os
import pickle
import re
import traceback
import warnings
from typing import Any

import pytest
from conftest import OwnSessions, run_async
from sqlalchemy import func, literal_column, select, text
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Executable

from sqlresults import queries
from sqlresults.async_database import AsyncDatabase, async_database
from sqlresults.database import Database
from sqlresults.dialects import Dialect
from sqlresults.errors import InvalidArgumentError, StorageUnavailableError
from sqlresults.results import ResultStore


def _sleep_a_while(dialect: Dialect, now: ColumnElement[float]) -> Executable:
    """A statement that takes 5 s (to be cancelled long before)."""
    return select(func.pg_sleep(literal_column("5")))


def aio_of(database: Database) -> AsyncDatabase:
    aio = async_database(database)
    assert aio is not None
    return aio


def test_sqlite_has_no_asyncio_path(tmp_path: Any) -> None:
    """SQLite has no asyncio driver: its async callers keep worker threads."""
    assert async_database(Database(tmp_path / "r.db")) is None


@pytest.mark.postgres
class TestStatements:
    def test_rows_are_those_of_the_sync_path(self, postgres_url: str, namespace: str) -> None:
        """fetchone, fetchall and execute return what the sync methods return for the same
        statements and parameters."""
        database = Database(postgres_url)
        store = ResultStore(result_storage=database, namespace=namespace)
        store.write({"a": 1}, key="k1")
        store.write([2], key="k2")
        aio = aio_of(database)
        fetch = {"ns": namespace, "key": "k1"}
        keys = {"ns": namespace, "after": "", "prefix": "", "limit": 10}

        async def scenario() -> tuple[Any, ...]:
            return (
                await aio.fetchone(queries.record_fetch, dict(fetch)),
                await aio.fetchall(queries.record_keys, dict(keys)),
                await aio.fetchone(queries.record_exists, {"ns": namespace, "key": "nope"}),
                await aio.execute(queries.records_sweep, {"ns": namespace, "limit": 10}),
            )

        row, listed, missing, swept = run_async(scenario)
        assert row == database.fetchone(queries.record_fetch, dict(fetch))
        assert listed == database.fetchall(queries.record_keys, dict(keys)) == [("k1",), ("k2",)]
        assert missing is None
        assert swept == 0

    def test_a_write_transaction_commits_or_rolls_back(
        self, postgres_url: str, namespace: str
    ) -> None:
        """transaction() commits what its work did, and rolls it all back when the work
        raises."""
        database = Database(postgres_url)
        aio = aio_of(database)
        params = {"ns": namespace, "key": "k", "holder": "h", "hold": 60.0}

        async def take(transaction: Any) -> int:
            row = await transaction.fetchone(queries.lock_acquire, dict(params))
            return int(row[0])

        async def take_then_fail(transaction: Any) -> None:
            await transaction.fetchone(queries.lock_acquire, {**params, "key": "k2"})
            raise RuntimeError("work failed")

        async def scenario() -> int:
            fence = await aio.transaction(take)
            with pytest.raises(RuntimeError, match="work failed"):
                await aio.transaction(take_then_fail)
            return fence

        assert run_async(scenario) == 1
        state = {"ns": namespace}
        assert database.fetchone(queries.lock_state, {**state, "key": "k"}) is not None
        assert database.fetchone(queries.lock_state, {**state, "key": "k2"}) is None

    def test_every_event_loop_gets_connections_of_its_own(self, postgres_url: str) -> None:
        """asyncio.run() makes a new loop per call: each call works (a connection made on an
        earlier loop is never used on a later one), and ends with no warning about an
        unclosed connection (warnings are errors in this suite)."""
        aio = aio_of(Database(postgres_url))
        for _ in range(3):
            assert asyncio.run(aio.fetchone(queries.clock, {})) is not None


@pytest.mark.postgres
class TestErrors:
    def test_bad_input_is_invalid_argument(self, postgres_url: str) -> None:
        """A value psycopg refuses to send (a NUL in text) is InvalidArgumentError, as on the
        sync path; never psycopg's DataError."""
        aio = aio_of(Database(postgres_url))
        with pytest.raises(InvalidArgumentError, match="NUL"):
            run_async(lambda: aio.fetchone(queries.record_exists, {"ns": "a\x00b", "key": "k"}))

    def test_an_unreachable_server_is_an_outage(self, postgres_url: str) -> None:
        """A server nobody listens for is StorageUnavailableError, which the lock waits
        recognise as an outage (they ride it out); never psycopg's OperationalError."""
        database = Database(re.sub(r"port=\d+", "port=1", postgres_url))
        with pytest.raises(StorageUnavailableError) as caught:
            run_async(lambda: aio_of(database).fetchone(queries.clock, {}))
        assert database.is_outage(caught.value)

    def test_ended_sessions_are_replaced(
        self, postgres_url: str, own_sessions: OwnSessions
    ) -> None:
        """The server ends the pool's sessions (a restart, pg_terminate_backend): the next
        statement finds its connection dropped, reconnects and succeeds."""
        aio = aio_of(Database(own_sessions.url))

        async def scenario() -> Any:
            await asyncio.gather(*(aio.fetchone(queries.clock, {}) for _ in range(5)))
            ended = await asyncio.to_thread(own_sessions.terminate)
            assert ended
            return await aio.fetchone(queries.clock, {})

        assert run_async(scenario) is not None

    def test_a_cancelled_statement_leaves_the_pool_usable(self, postgres_url: str) -> None:
        """A statement cancelled mid-flight (a timeout around an await) closes its
        connection: its state is unknown. Later statements run on sound connections."""
        aio = aio_of(Database(postgres_url))

        async def scenario() -> list[Any]:
            for _ in range(3):
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(aio.fetchone(_sleep_a_while, {}), 0.2)
            return await asyncio.gather(*(aio.fetchone(queries.clock, {}) for _ in range(20)))

        assert all(row is not None for row in run_async(scenario))


@pytest.mark.postgres
def test_pickles_carry_no_asyncio_state(postgres_url: str, namespace: str) -> None:
    """A Database and a ResultStore that used the asyncio path still pickle (its pool and
    loops stay in the process), and the copy works on a loop of its own."""
    database = Database(postgres_url)
    store = ResultStore(result_storage=database, namespace=namespace)
    store.write("v", key="k")
    assert run_async(lambda: store.aread("k")).result == "v"
    copy = pickle.loads(pickle.dumps(store))
    assert run_async(lambda: copy.aread("k")).result == "v"


@pytest.mark.postgres
def test_a_forked_child_makes_its_own_connections(
    namespace: str, own_sessions: OwnSessions, tmp_path: Any
) -> None:
    """After fork() the child's async calls open connections of their own, and the parent's
    pooled session survives (the child never closes it: that would end the parent's
    session), so the parent's next call runs on the same server session."""
    store = ResultStore(result_storage=Database(own_sessions.url), namespace=namespace)
    store.write("v", key="k")
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(store.aread("k")).result == "v"
        before = own_sessions.pids()
        errors = tmp_path / "child-error.txt"
        with warnings.catch_warnings():
            # Python 3.12+ warns about fork() in a multi-threaded process.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 0
            try:
                assert asyncio.run(store.aread("k")).result == "v"
                asyncio.run(store.awrite("from child", key="child"))
            except BaseException:
                errors.write_text(traceback.format_exc())
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, errors.read_text()
        assert own_sessions.pids() >= before
        query = "SELECT pg_backend_pid()"

        async def backend_pid() -> int:
            aio = async_database(store.result_storage)
            assert aio is not None
            return int((await aio.fetchone(lambda dialect, now: text(query), {}))[0])

        assert loop.run_until_complete(backend_pid()) in before
        assert loop.run_until_complete(store.aread("child")).result == "from child"
    finally:
        loop.close()
