"""``Database``: the one handle on a result database: its engine, dialect, connections and schema.

Connections. On SQLite each thread uses one DBAPI connection of its own, opened on first use and
kept, so the hot paths (exists, read, write, lock) cost one driver call and no pool checkout. On
PostgreSQL each operation checks a connection out of SQLAlchemy's pool, so idle threads hold no
server session; a connection idle for a while is pinged before use. After ``fork()`` the child
never touches the parent's connections: they are set aside unclosed (closing them could disturb
the parent's session) and the child opens its own. A SQLite file deleted or replaced while open is
noticed after the next write (one ``os.stat``; reads check every 50 ms at most): that thread's
connection is dropped and the operation raises rather than acknowledge a write the file at the
path will never hold. Coroutines on PostgreSQL use connections of their own, on psycopg's asyncio
driver (:mod:`sqlresults.async_database`); on SQLite they run these methods in worker threads.

Errors. Driver and SQLAlchemy exceptions are translated into :mod:`sqlresults.errors` here and
nowhere else. "Busy" errors (SQLite's write lock, PostgreSQL serialization failures and
deadlocks) are retried with jittered exponential backoff for up to ``busy_timeout`` seconds, and a
dropped PostgreSQL connection (one the driver reports broken) is reopened once; everything else is
raised at once. A value the driver refuses to send (a NUL in PostgreSQL text, a lone surrogate) is
bad input, ``InvalidArgumentError``, and leaves the connections alone. Lock waits ride out longer
outages themselves (:meth:`Database.is_outage` tells an outage apart; see
:mod:`sqlresults.locking`), and the connection a waiter LISTENs on is reopened after it drops
(:meth:`Database.wakeups`).

Schema. The first connection a process opens checks the schema revision; an old or missing
schema is upgraded when auto-migration is on and refused with :class:`SchemaOutOfDateError`
(naming ``sqlresults migrate``) otherwise.
"""

from __future__ import annotations

import errno
import os
import shlex
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, NoSuchModuleError, SQLAlchemyError

from sqlresults import migrations
from sqlresults.backoff import Backoff
from sqlresults.dialects import Dialect, sqlite_file_url
from sqlresults.errors import (
    ConfigurationError,
    DamagedDatabaseError,
    InvalidArgumentError,
    ReadOnlyStorageError,
    SchemaOutOfDateError,
    SQLResultsError,
    StorageUnavailableError,
)
from sqlresults.queries import Query
from sqlresults.schema import SCHEMA_REVISION, VERSION_TABLE
from sqlresults.settings import Settings, get_settings, hide_password, hide_secrets, url_secrets

__all__ = ["Database", "WriteTransaction", "parse_url", "resolve_database"]

T = TypeVar("T")
Row = tuple[Any, ...]
#: Named statement parameters; the database sets ``"now"`` itself (:meth:`Database.stamp`).
Params = MutableMapping[str, Any]

# Backoff between retries of a busy database, in seconds (see sqlresults.backoff). SQLite's
# write lock is held for tens of µs per transaction: the first retries come that soon.
_FIRST_BACKOFF = 0.00005
_MAX_BACKOFF = 0.05

# Seconds between checks, after reads, that a SQLite file was not deleted or replaced while
# open (writes are always checked).
_READ_FILE_CHECK_INTERVAL = 0.05

# A pooled connection idle for longer than this (seconds) is pinged before use.
_PING_AFTER_IDLE = 30.0

_live_databases: weakref.WeakSet[Database] = weakref.WeakSet()
# Connections inherited across fork() are kept alive here, never closed, in the child.
_inherited_connections: list[Any] = []


class WriteTransaction:
    """Statements run inside one write transaction (see :meth:`Database.transaction`)."""

    __slots__ = ("_connection", "_database", "moved")

    def __init__(self, database: Database, connection: Any) -> None:
        self._database = database
        self._connection = connection
        #: Parameters and rows that went over the connection (see Database._attempt).
        self.moved: list[Any] = []

    def fetchone(self, query: Query, params: Params) -> Row | None:
        """Run ``query`` and return its first row, or None (``params["now"]`` is set to the
        time the statement runs, see :meth:`Database.fetchone`)."""
        database = self._database
        sql = database._statements.get(query) or database.sql(query)
        database.stamp(params)
        cursor = self._connection.execute(sql, params, **database.execute_options)
        row: Row | None = cursor.fetchone()
        self.moved.append((params, row))
        return row

    def execute(self, query: Query, params: Params) -> int:
        """Run ``query`` and return the number of rows it changed."""
        database = self._database
        sql = database._statements.get(query) or database.sql(query)
        database.stamp(params)
        cursor = self._connection.execute(sql, params, **database.execute_options)
        self.moved.append(params)
        return _changed_rows(cursor)


