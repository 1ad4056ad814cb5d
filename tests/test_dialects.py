"""Tests for sqlresults.dialects: URL facts and the classification of real driver errors.

The driver errors are produced on purpose against real databases: a SQLite file (and a file that
is not one), and the test PostgreSQL server.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import postgres_server_url
from sqlalchemy.engine import make_url

from sqlresults.database import Database
from sqlresults.dialects import Dialect
from sqlresults.errors import ConfigurationError

CLASSIFIERS = [
    "is_busy",
    "is_read_only",
    "is_not_a_database",
    "is_cannot_open",
    "is_damaged",
    "is_missing_table",
    "is_disconnect",
    "is_bad_input",
]


def dialect(url: str) -> Dialect:
    """The Dialect of a URL string."""
    return Dialect(make_url(url))


def raised(operation: Callable[[], Any]) -> BaseException:
    """The exception ``operation`` raises (it must raise)."""
    try:
        operation()
    except Exception as exc:
        return exc
    raise AssertionError("the operation did not fail")


def classify(target: Dialect, exc: BaseException) -> set[str]:
    """The names of the classifiers that say yes to ``exc``."""
    return {name for name in CLASSIFIERS if getattr(target, name)(exc)}


# -- SQLite errors -------------------------------------------------------------------------------


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    """A SQLite file with one table, in WAL mode like sqlresults' files."""
    path = tmp_path / "plain.db"
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("CREATE TABLE t (x INTEGER)")
    connection.close()
    return path


def sqlite_errors(path: Path, tmp_path: Path) -> Iterator[tuple[str, Path, BaseException]]:
    """Real sqlite3 errors of each kind, made against ``path`` or a damaged copy of it (closed
    afterwards), with the file each was made against."""
    holder = sqlite3.connect(path, isolation_level=None)
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        holder.execute("BEGIN IMMEDIATE")
        yield "busy", path, raised(lambda: other.execute("BEGIN IMMEDIATE"))
        holder.execute("COMMIT")
    finally:
        holder.close()
        other.close()

    read_only = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        yield "read_only", path, raised(lambda: read_only.execute("INSERT INTO t VALUES (1)"))
    finally:
        read_only.close()

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all " * 100)
    not_a_database = sqlite3.connect(garbage)
    try:
        yield (
            "not_a_database",
            garbage,
            raised(lambda: not_a_database.execute("SELECT * FROM sqlite_master")),
        )
    finally:
        not_a_database.close()

    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(path.read_bytes())
    with damaged.open("r+b") as file:  # the header's fields after the "SQLite format 3" magic
        file.seek(16)
        file.write(b"\xff" * 84)
    damaged_header = sqlite3.connect(damaged)
    try:
        yield "damaged_header", damaged, raised(lambda: damaged_header.execute("SELECT * FROM t"))
    finally:
        damaged_header.close()

    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(path.read_bytes())
    with corrupt.open("r+b") as file:  # the table's root page
        file.seek(4096)
        file.write(b"\xa5" * 4096)
    corrupt_pages = sqlite3.connect(corrupt)
    try:
        yield (
            "corrupt",
            corrupt,
            raised(lambda: corrupt_pages.execute("SELECT * FROM t").fetchall()),
        )
    finally:
        corrupt_pages.close()

    # A directory is no file SQLite can open.
    yield "cannot_open", tmp_path, raised(lambda: sqlite3.connect(tmp_path).execute("SELECT 1"))

    plain = sqlite3.connect(path)
    try:
        yield "missing_table", path, raised(lambda: plain.execute("SELECT * FROM no_such_table"))
        yield "other", path, raised(lambda: plain.execute("SELEKT 1"))
        yield "another", path, raised(lambda: plain.execute("INSERT INTO t VALUES (1, 2)"))
    finally:
        plain.close()


# What each kind of error must be classified as (every other classifier must say no).
EXPECTED = {
    "busy": {"is_busy"},
    "deadlock": {"is_busy"},
    "read_only": {"is_read_only"},
    "not_a_database": {"is_not_a_database"},
    "cannot_open": {"is_cannot_open"},
    "damaged_header": {"is_damaged"},
    "corrupt": {"is_damaged"},
    "missing_table": {"is_missing_table"},
    "disconnect_refused": {"is_disconnect"},
    "disconnect_terminated": {"is_disconnect"},
    "client_side_nul": {"is_bad_input"},
    "unencodable": {"is_bad_input"},
    "other": set(),
    "another": set(),
}


