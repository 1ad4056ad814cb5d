"""Everything that differs between SQLite and PostgreSQL, and the only module that names either.

The rest of sqlresults asks this module how to configure an engine, how to open a write
transaction, which upsert construct to use, where "now" comes from and what a driver exception
means; it never compares dialect names itself.
"""

from __future__ import annotations

import operator
import sqlite3
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Double, Table, bindparam, func, literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.elements import ColumnElement

from sqlresults.errors import ConfigurationError

__all__ = [
    "POSTGRESQL",
    "RELEASE_CHANNEL",
    "SQLITE",
    "Dialect",
    "payload_storage_ddl",
    "release_payload",
    "sqlite_file_url",
]

SQLITE = "sqlite"
POSTGRESQL = "postgresql"

# RETURNING arrived in SQLite 3.35 (2021); every write and lock statement relies on it.
MIN_SQLITE_VERSION = (3, 35, 0)

# How long SQLite's own busy handler sleeps before handing SQLITE_BUSY back to us, in ms: not at
# all. SQLite's handler sleeps in coarse steps (1, 2, 5, 10 … 100 ms) with no queue, which is
# what gives SQLite peers their 0.2 to 2 s tails, and its first step alone is 1 ms, thirty write
# transactions of ours; the jittered retry in sqlresults.database starts at 25-50 µs and widens
# (peers.md §5.1).
SQLITE_BUSY_HANDLER_MS = 0

# The PostgreSQL channel on which lock releases are announced (payload: release_payload()).
RELEASE_CHANNEL = "sqlresults_lock_released"

# A fixed key for pg_advisory_xact_lock, so concurrent `sqlresults migrate` runs queue up.
_PG_MIGRATION_LOCK_ID = 0x5351_4C52_4553  # "SQLRES"