class Database:
    """A result database: an embedded SQLite file or a PostgreSQL database.

    Creating a ``Database`` validates the URL and the driver but does not connect; the first
    operation does (and checks or migrates the schema).

    Args:
        url: A SQLAlchemy URL (``sqlite:///results.db``, ``postgresql+psycopg://…``), a
            ``pathlib.Path`` to a SQLite file, or None for ``SQLRESULTS_DATABASE_URL`` (default:
            ``~/.sqlresults/results.db``).
        auto_migrate: Upgrade an old or missing schema on first use. None follows
            ``SQLRESULTS_AUTO_MIGRATE``, whose default is yes for SQLite and no for PostgreSQL.
        clock: Returns the current time in seconds since the epoch; it decides expiry and leases
            on SQLite, and on PostgreSQL too when given (by default PostgreSQL uses the server's
            clock, so machines with skewed clocks agree). Tests pass a fake clock.
        settings: Settings to use instead of :func:`~sqlresults.settings.get_settings`.

    Raises:
        ConfigurationError: The URL cannot be parsed, names an unsupported database, or needs a
            driver that is not installed.
    """

    def __init__(
        self,
        url: str | URL | os.PathLike[str] | None = None,
        *,
        auto_migrate: bool | None = None,
        clock: Callable[[], float] | None = None,
        settings: Settings | None = None,
    ) -> None:
        settings = settings if settings is not None else get_settings()
        self._url = parse_url(url if url is not None else settings.url)
        self._display_url = hide_password(self._url)
        # Scrubbed out of driver messages, which may echo part of a connection string.
        self._secrets = url_secrets(self._url)
        self.dialect = Dialect(self._url)
        if self.dialect.is_memory:
            # Every thread has its own connection; a uniquely named shared-cache memory
            # database lets them see the same data, and the anchor connection keeps it alive.
            self._url = _SecretsHiddenURL(
                *make_url(
                    f"sqlite:///file:sqlresults-{uuid.uuid4().hex}?mode=memory&cache=shared&uri=true"
                )
            )
            self.dialect = Dialect(self._url)
        # URL.set() ignores None ("leave unchanged"): the password is dropped by rebuilding.
        self._identity = self._url._replace(password=None).render_as_string(hide_password=False)
        if auto_migrate is None:
            auto_migrate = settings.auto_migrate
        if auto_migrate is None:
            auto_migrate = self.dialect.is_sqlite
        self.auto_migrate = auto_migrate
        self.clock: Callable[[], float] = clock if clock is not None else time.time
        self.busy_timeout = settings.busy_timeout
        self._synchronous = settings.sqlite_synchronous
        self._uses_server_clock = clock is None and self.dialect.uses_server_clock
        self._now = self.dialect.now(use_server_clock=self._uses_server_clock)
        self._stamp_clock = None if self._uses_server_clock else self.clock
        self._statements: dict[Query, str] = {}
        self._per_thread = self.dialect.is_sqlite
        # SQLite files (not memory databases) are watched for deletion or replacement.
        self._watch_file = self.dialect.sqlite_path is not None
        self._rows_changed = self.dialect.change_counter()
        self.execute_options = self.dialect.execute_options()
        self._buffer_limit = self.dialect.connection_buffer_limit()
        self._local = threading.local()
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self.engine = self._create_engine()
        # Closes pooled connections when the Database is garbage collected without close().
        weakref.finalize(self, self.engine.dispose)
        self._anchor = self._open_connection() if self.dialect.is_memory else None
        # The asyncio path on PostgreSQL, made on first use by
        # :func:`sqlresults.async_database.async_database` (never pickled: per process).
        self._aio: Any = None
        _live_databases.add(self)

    # -- identity --------------------------------------------------------------------------

    @property
    def url(self) -> URL:
        """The database URL. Its ``str()`` and ``repr()`` hide the password and every other
        secret (see :attr:`display_url`)."""
        return self._url

    @property
    def display_url(self) -> str:
        """The URL as given, with any password replaced by ``***``: safe to log or print."""
        return self._display_url

    def __repr__(self) -> str:
        return f"Database({self.display_url!r})"

    # -- crossing process boundaries -------------------------------------------------------

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the URL and the options, never a connection.

        Process pools and Dask workers receive stores, lock managers and databases. The other
        side gets the process's shared Database for the same URL and options (or a new one),
        which connects on first use. The URL travels with its password: a pickle is as private
        as the memory of the process that made it, and nothing here logs it.

        Raises:
            ConfigurationError: The database is an in-memory SQLite database, which exists in
                this process only.
        """
        if self.dialect.is_memory:
            raise ConfigurationError(
                "An in-memory SQLite database lives in one process and cannot be sent to "
                "another (pickled). Use a file (sqlite:///path/to/results.db) or PostgreSQL for "
                "work that crosses processes."
            )
        clock = None if self.clock is time.time else self.clock
        return (
            _restore_database,
            (
                self._url.render_as_string(hide_password=False),
                _Options(self.auto_migrate, self.busy_timeout, self._synchronous),
                clock,
            ),
        )

    def __copy__(self) -> Database:
        # A Database is a handle on a shared resource: a copy would only split its connections.
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Database:
        return self

    @property
    def identity(self) -> str:
        """The URL without its password: equal for every ``Database`` object that reaches the
        same database. A key for per-database state, not for display (use
        :attr:`display_url`)."""
        return self._identity

    def is_same_database(self, other: Database) -> bool:
        """Whether ``other`` reaches the same database (the same URL, whatever the password),
        even through another ``Database`` object with its own engine."""
        return self is other or self._identity == other._identity

    # -- statements ------------------------------------------------------------------------

    def sql(self, query: Query) -> str:
        """Return ``query`` compiled for this database's driver (compiled once, then cached)."""
        compiled = self._statements.get(query)
        if compiled is None:
            statement = query(self.dialect, self._now).compile(  # type: ignore[attr-defined]
                dialect=self.engine.dialect
            )
            # Statements run on the driver with the caller's named parameters only, so a Python
            # constant that SQLAlchemy turned into an anonymous parameter would go unbound.
            stray = sorted(name for name, bind in statement.binds.items() if bind.value is not None)
            if stray:
                raise TypeError(f"{query.__name__} binds constants {stray}; use literal_column")
            compiled = self._statements[query] = str(statement)
        return compiled

    def stamp(self, params: Params) -> None:
        """Set ``params["now"]`` to the current time, unless the server's clock decides.

        Called right before each statement runs, on every attempt: a time taken before a
        first-use migration or a busy wait would start a lease (or judge an expiry) in the past.
        """
        clock = self._stamp_clock
        if clock is not None:
            params["now"] = clock()

    def fetchone(self, query: Query, params: Params) -> Row | None:
        """Run one statement in autocommit mode and return its first row, or None.

        Args:
            query: The statement (from :mod:`sqlresults.queries`).
            params: Its named parameters. ``params["now"]`` is set to the time the statement
                runs (on every retry), so callers need not pass it.

        Raises:
            StorageUnavailableError: The database stayed busy for ``busy_timeout`` seconds or
                cannot be reached.
        """
        sql = self._statements.get(query) or self.sql(query)
        local = self._local
        connection = self._per_thread and getattr(local, "connection", None)
        if connection and self._watch_file:
            # The hot path of every read: this thread's open SQLite file connection, with
            # _run_on_thread_connection inlined (no closure, no keyword options: SQLite has
            # none), with the same file checks and the same retries.
            changed = connection.total_changes
            clock = self._stamp_clock
            if clock is not None:
                params["now"] = clock()
            try:
                row: Row | None = connection.execute(sql, params).fetchone()
            except Exception as exc:
                operation = self._fetchone_operation(sql, params)
                try:
                    self._check_file(local)  # a moved file explains the error best
                except Exception as moved:
                    return self._recover(moved, operation, params)
                return self._recover(exc, operation, params)
            if connection.total_changes != changed or time.monotonic() >= local.next_file_check:
                try:
                    self._check_file(local)
                except Exception as moved:
                    return self._recover(moved, self._fetchone_operation(sql, params), params)
            return row
        operation = self._fetchone_operation(sql, params)
        if connection:
            return self._run_on_thread_connection(connection, operation, params)
        return self._run(operation, params)

    def _fetchone_operation(self, sql: str, params: Params) -> Callable[[Any], Row | None]:
        """The operation :meth:`fetchone` runs: stamp ``params``, run ``sql``, first row."""
        options = self.execute_options
        stamp = self.stamp

        def run(connection: Any) -> Row | None:
            stamp(params)
            row: Row | None = connection.execute(sql, params, **options).fetchone()
            return row

        return run

    def fetchall(self, query: Query, params: Params) -> list[Row]:
        """Run one statement in autocommit mode and return all its rows (see
        :meth:`fetchone`)."""
        sql = self.sql(query)
        options = self.execute_options

        def run(connection: Any) -> list[Row]:
            self.stamp(params)
            rows: list[Row] = connection.execute(sql, params, **options).fetchall()
            return rows

        return self._run(run, params)

    def execute(self, query: Query, params: Params) -> int:
        """Run one statement in autocommit mode and return the number of rows it changed (see
        :meth:`fetchone`)."""
        sql = self._statements.get(query) or self.sql(query)
        options = self.execute_options
        stamp = self.stamp

        def run(connection: Any) -> int:
            stamp(params)
            return _changed_rows(connection.execute(sql, params, **options))

        connection = self._per_thread and getattr(self._local, "connection", None)
        if connection:
            return self._run_on_thread_connection(connection, run, params)
        return self._run(run, params)

    def transaction(self, work: Callable[[WriteTransaction], T]) -> T:
        """Run ``work`` inside one write transaction and commit it.

        SQLite takes its write lock at the start (``BEGIN IMMEDIATE``). If the database is busy,
        the transaction is rolled back and ``work`` runs again, so it must not have side effects
        outside the database. An exception from ``work`` rolls back and propagates.

        Args:
            work: Called with a :class:`WriteTransaction`; its return value is returned.
        """
        begin = self.dialect.begin_write_sql()
        moved: list[Any] = []

        def attempt(connection: Any) -> T:
            transaction = WriteTransaction(self, connection)
            moved.append(transaction.moved)
            connection.execute(begin)
            try:
                result = work(transaction)
                connection.execute("COMMIT")
            except BaseException:
                _rollback_quietly(connection)
                raise
            return result

        return self._run(attempt, moved)

    def now(self) -> float:
        """The time that decides expiry and leases, in seconds since the epoch: the server's
        clock on PostgreSQL (unless a clock was given), else ``clock()``."""
        if self._uses_server_clock:
            from sqlresults import queries

            row = self.fetchone(queries.clock, {})
            assert row is not None
            return float(row[0])
        return self.clock()

    @contextmanager
    def wakeups(self, payload: str) -> Iterator[Callable[[float], None]]:
        """A pause function for a waiter that ends early when ``payload`` is announced.

        On PostgreSQL the waiter LISTENs (on a pooled connection, for the duration of the block)
        for lock releases, so ``pause(seconds)`` returns as soon as the lock it waits for is
        released. Elsewhere ``pause`` is ``time.sleep``: waiters poll.

        Listening is an optimisation (polling alone is correct), so ``pause`` raises no database
        error. When the listening connection drops (a server restart, an ended session), the
        pause listens again on a fresh connection and returns at once: a release announced
        while nobody listened is found only by the waiter's next check. While the database
        cannot be reached, or if it refuses LISTEN, ``pause`` sleeps (and the waiter's checks
        report the outage).

        Args:
            payload: The announcement to wake up for
                (:func:`~sqlresults.dialects.release_payload`).

        Yields:
            ``pause(seconds)``.
        """
        channel = self.dialect.release_channel
        if channel is None:
            yield time.sleep
            return
        listener = _Listener(self, channel, payload)
        try:
            yield listener.pause
        finally:
            listener.close()

    # -- connections -----------------------------------------------------------------------
    #
    # SQLite: one connection per thread, kept (checkout costs more than the statements).
    # PostgreSQL: one pooled connection per operation, so idle threads hold no server session.

    def _run(self, operation: Callable[[Any], T], params: Any = None) -> T:
        try:
            return self._attempt(operation, params)
        except Exception as exc:
            return self._recover(exc, operation, params)

    def _run_on_thread_connection(
        self, connection: Any, operation: Callable[[Any], T], params: Any
    ) -> T:
        """:meth:`_run` on this thread's SQLite connection, already open: the hot path of every
        single-statement operation, :meth:`_attempt` inlined (same file checks, same retries)."""
        if not self._watch_file:
            try:
                return operation(connection)
            except Exception as exc:
                return self._recover(exc, operation, params)
        local = self._local
        rows_changed = self._rows_changed
        changed = rows_changed(connection)
        try:
            result = operation(connection)
        except Exception as exc:
            try:
                self._check_file(local)  # a moved file explains the error best
            except Exception as moved:
                return self._recover(moved, operation, params)
            return self._recover(exc, operation, params)
        # See _attempt: after every write, and at most every _READ_FILE_CHECK_INTERVAL after
        # reads (SQLite counts the rows a connection changed; a read changes none).
        if rows_changed(connection) != changed or time.monotonic() >= local.next_file_check:
            try:
                self._check_file(local)
            except Exception as moved:
                return self._recover(moved, operation, params)
        return result

    def _attempt(self, operation: Callable[[Any], T], params: Any = None) -> T:
        """Run ``operation`` once on a connection.

        A driver error that broke a pooled connection is raised as :class:`_ConnectionLostError`:
        only here can the connection be asked whether it broke (a client-side error, such as a
        NUL psycopg refuses to send, leaves it healthy and in the pool).
        """
        if self._per_thread:
            local = self._local
            connection = getattr(local, "connection", None) or self._connection()
            if not self._watch_file:
                return operation(connection)
            rows_changed = self._rows_changed
            changed = rows_changed(connection)
            try:
                result = operation(connection)
            except Exception:
                self._check_file(local)  # a moved file explains the error best
                raise
            # After a write (after its COMMIT), always: an acknowledged write is in the file at
            # the path. After a read, at most every _READ_FILE_CHECK_INTERVAL: a read from a
            # file deleted a moment ago returns what was true then, and the stat would cost a
            # quarter of a small read.
            if rows_changed(connection) != changed or time.monotonic() >= local.next_file_check:
                self._check_file(local)
            return result
        if not self._schema_ready:
            self.ensure_schema()
        proxy = self._open_connection()
        connection = proxy.dbapi_connection
        try:
            result = operation(connection)
        except Exception as exc:
            if self._is_driver_error(exc) and self.dialect.is_disconnect(exc, connection):
                proxy.invalidate()
                raise _ConnectionLostError(exc) from exc
            raise
        else:
            if _moves_more_than(self._buffer_limit, params, result):
                proxy.invalidate()  # closed, not pooled: its buffers grew to the value's size
            return result
        finally:
            proxy.close()

    def _recover(self, exc: Exception, operation: Callable[[Any], T], params: Any = None) -> T:
        """Retry ``operation`` after a busy or dropped database, or translate ``exc``."""
        wait = self._busy_backoff()
        reconnected = False
        while True:
            if isinstance(exc, _ConnectionLostError) and not reconnected:
                # A restarted server or a dropped network: every pooled connection is suspect,
                # so start afresh once, then give up.
                self._discard_connections()
                reconnected = True
            else:
                error = exc.error if isinstance(exc, _ConnectionLostError) else exc
                if isinstance(error, SQLResultsError) or not (
                    self._is_driver_error(error) or self.dialect.is_bad_input(error)
                ):
                    raise error
                busy = self.dialect.is_busy(error)
                if not busy or wait.expired():
                    raise self.translate(error, waited=wait.waited if busy else None) from error
                wait.sleep()
            try:
                return self._attempt(operation, params)
            except Exception as retry_exc:
                exc = retry_exc

    def _connection(self) -> Any:
        """This thread's connection (SQLite), opened on first use and checked against the
        schema before its first use."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._thread_connection()
            self.ensure_schema()
            self._local.connection = connection
        return connection

    def _thread_connection(self) -> Any:
        """This thread's connection, opened if need be, without the schema check."""
        proxy = getattr(self._local, "proxy", None)
        if proxy is None:
            # Keep SQLAlchemy's proxy referenced: dropping it would close the connection.
            proxy = self._local.proxy = self._open_connection()
            if self._watch_file:
                self._local.file = self._file_identity()
                self._local.next_file_check = 0.0
        return proxy.dbapi_connection

    def _file_identity(self) -> tuple[str, int, int] | None:
        """The absolute path of the SQLite file just opened and its (device, inode), or None
        if it cannot be found (the check then has nothing to compare)."""
        path = os.path.abspath(str(self.dialect.sqlite_path))  # immune to a later chdir()
        try:
            stat = os.stat(path)
        except OSError:
            return None
        return path, stat.st_dev, stat.st_ino

    def _check_file(self, local: threading.local) -> None:
        """Raise if the SQLite file this thread's connection has open is no longer the file
        at its path (deleted, or replaced by another file): the connection would go on
        reading and writing a file nobody else will see, and acknowledged writes would be lost.

        One ``os.stat`` (about 1.5 µs), after every write and at most every
        ``_READ_FILE_CHECK_INTERVAL`` seconds after reads.

        Raises:
            StorageUnavailableError: The file was deleted or replaced; this thread's
                connection is discarded, and the next operation opens the file now at the path.
        """
        identity = getattr(local, "file", None)
        if identity is None:
            return
        local.next_file_check = time.monotonic() + _READ_FILE_CHECK_INTERVAL
        path, device, inode = identity
        try:
            stat = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError:
            return  # the path cannot be checked now (e.g. permissions); the file may be fine
        else:
            if stat.st_ino == inode and stat.st_dev == device:
                return
        self._abandon_moved_file()
        raise StorageUnavailableError(
            f"The SQLite database {path} was deleted or replaced while this process had it "
            "open, so this operation went to the old file and did not take effect in the file "
            "at that path. Do not delete, move or replace a database file while it is in use. "
            f"The next operation opens the file now at {path} (creating a new one if it is "
            "gone)."
        )

    def _abandon_moved_file(self) -> None:
        """Drop this thread's connection to a moved SQLite file; check the schema again."""
        proxy = getattr(self._local, "proxy", None)
        if proxy is not None:
            self.dialect.abandon_moved_file(proxy.dbapi_connection)
        # The file at the path may be a new, empty one (created and migrated if allowed).
        self._schema_ready = False
        self._discard_connections()

    @contextmanager
    def _raw_connection(self) -> Iterator[Any]:
        """A connection for one operation, without the schema check."""
        if self._per_thread:
            yield self._thread_connection()
            return
        proxy = self._open_connection()
        try:
            yield proxy.dbapi_connection
        finally:
            proxy.close()

    def _open_connection(self) -> Any:
        """Open (SQLite) or check out (PostgreSQL) a connection, retrying while the database is
        busy, and return SQLAlchemy's proxy for it.

        Raises:
            StorageUnavailableError: The database stayed busy for ``busy_timeout`` seconds or
                cannot be reached (or another translated error, e.g. an unusable SQLite path).
        """
        wait = self._busy_backoff()
        path = self.dialect.sqlite_path
        if path is not None and not self.dialect.read_only:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                # Root ignores permission bits, but not EPERM (e.g. /sys) or a read-only mount.
                denied = isinstance(exc, PermissionError) or exc.errno == errno.EROFS
                problem = f"its directory {exc.filename or path.parent} cannot be created"
                raise self._unusable_location(
                    f"{problem} ({exc.strerror or exc})", read_only=denied
                ) from exc
        while True:
            try:
                return self.engine.raw_connection()
            except Exception as exc:
                # Unlike Engine.connect(), raw_connection() lets the driver's own errors
                # through (a server that refuses connections): translate those too.
                if not self._is_driver_error(exc):
                    raise
                orig = getattr(exc, "orig", None) or exc
                busy = self.dialect.is_busy(orig)
                if busy and not wait.expired():
                    wait.sleep()
                    continue
                raise self.translate(orig, waited=wait.waited if busy else None) from exc

    def _busy_backoff(self) -> Backoff:
        """How long and how often to retry while the database is busy."""
        return Backoff(self.busy_timeout, first=_FIRST_BACKOFF, cap=_MAX_BACKOFF)

    def _discard_connections(self) -> None:
        proxy = getattr(self._local, "proxy", None)
        self._local.connection = None
        self._local.proxy = None
        self._local.file = None
        if proxy is not None:
            with suppress(Exception):  # the connection is broken already
                proxy.invalidate()
        if not self._per_thread:
            self.engine.dispose()
        if self._aio is not None:
            self._aio.discard()  # a server that dropped one session likely dropped them all

    def close(self) -> None:
        """Close this thread's connection and the engine's pool.

        Other threads' SQLite connections close when those threads end. The Database stays
        usable: the next operation reopens a connection.
        """
        proxy = getattr(self._local, "proxy", None)
        self._local.connection = None
        self._local.proxy = None
        self._local.file = None
        if proxy is not None:
            proxy.close()
        self.engine.dispose()
        if self._aio is not None:
            self._aio.discard()

    def _after_fork_in_child(self) -> None:
        _inherited_connections.append(self._local)
        self._local = threading.local()
        self.engine.dispose(close=False)
        # The parent's asyncio connections too: closing them would end the parent's sessions.
        _inherited_connections.append(self._aio)
        self._aio = None

    def _create_engine(self) -> Engine:
        try:
            engine = create_engine(self._url, **self.dialect.engine_options())
        except (NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
            driver = self._url.get_driver_name()
            raise ConfigurationError(
                f"The database driver {driver!r} for {self.display_url} is not installed. "
                'For PostgreSQL install the extra: pip install "sqlresults[postgres]".'
            ) from exc
        except ArgumentError as exc:
            detail = hide_secrets(str(exc), self._secrets)
            raise ConfigurationError(f"Invalid database URL {self.display_url}: {detail}") from exc
        synchronous = self._synchronous
        dialect = self.dialect

        @event.listens_for(engine, "connect")
        def _configure(dbapi_connection: Any, _record: Any) -> None:
            dialect.configure_connection(dbapi_connection, synchronous)

        @event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            # SQLAlchemy connections (migrations, admin) get the same write-lock-first BEGIN.
            connection.exec_driver_sql(dialect.begin_write_sql())

        if not self._per_thread:

            @event.listens_for(engine, "checkin")
            def _checked_in(_dbapi_connection: Any, record: Any) -> None:
                record.info["idle_since"] = time.monotonic()

            @event.listens_for(engine, "checkout")
            def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
                idle_since = record.info.get("idle_since")
                if idle_since is None or time.monotonic() - idle_since < _PING_AFTER_IDLE:
                    return
                try:
                    dbapi_connection.execute("SELECT 1")
                except Exception as exc:
                    # The pool discards this connection and checks out (or opens) another.
                    raise DisconnectionError("idle connection is gone") from exc

        return engine

    # -- errors ----------------------------------------------------------------------------

    def _is_driver_error(self, exc: BaseException) -> bool:
        dbapi = self.engine.dialect.dbapi
        return isinstance(exc, SQLAlchemyError) or (
            dbapi is not None and isinstance(exc, dbapi.Error)
        )

    def translate(self, exc: BaseException, *, waited: float | None = None) -> SQLResultsError:
        """Return the :mod:`sqlresults.errors` exception that stands for a driver error.

        Args:
            exc: An exception raised by the driver or by SQLAlchemy.
            waited: Seconds spent retrying before giving up, if any.
        """
        orig = getattr(exc, "orig", None) or exc
        # Driver messages may span lines (libpq adds hints); an error is one line.
        detail = " ".join(str(orig).split())
        clean = hide_secrets(detail, self._secrets)
        if clean != detail:
            # The driver echoed a secret (e.g. a database name holding a connection string).
            # Tracebacks print the driver's exception too, so scrub it there as well.
            with suppress(Exception):
                orig.args = (clean,)
            detail = clean
        where = self.display_url
        dialect = self.dialect
        if dialect.is_read_only(orig):
            return ReadOnlyStorageError(
                f"The result database {where} is read-only ({detail}). Make it writable (for "
                "SQLite, the file and its directory, which holds the -wal and -shm files), or "
                "use another database."
            )
        if dialect.is_bad_input(orig):
            return InvalidArgumentError(
                f"A value cannot be stored in the result database {where} ({detail}); nothing "
                "was changed. Text must not contain NUL characters or lone surrogates."
            )
        if dialect.is_cannot_open(orig):
            return self._unusable_location(f"SQLite cannot open or create it as a file ({detail})")
        if dialect.is_damaged(orig):
            path = dialect.sqlite_path
            return DamagedDatabaseError(
                f"The SQLite database {path} is damaged ({detail}). Restore it from a backup, "
                f"or recover what it still holds with: sqlite3 {shlex.quote(str(path))} "
                '".recover" | sqlite3 '
                "recovered.db (then point SQLRESULTS_DATABASE_URL at recovered.db)."
            )
        if dialect.is_not_a_database(orig):
            return ConfigurationError(
                f"{dialect.sqlite_path} is not a SQLite database ({detail}). Point "
                "SQLRESULTS_DATABASE_URL at a new file or an existing sqlresults database. "
                "(If it was a sqlresults database, its header is damaged: restore it from a "
                "backup.)"
            )
        if dialect.is_missing_table(orig):
            return SchemaOutOfDateError(
                f"The result database {where} has no sqlresults tables ({detail}). "
                "Create them with: sqlresults migrate"
            )
        if dialect.is_busy(orig):
            how_long = "" if waited is None else f" for {waited:.3g} s"
            return StorageUnavailableError(
                f"The result database {where} stayed busy{how_long} ({detail}): another "
                "connection held its write lock (or kept conflicting with this transaction) "
                "too long. Raise SQLRESULTS_BUSY_TIMEOUT or shorten the other transactions."
            )
        return StorageUnavailableError(f"The result database {where} failed: {detail}")

    def is_outage(self, error: BaseException) -> bool:
        """Whether ``error``, raised by an operation of this database, is an outage: the server
        could not be reached, or dropped the connection and could not be reached again. An
        outage may end by itself (a restart, a failover), unlike a database that stayed busy,
        refuses writes, is damaged or refused the statement.

        Args:
            error: An exception raised by this Database.
        """
        # Not its subclasses: a read-only or damaged database does not heal by waiting.
        if type(error) is not StorageUnavailableError:
            return False
        cause = error.__cause__
        orig = getattr(cause, "orig", None) or cause
        return orig is not None and self._is_driver_error(orig) and self.dialect.is_disconnect(orig)

    def _unusable_location(self, problem: str, *, read_only: bool = False) -> SQLResultsError:
        """The error for a SQLite path that cannot hold a database, saying what to do."""
        error = ReadOnlyStorageError if read_only else StorageUnavailableError
        return error(
            f"Cannot use {self.dialect.sqlite_path} as the SQLite result database: {problem}. "
            "Point SQLRESULTS_DATABASE_URL at a file in a writable directory, or set "
            "SQLRESULTS_HOME to a writable directory (the default database is "
            "$SQLRESULTS_HOME/results.db)."
        )

    @contextmanager
    def admin_connection(self) -> Iterator[Connection]:
        """A SQLAlchemy connection inside a write transaction, for migrations and admin work.

        Opening the transaction waits (with the same jittered backoff as every write) up to
        ``busy_timeout`` seconds for SQLite's write lock. The transaction commits when the block
        ends and rolls back if it raises.

        Raises:
            StorageUnavailableError: The database stayed busy or cannot be reached.
        """
        wait = self._busy_backoff()
        with self.translate_errors():
            while True:
                connection = self.engine.connect()
                try:
                    transaction = connection.begin()
                    break
                except SQLAlchemyError as exc:
                    connection.close()
                    if not self.dialect.is_busy(getattr(exc, "orig", None) or exc):
                        raise
                    if wait.expired():
                        raise self.translate(exc, waited=wait.waited) from exc
                    wait.sleep()
            with connection:
                try:
                    yield connection
                except BaseException:
                    transaction.rollback()
                    raise
                transaction.commit()

    @contextmanager
    def translate_errors(self) -> Iterator[None]:
        """Translate driver and SQLAlchemy exceptions raised inside the block."""
        try:
            yield
        except SQLResultsError:
            raise
        except Exception as exc:
            if self._is_driver_error(exc):
                raise self.translate(exc) from exc
            raise

    # -- schema ----------------------------------------------------------------------------

    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at, or None before the first migration.

        Raises:
            StorageUnavailableError: The database cannot be reached.
        """
        sql = f"SELECT version_num FROM {VERSION_TABLE}"
        try:
            with self._raw_connection() as connection:
                row = connection.execute(sql).fetchone()
        except SQLResultsError:
            raise
        except Exception as exc:
            if not self._is_driver_error(exc):
                raise
            if self.dialect.is_missing_table(exc):
                return None
            raise self.translate(exc) from exc
        return None if row is None else str(row[0])

    def ensure_schema(self) -> None:
        """Check the schema once per process; upgrade it if allowed, else refuse.

        Raises:
            SchemaOutOfDateError: The schema is missing or old and auto-migration is off, or the
                database was migrated by a newer sqlresults.
        """
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            revision = self.schema_revision()
            if revision != SCHEMA_REVISION:
                self._bring_schema_up_to_date(revision)
            self._schema_ready = True

    def _bring_schema_up_to_date(self, revision: str | None) -> None:
        if revision is not None and not migrations.is_known_revision(revision):
            raise migrations.newer_schema_error(self.display_url, revision)
        if not self.auto_migrate:
            state = "has no sqlresults schema" if revision is None else "has an old schema"
            raise SchemaOutOfDateError(
                f"The result database {self.display_url} {state} (revision {revision}, this "
                f"version needs {SCHEMA_REVISION}). Upgrade it with: sqlresults migrate"
            )
        migrations.upgrade(self)

    def accept_schema_revision(self, revision: str | None) -> bool:
        """Record that the schema was found at ``revision`` by a check made elsewhere (the
        asyncio path reads the revision on its own connections); True if that is the revision
        this version needs, and no further check is made. Otherwise nothing changes, and
        :meth:`ensure_schema` decides what to do."""
        if revision != SCHEMA_REVISION:
            return False
        self._schema_ready = True
        return True

    def forget_schema_state(self) -> None:
        """Make the next operation check the schema again (after a migration)."""
        self._schema_ready = False


@dataclass(frozen=True)
class _Options:
    """The settings a Database was built with, which travel with it when it is pickled."""

    auto_migrate: bool
    busy_timeout: float
    sqlite_synchronous: str


_shared_lock = threading.Lock()
# Databases shared per process, by URL (password included) and options.
_shared_databases: dict[tuple[str, _Options], Database] = {}


def _open_database(
    url: str | URL, options: _Options, clock: Callable[[], float] | None = None
) -> Database:
    settings = get_settings().model_copy(
        update={
            "busy_timeout": options.busy_timeout,
            "sqlite_synchronous": options.sqlite_synchronous,
        }
    )
    return Database(url, auto_migrate=options.auto_migrate, clock=clock, settings=settings)


def _shared_database(url: URL, options: _Options) -> Database:
    """The process's Database for ``url`` with ``options``, created on first use."""
    name = url.render_as_string(hide_password=False)
    with _shared_lock:
        database = _shared_databases.get((name, options))
        if database is None:
            database = _shared_databases[(name, options)] = _open_database(url, options)
        return database


def _restore_database(
    url: str, options: _Options, clock: Callable[[], float] | None = None
) -> Database:
    """Unpickle a Database (see :meth:`Database.__reduce__`): the shared one for its URL and
    options, or, with a clock of its own, a new one."""
    if clock is None:
        return _shared_database(make_url(url), options)
    return _open_database(url, options, clock)


def resolve_database(value: Any = None) -> Database:
    """Turn anything that names a result database into a :class:`Database`.

    Databases named by URL or path are shared per process (one engine and one connection per
    thread for every store that names the same database).

    Args:
        value: A :class:`Database` (returned as is), a URL string or ``sqlalchemy.engine.URL``,
            a ``pathlib.Path`` to a SQLite file, or None for the default database
            (``SQLRESULTS_DATABASE_URL``, else ``~/.sqlresults/results.db``).

    Raises:
        ConfigurationError: The value names no database sqlresults can use.
        TypeError: The value is of another type.
    """
    if isinstance(value, Database):
        return value
    if value is None:
        value = get_settings().url
    if not isinstance(value, str | URL | os.PathLike):
        raise TypeError(
            "Result storage must be a sqlresults Database, a database URL or a path to a SQLite "
            f"file, not {type(value).__name__}: {value!r}."
        )
    url = parse_url(value)
    dialect = Dialect(url)
    # In-memory databases are private to the Database that creates them; never share one.
    if dialect.is_memory:
        return Database(url)
    settings = get_settings()
    auto_migrate = settings.auto_migrate
    options = _Options(
        auto_migrate=dialect.is_sqlite if auto_migrate is None else auto_migrate,
        busy_timeout=settings.busy_timeout,
        sqlite_synchronous=settings.sqlite_synchronous,
    )
    return _shared_database(url, options)


def parse_url(url: str | URL | os.PathLike[str]) -> URL:
    """Parse a database URL, or turn a path into a SQLite URL.

    A ``password`` query parameter becomes the URL's password (libpq treats them the same).

    Args:
        url: A URL string, a ``sqlalchemy.engine.URL``, or a path to a SQLite file.

    Returns:
        The URL, whose ``str()`` and ``repr()`` hide every secret it holds.

    Raises:
        ConfigurationError: The string is not a URL.
    """
    if isinstance(url, os.PathLike):
        parsed = sqlite_file_url(Path(url).expanduser().resolve())
    elif isinstance(url, URL):
        parsed = url
    else:
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError) as exc:  # ValueError: e.g. a port that is no number
            raise ConfigurationError(
                f"Cannot parse the database URL {hide_password(url)!r}. Expected e.g. "
                "sqlite:///path/to/results.db or postgresql+psycopg://user@host/dbname."
            ) from exc
    password = parsed.query.get("password")
    if isinstance(password, str):
        # libpq reads a password= parameter as the password (SQLAlchemy passes it on, and it
        # wins over the one before the @); SQLite ignores both. Kept as the URL's password,
        # every mask that hides a password hides it.
        parsed = parsed.difference_update_query(["password"]).set(password=password)
    return parsed if isinstance(parsed, _SecretsHiddenURL) else _SecretsHiddenURL(*parsed)