class TestSQLiteClassification:
    def test_each_kind_of_sqlite_error(self, sqlite_file: Path, tmp_path: Path) -> None:
        """Real sqlite3 errors are classified as busy, read-only, not a database, damaged (a
        SQLite header with damaged fields, or damaged pages), cannot open or missing table,
        and as nothing else; SQLite never reports a disconnect (SQLite-only)."""
        seen = {}
        for kind, file, exc in sqlite_errors(sqlite_file, tmp_path):
            # The dialect of the database the error came from: a damaged header is told from
            # a file that never was SQLite by the file's first bytes.
            seen[kind] = classify(dialect(f"sqlite:///{file}"), exc)
        assert seen == {kind: EXPECTED[kind] for kind in seen}
        assert set(seen) == {
            "busy",
            "read_only",
            "not_a_database",
            "damaged_header",
            "corrupt",
            "cannot_open",
            "missing_table",
            "other",
            "another",
        }

    def test_sqlite_errors_mean_nothing_to_postgresql(
        self, sqlite_file: Path, tmp_path: Path
    ) -> None:
        """The PostgreSQL dialect finds no busy, read-only, not-a-database or missing-table
        meaning in SQLite's errors (it goes by SQLSTATE)."""
        target = dialect("postgresql+psycopg://u@h/db")
        for _kind, _file, exc in sqlite_errors(sqlite_file, tmp_path):
            assert classify(target, exc) - {"is_disconnect"} == set()

    def test_plain_python_errors_are_not_driver_errors(self) -> None:
        """A ValueError mentioning SQLite's wording is not taken for a busy database by the
        SQLite dialect (only sqlite3 errors are)."""
        target = dialect("sqlite:///x.db")
        assert not target.is_busy(ValueError("database is locked"))


# -- PostgreSQL errors ---------------------------------------------------------------------------


@pytest.fixture
def pg_database(request: pytest.FixtureRequest) -> Iterator[Database]:
    """The test PostgreSQL database (PostgreSQL-only tests)."""
    request.applymarker(pytest.mark.postgres)
    database = Database(postgres_server_url(), auto_migrate=True)
    database.ensure_schema()
    yield database
    database.close()


def raise_sqlstate(sqlstate: str) -> str:
    """A statement that makes the server raise an error with ``sqlstate``."""
    return f"DO $$ BEGIN RAISE EXCEPTION 'on purpose' USING ERRCODE = '{sqlstate}'; END $$"


def postgresql_errors(database: Database) -> Iterator[tuple[str, BaseException]]:
    """Real psycopg errors of each kind, made against the test server."""
    import psycopg

    proxy = database.engine.raw_connection()
    connection = proxy.driver_connection
    assert isinstance(connection, psycopg.Connection)
    try:
        connection.autocommit = True
        yield "busy", raised(lambda: connection.execute(raise_sqlstate("40001")))
        yield "deadlock", raised(lambda: connection.execute(raise_sqlstate("40P01")))
        yield "missing_table", raised(lambda: connection.execute("SELECT * FROM no_such_table"))
        yield "other", raised(lambda: connection.execute("SELEKT 1"))
        yield (
            "another",
            raised(lambda: connection.execute("SELECT 1 / 0")),
        )
        # Refused by psycopg before anything is sent: no SQLSTATE, the connection is fine.
        yield "client_side_nul", raised(lambda: connection.execute("SELECT %s", ["a\x00b"]))
        yield "unencodable", raised(lambda: connection.execute("SELECT %s", ["\ud800"]))
        connection.autocommit = False
        connection.execute("SET TRANSACTION READ ONLY")
        yield (
            "read_only",
            raised(lambda: connection.execute("DELETE FROM sqlresults_locks WHERE false")),
        )
        connection.rollback()
        connection.autocommit = True
        yield (
            "disconnect_terminated",
            raised(lambda: connection.execute("SELECT pg_terminate_backend(pg_backend_pid())")),
        )
    finally:
        proxy.invalidate()
    yield (
        "disconnect_refused",
        raised(lambda: psycopg.connect("host=127.0.0.1 port=1 dbname=x user=u connect_timeout=2")),
    )


class TestPostgreSQLClassification:
    def test_each_kind_of_postgresql_error(self, pg_database: Database) -> None:
        """Real psycopg errors are classified by SQLSTATE: serialization failures and
        deadlocks are busy, 25006 read-only, 42P01 a missing table, a refused or terminated
        connection a disconnect, and other errors nothing (PostgreSQL-only)."""
        target = pg_database.dialect
        seen = {kind: classify(target, exc) for kind, exc in postgresql_errors(pg_database)}
        assert seen == {kind: EXPECTED[kind] for kind in seen}
        assert set(seen) == {
            "busy",
            "deadlock",
            "missing_table",
            "other",
            "another",
            "read_only",
            "disconnect_terminated",
            "disconnect_refused",
            "client_side_nul",
            "unencodable",
        }

    def test_only_a_broken_connection_is_a_disconnect(self, pg_database: Database) -> None:
        """An error without SQLSTATE is a disconnect only when the connection it ran on is
        broken or closed; a client-side error on a healthy connection is not
        (PostgreSQL-only)."""
        proxy = pg_database.engine.raw_connection()
        connection = proxy.dbapi_connection
        try:
            nul = raised(lambda: connection.execute("SELECT %s", ["a\x00b"]))
            assert not pg_database.dialect.is_disconnect(nul, connection)
            raised(lambda: connection.execute("SELECT pg_terminate_backend(pg_backend_pid())"))
            closed = raised(lambda: connection.execute("SELECT 1"))
            assert getattr(closed, "sqlstate", None) is None
            assert pg_database.dialect.is_disconnect(closed, connection)
        finally:
            proxy.invalidate()