class Dialect:
    """The behaviour of one database dialect, as the rest of sqlresults needs it.

    Args:
        url: The parsed database URL.
    """

    def __init__(self, url: URL) -> None:
        self.url = url
        self.name = url.get_backend_name()
        if self.name not in (SQLITE, POSTGRESQL):
            raise ConfigurationError(
                f"sqlresults supports SQLite and PostgreSQL URLs, not {self.name!r}. "
                "Use sqlite:///path/to/results.db or postgresql+psycopg://user@host/db."
            )
        # An asyncio driver (asyncpg, psycopg_async, aiosqlite: Prefect installs two of them)
        # would be accepted here and fail at the first statement with a greenlet error.
        try:
            is_async = bool(url.get_dialect().is_async)
        except Exception:  # a driver that does not load fails when the engine is made
            is_async = False
        if is_async:
            raise ConfigurationError(
                f"sqlresults needs a synchronous database driver, and {url.drivername!r} is "
                "an asyncio one. Use sqlite:///path/to/results.db or "
                "postgresql+psycopg://user@host/db."
            )

    # -- identity --------------------------------------------------------------------------

    @property
    def is_sqlite(self) -> bool:
        """Whether this is an embedded SQLite database (one host, one writer at a time)."""
        return self.name == SQLITE

    @property
    def is_memory(self) -> bool:
        """Whether this is an in-memory SQLite database (gone when the process ends)."""
        if not self.is_sqlite:
            return False
        return self.url.database in (None, "", ":memory:") or (
            self.url.query.get("mode") == "memory"
        )

    @property
    def sqlite_path(self) -> Path | None:
        """The file of a SQLite database, or None for memory databases and PostgreSQL."""
        if not self.is_sqlite or self.is_memory or not self.url.database:
            return None
        database = self.url.database
        if database.startswith("file:"):
            database = database[len("file:") :].split("?", 1)[0]
        return Path(database).expanduser()

    @property
    def read_only(self) -> bool:
        """Whether the URL asks for a read-only connection (SQLite ``?mode=ro``)."""
        return self.is_sqlite and self.url.query.get("mode") == "ro"

    @property
    def uses_server_clock(self) -> bool:
        """Whether expiry and leases are judged by the database's clock.

        On PostgreSQL machines share one server, and their own clocks may be skewed, so the
        server decides; SQLite lives on one host, so the local clock is the database clock.
        """
        return self.name == POSTGRESQL

    # -- engines and connections -----------------------------------------------------------

    def engine_options(self) -> dict[str, Any]:
        """Keyword arguments for ``sqlalchemy.create_engine``."""
        if self.is_sqlite:
            # Connections are cached per thread by sqlresults.database, so SQLAlchemy's pool
            # would only add a checkout cost; the engine itself is used for migrations only.
            return {
                "poolclass": NullPool,
                "paramstyle": "named",
                "connect_args": {
                    "check_same_thread": False,
                    # Autocommit at the driver level; we issue BEGIN IMMEDIATE ourselves.
                    "isolation_level": None,
                },
            }
        # No pool_pre_ping: it costs a round trip on every checkout, i.e. doubles the latency
        # of every operation. sqlresults.database pings only connections that sat idle in the
        # pool (those are the ones a server restart or a firewall may have cut), and reconnects
        # once when an operation finds its connection dropped anyway.
        return {
            "pool_size": 5,
            "max_overflow": 10,
            "pool_recycle": 3600,
            "pool_use_lifo": True,
        }

    def configure_connection(self, dbapi_connection: Any, synchronous: str) -> None:
        """Set up a freshly opened DBAPI connection.

        Args:
            dbapi_connection: The driver's connection object.
            synchronous: SQLite's ``PRAGMA synchronous`` level (ignored on PostgreSQL).

        Raises:
            ConfigurationError: The SQLite library is older than sqlresults supports.
        """
        if self.is_sqlite:
            if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
                raise ConfigurationError(
                    f"SQLite {sqlite3.sqlite_version} is too old; sqlresults needs 3.35 or newer "
                    "(for RETURNING). Upgrade Python or the system SQLite library."
                )
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_HANDLER_MS}")
                if not self.read_only and not self.is_memory:
                    # WAL: readers never block the writer, nor the writer readers.
                    cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute(f"PRAGMA synchronous = {synchronous}")
            finally:
                cursor.close()
        else:
            dbapi_connection.autocommit = True

    def execute_options(self) -> dict[str, Any]:
        """Keyword arguments for the driver's ``execute()``.

        PostgreSQL results come over the binary protocol: a bytea payload then arrives as its
        bytes, not as hex text four times longer that must be decoded (242 vs 1,094 µs for
        100 KB, peers.md §6).
        """
        return {} if self.is_sqlite else {"binary": True}

    def connection_buffer_limit(self) -> int | None:
        """Bytes a pooled connection may move in one value before it is closed, not reused.

        libpq grows a connection's input and output buffers to the largest message it has
        carried and never shrinks them, so a pooled PostgreSQL connection that once moved a
        100 MB payload would keep 100 MB for as long as it lives. SQLite needs no limit.
        """
        return None if self.is_sqlite else 16 * 1024 * 1024

    @property
    def release_channel(self) -> str | None:
        """The LISTEN/NOTIFY channel on which lock releases are announced, or None where the
        database has no notifications (SQLite: waiters poll)."""
        return None if self.is_sqlite else RELEASE_CHANNEL

    def release_notice(self, payload: ColumnElement[str]) -> ColumnElement[Any] | None:
        """A SQL expression that announces a release with ``payload`` on
        :attr:`release_channel`, or None where there are no notifications."""
        if self.release_channel is None:
            return None
        return func.pg_notify(literal_column(f"'{self.release_channel}'"), payload)

    def wait_for_notification(self, dbapi_connection: Any, payload: str, seconds: float) -> None:
        """Block up to ``seconds`` on a connection that LISTENs on :attr:`release_channel`,
        returning early when a notification with ``payload`` arrives (others are skipped)."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            for notification in dbapi_connection.notifies(timeout=remaining, stop_after=1):
                if notification.payload == payload:
                    return

    @property
    def has_async_driver(self) -> bool:
        """Whether the driver has asyncio connections (:meth:`async_connect`): psycopg's
        ``AsyncConnection`` on PostgreSQL. SQLite has none worth the name (aiosqlite runs the
        sync driver in a thread), so its async callers keep worker threads; so does PostgreSQL
        through another driver (psycopg2, pg8000), whose errors the asyncio path, made of
        psycopg's connections, would not recognise."""
        return not self.is_sqlite and self.url.get_driver_name() == "psycopg"

    async def async_connect(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Open an asyncio connection in autocommit mode (as :meth:`configure_connection`
        sets the sync ones), with the arguments SQLAlchemy's dialect made for the sync driver.

        Raises:
            ConfigurationError: The dialect has no asyncio driver.
        """
        if not self.has_async_driver:
            raise ConfigurationError(f"{self.name} has no asyncio driver.")
        import psycopg

        return await psycopg.AsyncConnection.connect(*args, autocommit=True, **kwargs)

    async def notification_payloads(self, async_connection: Any) -> Any:
        """Yield the payload of each notification an asyncio connection that LISTENs
        receives, as they arrive (an async generator; it ends with an error when the
        connection drops)."""
        async for notification in async_connection.notifies():
            yield notification.payload

    def begin_write_sql(self) -> str:
        """The statement that opens a transaction which may write.

        SQLite must take its write lock up front (``BEGIN IMMEDIATE``): a deferred transaction
        that reads first and writes later fails with SQLITE_BUSY without waiting when another
        connection wrote in between (sqlite.org/lang_transaction.html §2.1).
        """
        return "BEGIN IMMEDIATE" if self.is_sqlite else "BEGIN"

    def rows_changed(self, dbapi_connection: Any) -> int:
        """How many rows the connection's statements have changed so far, where the driver
        counts them cheaply (SQLite's ``total_changes``; 0 elsewhere): an operation after which
        it grew wrote something."""
        return int(dbapi_connection.total_changes) if self.is_sqlite else 0

    def change_counter(self) -> Callable[[Any], int]:
        """:meth:`rows_changed` as a plain function of the connection, for hot paths."""
        return operator.attrgetter("total_changes") if self.is_sqlite else _no_changes

    def abandon_moved_file(self, dbapi_connection: Any) -> None:
        """Let go of a SQLite file that was deleted or replaced while ``dbapi_connection`` had
        it open, before that connection is closed.

        The write-ahead log is found by name (``<file>-wal``), so the old file's log is also
        the log of whatever file is now at the path: a connection opening the new file would
        replay the old file's pages into it. Checkpointing into the old file and truncating the
        log leaves the new file its own. SQLite itself skips that checkpoint on close once the
        file has moved. Best effort: a failure leaves things as they were.
        """
        if not self.is_sqlite:
            return
        with suppress(Exception):
            dbapi_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def migration_lock_sql(self) -> str | None:
        """A statement, run first inside the migration transaction, that serialises migrations
        across processes (SQLite's BEGIN IMMEDIATE already does)."""
        if self.is_sqlite:
            return None
        return f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK_ID})"

    # -- SQL constructs --------------------------------------------------------------------

    def insert(self, table: Table) -> Any:
        """An INSERT construct that supports ``on_conflict_do_update`` and ``returning``."""
        if self.is_sqlite:
            return sqlite.insert(table)
        return postgresql.insert(table)

    def now(self, use_server_clock: bool) -> ColumnElement[float]:
        """The current time in seconds since the epoch, as a SQL expression.

        Args:
            use_server_clock: Use the database server's clock rather than the ``now`` parameter
                that every statement is given from the local (or a test's) clock.
        """
        if use_server_clock and self.uses_server_clock:
            # clock_timestamp(), not now(): now() is frozen at the start of a transaction.
            return cast(ColumnElement[float], func.extract("epoch", func.clock_timestamp()))
        return bindparam("now", type_=Double())

    # -- administration (sqlresults.admin) -------------------------------------------------

    def admin_sql(self, name: str) -> str:
        """The SQL of an administrative statement, written for this dialect.

        Names: ``"storage_size"`` (one row, the database's size in bytes first; see
        :meth:`storage_figures`), ``"vacuum"`` (give freed space back), ``"checkpoint"``
        (SQLite: fold the write-ahead log into the file and truncate it), ``"journal_mode"``
        (SQLite), ``"privileges"`` (PostgreSQL: one row of booleans, see
        :meth:`privilege_names`, then the user and the schema), ``"server_version"``.

        Raises:
            ValueError: The statement does not exist for this dialect (see
                :meth:`has_admin_sql`).
        """
        statements = _SQLITE_ADMIN_SQL if self.is_sqlite else _POSTGRESQL_ADMIN_SQL
        try:
            return statements[name]
        except KeyError:
            raise ValueError(f"No {name!r} statement for {self.name}.") from None

    def has_admin_sql(self, name: str) -> bool:
        """Whether :meth:`admin_sql` has a statement called ``name`` for this dialect."""
        return name in (_SQLITE_ADMIN_SQL if self.is_sqlite else _POSTGRESQL_ADMIN_SQL)

    def storage_figures(self, row: tuple[Any, ...]) -> dict[str, int]:
        """Name the figures of the ``"storage_size"`` row, adding the SQLite write-ahead log's
        size (a file beside the database, which no query reports).

        Returns:
            ``database_bytes`` always; for SQLite ``page_count``, ``page_size``,
            ``free_pages`` and ``wal_bytes``; for PostgreSQL ``table_bytes`` (sqlresults'
            tables with their indexes and TOAST data).
        """
        if self.is_sqlite:
            database_bytes, page_count, free_pages, page_size = (int(value) for value in row)
            wal_bytes = 0
            path = self.sqlite_path
            if path is not None:
                with suppress(OSError):
                    wal_bytes = Path(f"{path}-wal").stat().st_size
            return {
                "database_bytes": database_bytes,
                "page_count": page_count,
                "page_size": page_size,
                "free_pages": free_pages,
                "wal_bytes": wal_bytes,
            }
        database_bytes, table_bytes = (int(value) for value in row)
        return {"database_bytes": database_bytes, "table_bytes": table_bytes}

    def footprint(self, figures: dict[str, int]) -> int:
        """The bytes that vacuuming can give back from, out of :meth:`storage_figures`: the
        SQLite file and its log; PostgreSQL's sqlresults tables."""
        if self.is_sqlite:
            return figures["database_bytes"] + figures["wal_bytes"]
        return figures["table_bytes"]

    @staticmethod
    def privilege_names() -> tuple[str, ...]:
        """What each boolean of the ``"privileges"`` row says the user may do."""
        return _PRIVILEGES

    # -- driver errors ---------------------------------------------------------------------

    def is_busy(self, exc: BaseException) -> bool:
        """Whether ``exc`` means "try again shortly": SQLite's write lock is taken (or a shared
        cache table is locked), or PostgreSQL aborted a transaction for a serialization failure
        (40001) or a deadlock (40P01)."""
        if self.is_sqlite:
            message = str(exc).lower()
            return isinstance(exc, sqlite3.OperationalError) and (
                "database is locked" in message
                or "database table is locked" in message
                or "database schema is locked" in message
            )
        return _sqlstate(exc) in ("40001", "40P01")

    def is_read_only(self, exc: BaseException) -> bool:
        """Whether ``exc`` says the database refuses writes."""
        message = str(exc).lower()
        if self.is_sqlite:
            return "readonly database" in message or "read-only" in message
        return _sqlstate(exc) == "25006"

    def is_not_a_database(self, exc: BaseException) -> bool:
        """Whether ``exc`` says the SQLite file is not a SQLite database (SQLITE_NOTADB) and the
        file does not start as one either: it never was one, or its header is gone."""
        return self._is_notadb(exc) and not self._starts_as_sqlite_file()

    def is_damaged(self, exc: BaseException) -> bool:
        """Whether ``exc`` says the SQLite file is damaged: its pages are malformed
        (SQLITE_CORRUPT, "database disk image is malformed"), or SQLite refuses a file that
        starts with its own header (the header's other fields are damaged)."""
        if not self.is_sqlite:
            return False
        if _sqlite_primary_code(exc) == _SQLITE_CORRUPT:
            return True
        if "database disk image is malformed" in str(exc).lower():
            return True
        return self._is_notadb(exc) and self._starts_as_sqlite_file()

    def _is_notadb(self, exc: BaseException) -> bool:
        return self.is_sqlite and (
            _sqlite_primary_code(exc) == _SQLITE_NOTADB
            or "file is not a database" in str(exc).lower()
        )

    def _starts_as_sqlite_file(self) -> bool:
        """Whether the database file begins with SQLite's header string (read on the error
        path only)."""
        path = self.sqlite_path
        if path is None:
            return False
        try:
            with path.open("rb") as file:
                return file.read(len(SQLITE_HEADER)) == SQLITE_HEADER
        except OSError:
            return False

    def is_cannot_open(self, exc: BaseException) -> bool:
        """Whether ``exc`` says the SQLite file cannot be opened or created (SQLITE_CANTOPEN:
        a directory, a missing directory, a place where no file can be created)."""
        return self.is_sqlite and (
            _sqlite_primary_code(exc) == _SQLITE_CANTOPEN
            or "unable to open database file" in str(exc).lower()
        )

    def is_missing_table(self, exc: BaseException) -> bool:
        """Whether ``exc`` says a table does not exist (the schema was never created)."""
        if self.is_sqlite:
            return "no such table" in str(exc).lower()
        return _sqlstate(exc) == "42P01"

    def is_disconnect(self, exc: BaseException, connection: Any = None) -> bool:
        """Whether ``exc`` means the connection is gone (server restarted, network dropped).

        A server error says so by its SQLSTATE (class 08, or 57P01-57P03: the server shut the
        session down). An error without one came from the client: it is a disconnect only if
        the connection it ran on is broken or closed, or, with no connection to ask, if it is
        psycopg's OperationalError (connecting failed). A client-side DataError (a NUL in a
        text value) on a healthy connection is bad input, not an outage.

        Args:
            exc: The driver's exception.
            connection: The DBAPI connection the failed operation ran on, if there was one.
        """
        if self.is_sqlite:
            return False
        state = _sqlstate(exc)
        if state is not None:
            return state.startswith("08") or state in ("57P01", "57P02", "57P03")
        if connection is not None:
            return bool(
                getattr(connection, "broken", False) or getattr(connection, "closed", False)
            )
        psycopg = sys.modules.get("psycopg")  # an exception of psycopg's means it is imported
        return psycopg is not None and isinstance(exc, psycopg.OperationalError)

    def is_bad_input(self, exc: BaseException) -> bool:
        """Whether ``exc`` says a parameter could not be sent, so nothing was stored: text the
        driver cannot encode (a lone surrogate, on either database), or, on PostgreSQL, a value
        psycopg refuses on the client (a DataError without SQLSTATE: a NUL in text)."""
        if isinstance(exc, UnicodeEncodeError):
            return True
        if self.is_sqlite or _sqlstate(exc) is not None:
            return False
        psycopg = sys.modules.get("psycopg")
        return psycopg is not None and isinstance(exc, psycopg.DataError)


# SQLite's primary result codes (sqlite.org/rescode.html) that sqlresults tells apart.
_SQLITE_CORRUPT = 11
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26

# The first 16 bytes of every SQLite database file (sqlite.org/fileformat.html §1.3.1).
SQLITE_HEADER = b"SQLite format 3\x00"


def _sqlite_primary_code(exc: BaseException) -> int | None:
    """The primary SQLite result code of a sqlite3 error (the low byte of the extended code),
    or None for other exceptions."""
    code = getattr(exc, "sqlite_errorcode", None) if isinstance(exc, sqlite3.Error) else None
    return code & 0xFF if isinstance(code, int) else None


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else None


def release_payload(namespace: str, key: str) -> str:
    """The notification payload announcing that the lock on ``key`` in ``namespace`` is free.

    Must equal what :func:`sqlresults.queries.lock_release` sends (``namespace || '/' || key``).
    A namespace containing ``/`` can make two payloads equal; a waiter woken by the wrong one
    just checks the lock and waits again.
    """
    return f"{namespace}/{key}"


def payload_storage_ddl(dialect_name: str) -> str | None:
    """DDL that keeps record payloads out of line and uncompressed, for migrations.

    On PostgreSQL, payloads are often compressed already and TOAST compression of large values
    costs more than it saves, so the column gets ``STORAGE EXTERNAL``. SQLite needs nothing.
    """
    if dialect_name != POSTGRESQL:
        return None
    return "ALTER TABLE sqlresults_records ALTER COLUMN payload SET STORAGE EXTERNAL"


def sqlite_file_url(path: Path) -> URL:
    """The URL of the SQLite database in the file ``path``."""
    return URL.create(SQLITE, database=str(path))


_SQLITE_ADMIN_SQL = {
    "storage_size": (
        "SELECT page_count * page_size, page_count, freelist_count, page_size "
        "FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()"
    ),
    "vacuum": "VACUUM",
    "checkpoint": "PRAGMA wal_checkpoint(TRUNCATE)",
    "journal_mode": "PRAGMA journal_mode",
    "server_version": "SELECT sqlite_version()",
}

_PRIVILEGES = (
    *(
        f"{privilege} on {table}"
        for table in ("sqlresults_records", "sqlresults_locks")
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE")
    ),
    "SELECT on sqlresults_alembic_version",
    "CREATE on the schema",
)

_POSTGRESQL_ADMIN_SQL = {
    "storage_size": (
        "SELECT pg_database_size(current_database()), "
        "pg_total_relation_size('sqlresults_records') + pg_total_relation_size('sqlresults_locks')"
    ),
    "vacuum": "VACUUM (ANALYZE) sqlresults_records, sqlresults_locks",
    "privileges": "SELECT "
    + ", ".join(
        f"has_table_privilege('{table}', '{privilege}')"
        for table in ("sqlresults_records", "sqlresults_locks")
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE")
    )
    + ", has_table_privilege('sqlresults_alembic_version', 'SELECT')"
    + ", has_schema_privilege(current_schema(), 'CREATE'), current_user, current_schema()",
    "server_version": "SELECT current_setting('server_version')",
}


def _no_changes(_dbapi_connection: Any) -> int:
    return 0