class _SecretsHiddenURL(URL):
    """A SQLAlchemy URL whose ``str()`` and ``repr()`` hide every secret
    (:func:`~sqlresults.settings.hide_password`), not only the password before the @: libpq
    also takes secrets from query parameters and connection strings."""

    __slots__ = ()

    def __repr__(self) -> str:
        return hide_password(self)

    __str__ = __repr__

    def __hash__(self) -> int:
        # Equal to a plain URL's hash, as the two compare equal.
        return hash(self.render_as_string())


class _Listener:
    """A pooled PostgreSQL connection that LISTENs for one waiter (see
    :meth:`Database.wakeups`), opened again after it drops."""

    def __init__(self, database: Database, channel: str, payload: str) -> None:
        self._database = database
        self._channel = channel
        self._payload = payload
        self._proxy: Any = None
        self._pool: Any = None  # the engine's pool when the connection was checked out
        # LISTEN failed on a healthy connection (a hot standby refuses it): poll only.
        self._refused = False
        self._listen()

    def pause(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the announcement (see :meth:`Database.wakeups`)."""
        deadline = time.monotonic() + seconds
        proxy = self._proxy
        if proxy is not None:
            connection = proxy.dbapi_connection
            try:
                self._database.dialect.wait_for_notification(connection, self._payload, seconds)
                return
            except Exception as exc:
                if not self._database._is_driver_error(exc):
                    raise
                # Only a dropped connection is worth replacing; listening again on others
                # would fail the same way at every pause.
                self._refused = not self._database.dialect.is_disconnect(exc, connection)
                self._proxy = None
                with suppress(Exception):  # the connection is broken already
                    proxy.invalidate()
                proxy.close()
        if not self._refused and self._listen():
            return  # the waiter checks now: a release may have gone unheard meanwhile
        time.sleep(max(0.0, deadline - time.monotonic()))

    def _listen(self) -> bool:
        """Check out a connection and LISTEN on it; False if that cannot be done now.

        A pooled connection found dropped means the server restarted or ended sessions, so
        every pooled connection is suspect: start afresh once, as operations do
        (:meth:`Database._recover`).
        """
        database = self._database
        for fresh in (False, True):
            self._pool = database.engine.pool  # before the checkout: see close()
            try:
                proxy = database._open_connection()
            except SQLResultsError:
                return False  # cannot be reached now: the next pause tries again
            connection = proxy.dbapi_connection
            try:
                connection.execute(f"LISTEN {self._channel}")
            except Exception as exc:
                proxy.invalidate()
                proxy.close()
                if not database.dialect.is_disconnect(exc, connection):
                    self._refused = True
                    return False
                if not fresh:
                    database._discard_connections()
                continue
            self._proxy = proxy
            return True
        return False

    def close(self) -> None:
        """Stop listening and give the connection back to the pool."""
        proxy, self._proxy = self._proxy, None
        if proxy is None:
            return
        if self._pool is not self._database.engine.pool:
            # An operation discarded the pool while this connection listened (it found the
            # server restarted): given back to that pool, it would stay open, unused.
            proxy.invalidate()
        else:
            # UNLISTEN before the connection goes back to the pool; one that cannot is closed.
            try:
                proxy.dbapi_connection.execute(f"UNLISTEN {self._channel}")
            except Exception:
                proxy.invalidate()
        proxy.close()


class _ConnectionLostError(Exception):
    """A driver error that broke the connection it ran on; ``error`` is the driver's."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _moves_more_than(limit: int | None, *values: Any) -> bool:
    """Whether any bytes value among ``values`` (parameters, a row, rows) exceeds ``limit``."""
    if limit is None:
        return False
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, bytes | bytearray | memoryview):
            if len(value) > limit:
                return True
        elif isinstance(value, tuple | list):
            stack.extend(value)
        elif isinstance(value, Mapping):
            stack.extend(value.values())
    return False


def _changed_rows(cursor: Any) -> int:
    # sqlite3 counts the rows of a statement with RETURNING only once they are fetched.
    if cursor.description is not None:
        return len(cursor.fetchall())
    rowcount: int = cursor.rowcount
    return rowcount


def _rollback_quietly(connection: Any) -> None:
    # The error that made us roll back is the one worth raising, not a failed ROLLBACK.
    with suppress(Exception):
        connection.execute("ROLLBACK")


def _after_fork_in_child() -> None:
    for database in list(_live_databases):
        database._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