# -- URL facts -----------------------------------------------------------------------------------


class TestURLFacts:
    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("postgresql+psycopg://u@h/db", True),
            ("postgresql+psycopg2://u@h/db", False),
            ("postgresql+pg8000://u@h/db", False),
            ("sqlite:///x.db", False),
        ],
    )
    def test_only_psycopg_has_the_asyncio_path(self, url: str, expected: bool) -> None:
        """The asyncio path is made of psycopg's connections: only a psycopg URL takes it
        (another PostgreSQL driver's errors would not be recognised there, and escape the
        error tree); SQLite and other drivers keep worker threads."""
        assert Dialect(make_url(url)).has_async_driver is expected

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("sqlite://", True),
            ("sqlite:///:memory:", True),
            ("sqlite:///file:name?mode=memory&cache=shared&uri=true", True),
            ("sqlite:///results.db", False),
            ("sqlite:////abs/results.db", False),
            ("sqlite:///file:/abs/results.db?mode=ro&uri=true", False),
            ("postgresql+psycopg://u@h/db", False),
        ],
    )
    def test_is_memory(self, url: str, expected: bool) -> None:
        """Only in-memory SQLite URLs are memory databases."""
        assert dialect(url).is_memory is expected

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("sqlite:////abs/dir/results.db", Path("/abs/dir/results.db")),
            ("sqlite:///relative/results.db", Path("relative/results.db")),
            ("sqlite:///file:/abs/results.db?mode=ro&uri=true", Path("/abs/results.db")),
            ("sqlite:///~/results.db", Path.home() / "results.db"),
            ("sqlite://", None),
            ("sqlite:///:memory:", None),
            ("postgresql+psycopg://u@h/db", None),
        ],
    )
    def test_sqlite_path(self, url: str, expected: Path | None) -> None:
        """sqlite_path is the file of a SQLite database (URI form and ~ included), None for
        memory databases and PostgreSQL."""
        assert dialect(url).sqlite_path == expected

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("sqlite:///file:/abs/results.db?mode=ro&uri=true", True),
            ("sqlite:///file:/abs/results.db?mode=rw&uri=true", False),
            ("sqlite:////abs/results.db", False),
            ("postgresql+psycopg://u@h/db?mode=ro", False),
        ],
    )
    def test_read_only(self, url: str, expected: bool) -> None:
        """read_only is true only for a SQLite URL with mode=ro."""
        assert dialect(url).read_only is expected

    def test_identity(self) -> None:
        """Each dialect knows its name, whether it is SQLite and whose clock decides expiry."""
        sqlite_dialect = dialect("sqlite:///x.db")
        postgresql_dialect = dialect("postgresql+psycopg://u@h/db")
        assert (sqlite_dialect.name, sqlite_dialect.is_sqlite) == ("sqlite", True)
        assert (postgresql_dialect.name, postgresql_dialect.is_sqlite) == ("postgresql", False)
        assert not sqlite_dialect.uses_server_clock
        assert postgresql_dialect.uses_server_clock

    def test_sqlite_writes_take_the_lock_up_front(self) -> None:
        """SQLite write transactions begin IMMEDIATE; PostgreSQL's need no such thing."""
        assert dialect("sqlite:///x.db").begin_write_sql() == "BEGIN IMMEDIATE"
        assert dialect("postgresql+psycopg://u@h/db").begin_write_sql() == "BEGIN"

    @pytest.mark.parametrize("url", ["mysql://u@h/db", "oracle://u@h/db", "mssql+pyodbc://u@h/db"])
    def test_unsupported_database(self, url: str) -> None:
        """Any other database is refused with ConfigurationError naming it."""
        with pytest.raises(ConfigurationError, match=make_url(url).get_backend_name()):
            dialect(url)

    def test_dialect_keeps_its_url(self) -> None:
        """A Dialect is built from a parsed URL and keeps it."""
        url = make_url("sqlite:///x.db")
        assert Dialect(url).url is url
