"""Tests for sqlresults.database: URLs, connections, schema checks, busy retries and fork safety.

Tests taking the ``backend`` fixture (directly or through ``database``/``database_url``) run on
SQLite and PostgreSQL; those about SQLite itself build their own SQLite file and say so.
"""

from __future__ import annotations

import inspect
import os
import pickle
import sqlite3
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import OwnSessions
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from threads import join, run_in_thread, wait_until

from sqlresults import queries
from sqlresults.database import Database, WriteTransaction, parse_url, resolve_database
from sqlresults.dialects import release_payload
from sqlresults.errors import (
    ConfigurationError,
    DamagedDatabaseError,
    InvalidArgumentError,
    ReadOnlyStorageError,
    SchemaOutOfDateError,
    StorageUnavailableError,
)
from sqlresults.locking import SQLLockManager
from sqlresults.results import ResultStore, StoreStats
from sqlresults.schema import SCHEMA_REVISION, VERSION_TABLE

PASSWORD = "s3cret-pw"
REMOTE_URL = f"postgresql+psycopg://user:{PASSWORD}@127.0.0.1:1/db"

# PRAGMA synchronous reports its level as a number.
SYNCHRONOUS_LEVELS = {"OFF": 0, "NORMAL": 1, "FULL": 2, "EXTRA": 3}


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    """A path for a new SQLite file (created and migrated on first use)."""
    return tmp_path / "sqlite-only.db"


def lock_params(namespace: str, key: str, holder: str = "h") -> dict[str, Any]:
    """Parameters of queries.lock_acquire, lock_renew and lock_release (60 s lease, any
    fence)."""
    return {"ns": namespace, "key": key, "holder": holder, "hold": 60.0, "fence": None}


class TestURLs:
    @pytest.mark.parametrize(
        "url",
        [
            pytest.param("not a url", id="not-a-url"),
            pytest.param("", id="empty"),
            pytest.param("mysql://user@host/db", id="unsupported-database"),
            pytest.param("postgresql+nosuchdriver://user@host/db", id="unknown-driver"),
            pytest.param(f"postgresql+psycopg://user:{PASSWORD}@host:notaport/db", id="bad-port"),
        ],
    )
    def test_unusable_url_is_a_configuration_error(self, url: str) -> None:
        """A URL that cannot be parsed, names an unsupported database or driver, or has a bad
        port raises ConfigurationError (a ValueError) that does not show the password."""
        with pytest.raises(ConfigurationError) as caught:
            Database(url)
        assert PASSWORD not in str(caught.value)

    def test_parse_url_turns_a_path_into_an_absolute_sqlite_url(self, tmp_path: Path) -> None:
        """parse_url(Path) gives a SQLite URL to the absolute file; a URL passes through."""
        url = parse_url(Path("relative.db"))
        assert url.get_backend_name() == "sqlite"
        assert url.database == str(tmp_path / "relative.db")
        parsed = parse_url("sqlite:///x.db")
        assert parse_url(parsed) is parsed

    def test_url_property_is_a_sqlalchemy_url(self, tmp_path: Path) -> None:
        """Database.url is the parsed SQLAlchemy URL of the database."""
        database = Database(f"sqlite:///{tmp_path / 'x.db'}")
        assert isinstance(database.url, URL)
        assert database.url.database == str(tmp_path / "x.db")

    def test_passwords_never_shown(self) -> None:
        """repr, display_url and str(url) mask the password; the engine still gets it."""
        database = Database(REMOTE_URL)
        for text in (repr(database), database.display_url, str(database.url)):
            assert PASSWORD not in text
            assert "***" in text
            assert "127.0.0.1" in text
        assert database.url.password == PASSWORD

    def test_database_from_a_path(self, tmp_path: Path) -> None:
        """Database(Path) opens (creating and migrating) that SQLite file."""
        path = tmp_path / "sub" / "dir" / "results.db"
        database = Database(path)
        ResultStore(result_storage=database, namespace="ns").write(1, key="k")
        assert path.is_file()
        assert database.dialect.sqlite_path == path
        assert database.schema_revision() == SCHEMA_REVISION
        database.close()

    def test_default_database_from_settings(self, tmp_path: Path) -> None:
        """Database() uses the settings' URL: results.db in SQLRESULTS_HOME."""
        assert Database().dialect.sqlite_path == tmp_path / "home" / "results.db"

    def test_resolve_database_shares_by_url(self, tmp_path: Path) -> None:
        """resolve_database gives one Database per URL (a path and its URL alike) and never
        shares an in-memory database."""
        path = tmp_path / "shared.db"
        shared = resolve_database(f"sqlite:///{path}")
        assert resolve_database(f"sqlite:///{path}") is shared
        assert resolve_database(path) is shared
        assert resolve_database(shared) is shared
        assert resolve_database("sqlite://") is not resolve_database("sqlite://")
        with pytest.raises(TypeError):
            resolve_database(42)

    def test_identity_leaves_the_password_out(self) -> None:
        """Two URLs of one database that differ only in the password have one identity, which
        holds neither password: it keys per-database state, never credentials."""
        one = Database("postgresql+psycopg://ci:first-secret@db.internal/results")
        two = Database("postgresql+psycopg://ci:second-secret@db.internal/results")
        assert one.identity == two.identity == "postgresql+psycopg://ci@db.internal/results"
        assert one.is_same_database(two)


class TestPickling:
    """Databases cross process boundaries as their URL and options (issue: "stores can't
    cross a process boundary")."""

    def test_round_trip_reaches_the_same_database(self, database: Database) -> None:
        """A pickled Database unpickles to one on the same URL that works: it reconnects on
        first use (before the fix: "cannot pickle '_thread._local'")."""
        restored = pickle.loads(pickle.dumps(database))
        assert restored.is_same_database(database)
        assert restored.display_url == database.display_url
        assert restored.now() > 0

    def test_unpickled_databases_are_shared(self, tmp_path: Path) -> None:
        """Unpickling the same database twice in a process gives the process's shared Database
        (one engine and one connection per thread, however many stores arrive)."""
        shared = resolve_database(f"sqlite:///{tmp_path / 'shared.db'}")
        first = pickle.loads(pickle.dumps(shared))
        assert first is shared
        assert pickle.loads(pickle.dumps(shared)) is first

    def test_options_travel(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """busy_timeout, SQLite's synchronous level and auto_migrate travel with the database,
        whatever the receiving process's own settings say."""
        monkeypatch.setenv("SQLRESULTS_BUSY_TIMEOUT", "7.5")
        monkeypatch.setenv("SQLRESULTS_SQLITE_SYNCHRONOUS", "FULL")
        database = Database(f"sqlite:///{tmp_path / 'opts.db'}", auto_migrate=False)
        data = pickle.dumps(database)
        monkeypatch.delenv("SQLRESULTS_BUSY_TIMEOUT")
        monkeypatch.delenv("SQLRESULTS_SQLITE_SYNCHRONOUS")
        restored = pickle.loads(data)
        assert restored.busy_timeout == 7.5
        assert restored.auto_migrate is False
        assert pickle.loads(pickle.dumps(restored)).busy_timeout == 7.5
        seen: list[int] = []

        def inspect_connection(connection: Any, _record: Any) -> None:
            seen.append(connection.execute("PRAGMA synchronous").fetchone()[0])

        event.listen(restored.engine, "connect", inspect_connection)
        with pytest.raises(SchemaOutOfDateError):  # auto_migrate=False travelled too
            restored.ensure_schema()
        assert seen == [SYNCHRONOUS_LEVELS["FULL"]]

    def test_a_given_clock_travels(self, tmp_path: Path) -> None:
        """A database with a clock of its own (a test's fake clock) is restored with that clock,
        as a Database of its own."""
        from conftest import FakeClock

        database = Database(f"sqlite:///{tmp_path / 'clocked.db'}", clock=FakeClock(123.0))
        restored = pickle.loads(pickle.dumps(database))
        assert restored.clock() == 123.0
        assert restored is not database

    def test_password_is_never_shown_by_the_restored_database(self) -> None:
        """The password travels inside the pickle (it is needed to connect) but the restored
        Database's repr and display URL mask it, as the original's do."""
        database = Database("postgresql+psycopg://app:hunter2-secret@db.invalid/results")
        restored = pickle.loads(pickle.dumps(database))
        assert restored.url.password == "hunter2-secret"
        assert "hunter2-secret" not in repr(restored)
        assert "hunter2-secret" not in restored.display_url

    def test_memory_database_refuses_to_travel(self) -> None:
        """An in-memory database exists in one process: pickling it is a ConfigurationError
        that says to use a file, not a TypeError about thread locals."""
        with pytest.raises(ConfigurationError, match="in-memory SQLite database"):
            pickle.dumps(Database("sqlite://"))

    def test_copies_are_the_same_handle(self) -> None:
        """copy and deepcopy of a Database (for instance inside a copied store) give the same
        handle, in-memory databases included: copying a connection handle splits nothing."""
        import copy

        database = Database("sqlite://")
        assert copy.copy(database) is database
        assert copy.deepcopy(database) is database


def unusable_locations(tmp_path: Path) -> dict[str, tuple[Path, type[BaseException]]]:
    """SQLite paths that cannot hold a database, even for root (permission bits do not stop
    root, so these use /proc, /sys and a regular file in the way), with the error expected."""
    a_file = tmp_path / "a-regular-file"
    a_file.write_text("in the way")
    return {
        "parent is missing in /proc": (Path("/proc/x/results.db"), StorageUnavailableError),
        "parent is a regular file": (a_file / "sub" / "results.db", StorageUnavailableError),
        "parent cannot be created": (Path("/sys/sqlresults-x/results.db"), ReadOnlyStorageError),
        "file cannot be created": (Path("/proc/results.db"), StorageUnavailableError),
        "path is a directory": (tmp_path, StorageUnavailableError),
    }


LOCATIONS = [
    "parent is missing in /proc",
    "parent is a regular file",
    "parent cannot be created",
    "file cannot be created",
    "path is a directory",
]


class TestUnusableSQLiteLocation:
    """SQLite-only: where a SQLite file cannot be created or opened."""

    @pytest.mark.parametrize("location", LOCATIONS)
    def test_is_a_storage_error_naming_the_path_and_the_fix(
        self, tmp_path: Path, location: str
    ) -> None:
        """A SQLite path whose directory cannot be created, or which cannot be opened as a
        file, raises StorageUnavailableError (ReadOnlyStorageError when permission is
        denied), never a raw OSError or sqlite3 error; the one-line message names the path
        and says to point SQLRESULTS_DATABASE_URL at a writable location or set
        SQLRESULTS_HOME."""
        path, expected = unusable_locations(tmp_path)[location]
        store = ResultStore(result_storage=f"sqlite:///{path}", namespace="ns")
        with pytest.raises(expected) as caught:
            store.write(1, key="k")
        error = caught.value
        assert isinstance(error, StorageUnavailableError)
        assert expected is StorageUnavailableError or isinstance(error, PermissionError)
        message = str(error)
        assert str(path) in message
        assert "SQLRESULTS_DATABASE_URL" in message
        assert "SQLRESULTS_HOME" in message
        assert "\n" not in message

    def test_unusable_sqlresults_home(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With SQLRESULTS_HOME below a regular file, the default store raises
        StorageUnavailableError naming the default file, not NotADirectoryError."""
        home = tmp_path / "a-regular-file" / "home"
        home.parent.write_text("in the way")
        monkeypatch.setenv("SQLRESULTS_HOME", str(home))
        with pytest.raises(StorageUnavailableError, match="SQLRESULTS_HOME") as caught:
            ResultStore().exists("k")
        assert str(home / "results.db") in str(caught.value)


SQLITE_MAGIC = b"SQLite format 3\x00"
PAGE = 4096  # SQLite's default page size, which sqlresults keeps


@pytest.fixture
def filled_sqlite(tmp_path: Path) -> Path:
    """A closed sqlresults SQLite file holding 300 records (about 60 pages)."""
    path = tmp_path / "results.db"
    database = Database(path)
    store = ResultStore(result_storage=database, namespace="ns")
    for index in range(300):
        store.write(os.urandom(500), key=f"k{index:03d}")
    database.close()
    assert path.read_bytes().startswith(SQLITE_MAGIC)
    assert not Path(f"{path}-wal").exists()  # checkpointed on close: all data is in the file
    return path


def damage(path: Path, how: str) -> None:
    """Damage a SQLite file the way a failing disk, a bad copy or a stray write would."""
    data = bytearray(path.read_bytes())
    if how == "pages overwritten":
        data[3 * PAGE : 13 * PAGE] = b"\xa5" * (10 * PAGE)
    elif how == "file truncated":
        del data[len(data) // 2 :]
    elif how == "header overwritten after the magic":
        data[16:100] = b"\xff" * 84
    elif how == "whole header overwritten":
        data[:100] = b"\xff" * 100
    path.write_bytes(bytes(data))


def read_everything(store: ResultStore) -> None:
    """Touch every page a store's records live on."""
    listed = list(store.keys())
    for key in listed:
        store.read(key)


class TestDamagedSQLiteFile:
    """SQLite-only: a file whose pages or header were damaged."""

    @pytest.mark.parametrize(
        "how", ["pages overwritten", "file truncated", "header overwritten after the magic"]
    )
    def test_damage_is_reported_as_such(self, filled_sqlite: Path, how: str) -> None:
        """A sqlresults file with damaged pages ("database disk image is malformed") or a
        damaged header (still starting "SQLite format 3") raises DamagedDatabaseError (a
        StorageUnavailableError): the message says the file is damaged and how to restore or
        recover it, not that it is no SQLite database; the file is left as it was."""
        damage(filled_sqlite, how)
        damaged = filled_sqlite.read_bytes()
        store = ResultStore(result_storage=filled_sqlite, namespace="ns")
        with pytest.raises(DamagedDatabaseError) as caught:
            read_everything(store)
        error = caught.value
        assert isinstance(error, StorageUnavailableError)
        message = str(error)
        assert f"{filled_sqlite} is damaged" in message
        assert "backup" in message
        assert f'sqlite3 {filled_sqlite} ".recover" | sqlite3 recovered.db' in message
        assert "not a SQLite database" not in message
        assert "\n" not in message
        store.result_storage.close()
        assert filled_sqlite.read_bytes() == damaged

    def test_a_file_that_never_was_sqlite_keeps_its_message(self, tmp_path: Path) -> None:
        """A file that is not SQLite at all (no SQLite header) is still a ConfigurationError
        saying it is not a SQLite database and to point SQLRESULTS_DATABASE_URL elsewhere."""
        path = tmp_path / "notes.db"
        path.write_bytes(b"plain text, not a database " * 300)
        with pytest.raises(ConfigurationError, match="is not a SQLite database") as caught:
            ResultStore(result_storage=path).exists("k")
        assert not isinstance(caught.value, DamagedDatabaseError)
        assert "SQLRESULTS_DATABASE_URL" in str(caught.value)

    def test_a_header_overwritten_whole_hints_at_damage(self, filled_sqlite: Path) -> None:
        """With its whole header overwritten, a sqlresults file cannot be told from a
        non-SQLite file: it gets the not-a-SQLite-database message, which also says that a
        former sqlresults database is damaged and is restored from a backup."""
        damage(filled_sqlite, "whole header overwritten")
        with pytest.raises(ConfigurationError, match="is not a SQLite database") as caught:
            ResultStore(result_storage=filled_sqlite).exists("k")
        assert "restore it from a backup" in str(caught.value)


def stored_keys(path: Path) -> list[str]:
    """The keys in the SQLite file now at ``path``, read by a Database of its own."""
    database = Database(path)
    try:
        return list(ResultStore(result_storage=database, namespace="ns").keys())
    finally:
        database.close()


class TestFileDeletedOrReplaced:
    """SQLite-only: a SQLite file deleted or replaced while a store has it open. Without a
    check, writes go on into the old (unlinked) file and are acknowledged, then lost."""

    @pytest.fixture
    def path(self, tmp_path: Path) -> Path:
        return tmp_path / "x.db"

    @pytest.fixture
    def store(self, path: Path) -> Iterator[ResultStore]:
        """A store on ``path`` holding "mine" (its connection is open)."""
        database = Database(f"sqlite:///{path}")
        store = ResultStore(result_storage=database, namespace="ns")
        store.write("my value", key="mine")
        yield store
        database.close()

    def test_a_write_after_deletion_raises_instead_of_being_lost(
        self, store: ResultStore, path: Path
    ) -> None:
        """After os.remove() of the open file, the next write raises StorageUnavailableError
        saying the file was deleted or replaced, instead of being acknowledged into the
        unlinked file; the following operation creates and migrates a new file at the path
        and works."""
        os.remove(path)
        with pytest.raises(StorageUnavailableError, match="deleted or replaced") as caught:
            store.write("lost", key="written after the deletion")
        assert str(path) in str(caught.value)
        store.write("kept", key="written later")
        assert store.read("written later").result == "kept"
        assert stored_keys(path) == ["written later"]

    def test_a_write_after_replacement_raises_instead_of_being_lost(
        self, store: ResultStore, path: Path, tmp_path: Path
    ) -> None:
        """After os.replace(other, path), the next write raises instead of going into the
        replaced file; the following operations see the file now at the path (the old
        file's write-ahead log does not leak into it)."""
        other = tmp_path / "other.db"
        other_database = Database(other)
        ResultStore(result_storage=other_database, namespace="ns").write("theirs", key="their")
        other_database.close()
        os.replace(other, path)
        with pytest.raises(StorageUnavailableError, match="deleted or replaced"):
            store.write("lost", key="written after the replacement")
        assert store.read("their").result == "theirs"
        assert not store.exists("mine")
        store.write("kept", key="written later")
        assert stored_keys(path) == ["their", "written later"]

    def test_a_read_of_a_replaced_file_raises(
        self, store: ResultStore, path: Path, tmp_path: Path
    ) -> None:
        """A read answered from the old file after a replacement raises rather than report
        a record the file at the path does not hold, once the read check interval has passed
        (reads check the file every 50 ms at most; writes always); the next read asks the new
        file."""
        other = tmp_path / "other.db"
        Database(other).ensure_schema()
        os.replace(other, path)
        time.sleep(0.06)  # past the read check interval: not a measurement
        with pytest.raises(StorageUnavailableError, match="deleted or replaced"):
            store.exists("mine")
        assert not store.exists("mine")

    def test_each_thread_notices(self, store: ResultStore, path: Path) -> None:
        """Every thread has a connection of its own, and each notices the deletion on its
        next operation, then goes on with the new file."""
        with ThreadPoolExecutor(max_workers=1) as worker:  # one thread, one connection
            worker.submit(store.write, "before", key="worker, before").result()
            os.remove(path)
            with pytest.raises(StorageUnavailableError, match="deleted or replaced"):
                store.write("lost", key="main thread")
            with pytest.raises(StorageUnavailableError, match="deleted or replaced"):
                worker.submit(store.write, "lost", key="worker, lost").result()
            worker.submit(store.write, "after", key="worker, after").result()
        store.write("after", key="main thread, after")
        assert stored_keys(path) == ["main thread, after", "worker, after"]


SECRET = "hunter2-Secret"
UNREACHABLE = "postgresql+psycopg://app@127.0.0.1:1/db"
BAD_SOCKET_DIR = "postgresql+psycopg://app@/db?host=/nonexistent-sqlresults-dir"

# Every way libpq accepts a password (or another secret) in a URL sqlresults is given.
SECRET_FORMS = {
    "userinfo": f"postgresql+psycopg://app:{SECRET}@127.0.0.1:1/db",
    "password parameter": f"{UNREACHABLE}?password={SECRET}",
    "password parameter, socket": f"{BAD_SOCKET_DIR}&password={SECRET}",
    "sslpassword parameter": f"{UNREACHABLE}?sslpassword={SECRET}",
    "keyword/value conninfo": f"{UNREACHABLE}?conninfo=connect_timeout%3D5+password%3D{SECRET}",
    "quoted keyword/value": f"{UNREACHABLE}?conninfo=password%3D%27{SECRET}+x%27",
    "URI conninfo": (
        f"{UNREACHABLE}?conninfo=postgresql%3A%2F%2Fapp%3A{SECRET}%40127.0.0.1%3A1%2Fdb"
    ),
    "keyword/value database name": f"postgresql+psycopg://app@127.0.0.1:1/db%20password%3D{SECRET}",
}


def assert_hidden(text: str) -> None:
    """``text`` shows no part of the secret."""
    assert SECRET not in text
    assert "hunter2" not in text


class TestSecrets:
    """The forms are PostgreSQL URLs that reach no server (nothing connects but the failing
    attempts), so these run without the test server."""

    @pytest.mark.parametrize("url", SECRET_FORMS.values(), ids=SECRET_FORMS.keys())
    def test_repr_str_and_display_url(self, url: str) -> None:
        """repr and str of the Database, of its URL and of its engine, and display_url, show
        no secret in any form libpq accepts; the driver still gets it."""
        database = Database(url, auto_migrate=False)
        for text in (
            repr(database),
            str(database),
            database.display_url,
            str(database.url),
            repr(database.url),
            repr(database.engine),
        ):
            assert_hidden(text)
            assert "***" in text
        assert SECRET in database.url.render_as_string(hide_password=False)

    def test_password_parameter_is_the_password(self) -> None:
        """A password= query parameter becomes the URL's password (libpq treats them the
        same), so the driver gets it as the password and every mask applies."""
        url = parse_url(f"{UNREACHABLE}?password={SECRET}&application_name=x")
        assert url.password == SECRET
        assert dict(url.query) == {"application_name": "x"}

    @pytest.mark.parametrize("url", SECRET_FORMS.values(), ids=SECRET_FORMS.keys())
    def test_connection_failure_shows_no_secret(self, url: str) -> None:
        """A failed connection (refused, or no socket) raises StorageUnavailableError whose
        message, and the driver error it was raised from, show no secret."""
        database = Database(url, auto_migrate=False)
        with pytest.raises(StorageUnavailableError) as caught:
            database.schema_revision()
        assert_hidden(str(caught.value))
        assert_hidden("".join(traceback.format_exception(caught.value)))
        assert "***" in str(caught.value)

    @pytest.mark.postgres
    def test_driver_text_echoing_a_secret_is_scrubbed(self, postgres_url: str) -> None:
        """When the server echoes a secret back (a database name holding "password=..." is
        named in "database ... does not exist"), the message and the driver's exception it
        was raised from show *** instead (PostgreSQL-only)."""
        name = f"nosuchdb password={SECRET}"
        url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
        database = Database(url, auto_migrate=False)
        with pytest.raises(StorageUnavailableError, match="does not exist") as caught:
            database.schema_revision()
        assert_hidden(str(caught.value))
        assert_hidden("".join(traceback.format_exception(caught.value)))


class TestMemoryDatabase:
    @pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
    def test_memory_database_is_shared_by_threads(self, url: str) -> None:
        """An in-memory SQLite database shows the same data to every thread of the Database,
        and to no other Database."""
        database = Database(url)
        store = ResultStore(result_storage=database, namespace="ns")
        store.write("from main", key="main")
        seen: list[Any] = []

        def other_thread() -> None:
            other = ResultStore(result_storage=database, namespace="ns")
            seen.append(other.read("main").result)
            other.write("from thread", key="thread")

        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
        assert seen == ["from main"]
        assert store.read("thread").result == "from thread"
        assert not ResultStore(result_storage=Database(url), namespace="ns").exists("main")


class TestSchema:
    def test_missing_schema_without_auto_migrate(self, empty_database_url: str) -> None:
        """With auto_migrate=False an empty database is refused with SchemaOutOfDateError naming
        `sqlresults migrate`, and nothing is created."""
        database = Database(empty_database_url, auto_migrate=False)
        store = ResultStore(result_storage=database, namespace="ns")
        with pytest.raises(SchemaOutOfDateError, match="sqlresults migrate"):
            store.exists("k")
        with pytest.raises(SchemaOutOfDateError, match="sqlresults migrate"):
            store.write(1, key="k")
        assert database.schema_revision() is None
        database.close()

    @pytest.mark.parametrize("setting", [None, "true", "false"])
    def test_auto_migrate_setting(
        self,
        backend: str,
        empty_database_url: str,
        setting: str | None,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """SQLRESULTS_AUTO_MIGRATE unset migrates SQLite but not PostgreSQL; true migrates both;
        false neither."""
        if setting is not None:
            monkeypatch.setenv("SQLRESULTS_AUTO_MIGRATE", setting)
        migrates = {None: backend == "sqlite", "true": True, "false": False}[setting]
        database = Database(empty_database_url)
        assert database.auto_migrate is migrates
        store = ResultStore(result_storage=database, namespace="ns")
        if migrates:
            store.write("v", key="k")
            assert store.read("k").result == "v"
            assert database.schema_revision() == SCHEMA_REVISION
        else:
            with pytest.raises(SchemaOutOfDateError, match="sqlresults migrate"):
                store.exists("k")
            assert database.schema_revision() is None
        database.close()

    def test_explicit_auto_migrate_wins_over_the_setting(
        self, empty_database_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Database(auto_migrate=True) migrates even when SQLRESULTS_AUTO_MIGRATE=false."""
        monkeypatch.setenv("SQLRESULTS_AUTO_MIGRATE", "false")
        database = Database(empty_database_url, auto_migrate=True)
        ResultStore(result_storage=database, namespace="ns").write(1, key="k")
        assert database.schema_revision() == SCHEMA_REVISION
        database.close()

    def test_newer_schema_is_refused(self, empty_database_url: str) -> None:
        """A database stamped with a revision this version does not know (a newer sqlresults
        migrated it) is refused, even with auto-migration, with a message saying to upgrade
        sqlresults; the stamp is left alone."""
        setup = Database(empty_database_url, auto_migrate=True)
        setup.ensure_schema()
        with setup.engine.begin() as connection:
            connection.exec_driver_sql(f"UPDATE {VERSION_TABLE} SET version_num = 'ffffffffffff'")
        setup.close()
        database = Database(empty_database_url, auto_migrate=True)
        with pytest.raises(SchemaOutOfDateError, match="Upgrade sqlresults") as caught:
            ResultStore(result_storage=database, namespace="ns").exists("k")
        assert "ffffffffffff" in str(caught.value)
        assert database.schema_revision() == "ffffffffffff"
        database.close()

    def test_migrated_database_passes_the_check(self, database: Database) -> None:
        """A database at head passes ensure_schema and reports its revision, stamped in
        sqlresults' own version table."""
        database.ensure_schema()
        assert database.schema_revision() == SCHEMA_REVISION
        with database.engine.connect() as connection:
            sql = f"SELECT version_num FROM {VERSION_TABLE}"
            rows = connection.exec_driver_sql(sql).fetchall()
        assert [row[0] for row in rows] == [SCHEMA_REVISION]


class TestSQLitePragmas:
    @pytest.mark.parametrize("level", [None, "OFF", "NORMAL", "FULL", "EXTRA", "full"])
    def test_wal_and_synchronous(
        self, sqlite_path: Path, level: str | None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Every SQLite connection runs in WAL mode with PRAGMA synchronous from
        SQLRESULTS_SQLITE_SYNCHRONOUS (NORMAL by default; case-insensitive). SQLite-only."""
        if level is not None:
            monkeypatch.setenv("SQLRESULTS_SQLITE_SYNCHRONOUS", level)
        database = Database(sqlite_path)
        seen: list[tuple[str, int]] = []

        def inspect_connection(connection: Any, _record: Any) -> None:
            # Runs after sqlresults' own "connect" listener, registered when the engine was made.
            journal = connection.execute("PRAGMA journal_mode").fetchone()[0]
            seen.append((journal, connection.execute("PRAGMA synchronous").fetchone()[0]))

        event.listen(database.engine, "connect", inspect_connection)
        ResultStore(result_storage=database, namespace="ns").write(1, key="k")
        expected = SYNCHRONOUS_LEVELS[(level or "NORMAL").upper()]
        assert seen
        assert set(seen) == {("wal", expected)}
        database.close()


class TestForkSafety:
    def test_child_process_uses_the_parents_store(self, store: ResultStore, tmp_path: Path) -> None:
        """After fork() the child reads and writes through the parent's store on connections
        of its own, and the parent keeps working after the child exits."""
        store.write("from parent", key="parent")
        assert store.read("parent").result == "from parent"
        errors = tmp_path / "child-error.txt"
        with warnings.catch_warnings():
            # Python 3.12+ warns about fork() in a multi-threaded process (pytest-xdist's
            # workers have threads); the child only uses sqlresults before it exits.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 0
            try:
                assert store.read("parent").result == "from parent"
                store.write("from child", key="child")
                assert store.read("child").result == "from child"
                assert store.exists("child")
            except BaseException:
                errors.write_text(traceback.format_exc())
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, errors.read_text()
        assert store.read("child").result == "from child"
        store.write("parent again", key="parent")
        assert store.read("parent").result == "parent again"
        assert store.stats().records == 2


class TestThreads:
    def test_many_threads_share_one_store(self, store: ResultStore) -> None:
        """8 threads each writing and reading back 200 records on one store all succeed."""
        threads_count, per_thread = 8, 200
        failures: list[str] = []
        start = threading.Barrier(threads_count)

        def work(index: int) -> None:
            try:
                start.wait()
                for item in range(per_thread):
                    key = f"t{index}/{item}"
                    store.write((index, item), key=key)
                    if store.read(key).result != (index, item):
                        failures.append(f"{key} read back wrong")
            except Exception:
                failures.append(traceback.format_exc())

        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads_count)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert failures == []
        assert store.stats().records == threads_count * per_thread


class TestTransaction:
    def test_commit_returns_the_work_result(self, store: ResultStore) -> None:
        """transaction() commits what work did and returns its result."""
        database = store.result_storage

        def work(transaction: WriteTransaction) -> int:
            row = transaction.fetchone(queries.lock_acquire, lock_params(store.namespace, "k"))
            assert row is not None
            return int(row[0])

        assert database.transaction(work) >= 1
        assert store.is_lock_holder("k", "h")

    def test_exception_rolls_back(self, store: ResultStore) -> None:
        """An exception inside transaction() rolls back every statement and propagates."""
        database = store.result_storage

        class BoomError(Exception):
            pass

        def work(transaction: WriteTransaction) -> None:
            transaction.fetchone(queries.lock_acquire, lock_params(store.namespace, "k"))
            assert transaction.fetchone(queries.lock_renew, lock_params(store.namespace, "k"))
            raise BoomError

        with pytest.raises(BoomError):
            database.transaction(work)
        assert not store.is_locked("k")
        assert store.acquire_lock("k", holder="other", timeout=0)

    def test_execute_counts_changed_rows(self, store: ResultStore) -> None:
        """WriteTransaction.execute and Database.execute return the number of rows changed,
        for statements with RETURNING too."""
        database = store.result_storage
        database.fetchone(queries.lock_acquire, lock_params(store.namespace, "k"))
        renewed = database.transaction(
            lambda transaction: transaction.execute(
                queries.lock_renew, lock_params(store.namespace, "k")
            )
        )
        assert renewed == 1
        assert database.execute(queries.lock_release, lock_params(store.namespace, "k")) == 1
        assert database.execute(queries.lock_release, lock_params(store.namespace, "k")) == 0
        assert not store.is_locked("k")

    def test_close_keeps_the_database_usable(self, store: ResultStore) -> None:
        """After close() the next operation reopens a connection."""
        store.write(1, key="k")
        store.result_storage.close()
        assert store.read("k").result == 1

    def test_now_follows_a_given_clock(self, database_url: str) -> None:
        """Database.now() is the given clock's time (on PostgreSQL too)."""
        database = Database(database_url, clock=lambda: 1_234_567_890.5)
        assert database.now() == 1_234_567_890.5
        database.close()


def hold_write_lock(path: Path, locked: threading.Event, release: threading.Event) -> None:
    """Hold SQLite's write lock on ``path`` (BEGIN IMMEDIATE on a raw connection) until
    ``release`` is set."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait()
        connection.execute("COMMIT")
    finally:
        connection.close()


def busy_operations(store: ResultStore) -> dict[str, Any]:
    """Two ways to write: a store write (one autocommit statement) and a transaction()."""
    return {
        "write": lambda: store.write("v", key="k"),
        "transaction": lambda: store.result_storage.transaction(
            lambda transaction: transaction.fetchone(
                queries.lock_acquire, lock_params(store.namespace, "k")
            )
        ),
    }


def written(store: ResultStore, operation: str) -> bool:
    """Whether the busy operation's change is in the database."""
    return store.exists("k") if operation == "write" else store.is_locked("k")


class TestBusySQLite:
    @pytest.mark.parametrize("operation", ["write", "transaction"])
    def test_write_waits_out_a_busy_database(self, sqlite_path: Path, operation: str) -> None:
        """A write or transaction while another connection holds the write lock is retried and
        completes after the lock is released (SQLite-only: PostgreSQL has no database-wide
        write lock)."""
        store = ResultStore(result_storage=Database(sqlite_path), namespace="ns")
        assert not written(store, operation)
        locked, release = threading.Event(), threading.Event()
        events: list[str] = []
        holder = threading.Thread(target=hold_write_lock, args=(sqlite_path, locked, release))
        holder.start()
        locked.wait()
        releaser = threading.Timer(0.3, lambda: (events.append("released"), release.set()))
        releaser.start()
        try:
            busy_operations(store)[operation]()
            events.append("written")
        finally:
            release.set()
            holder.join()
            releaser.join()
        assert events == ["released", "written"]
        assert written(store, operation)

    @pytest.mark.parametrize("operation", ["write", "transaction"])
    def test_busy_timeout_gives_up(
        self, sqlite_path: Path, operation: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With SQLRESULTS_BUSY_TIMEOUT=0.2 and the write lock held longer, a write or
        transaction raises StorageUnavailableError naming the setting, and nothing is written
        (SQLite-only)."""
        monkeypatch.setenv("SQLRESULTS_BUSY_TIMEOUT", "0.2")
        store = ResultStore(result_storage=Database(sqlite_path), namespace="ns")
        assert store.result_storage.busy_timeout == 0.2
        assert not written(store, operation)
        locked, release = threading.Event(), threading.Event()
        holder = threading.Thread(target=hold_write_lock, args=(sqlite_path, locked, release))
        holder.start()
        locked.wait()
        try:
            with pytest.raises(StorageUnavailableError, match="SQLRESULTS_BUSY_TIMEOUT"):
                busy_operations(store)[operation]()
            assert not written(store, operation)
        finally:
            release.set()
            holder.join()
        assert not written(store, operation)
        assert store.stats() == StoreStats(records=0, payload_bytes=0, expired=0, locks_held=0)


class TestOutages:
    def test_an_unreachable_server_is_an_outage(self) -> None:
        """An operation on a PostgreSQL server that nobody runs raises StorageUnavailableError,
        and is_outage says it is an outage: one that may end by itself (no server needed)."""
        database = Database(
            "postgresql+psycopg://postgres@/db?host=/nonexistent-sqlresults-dir&port=1",
            auto_migrate=False,
        )
        with pytest.raises(StorageUnavailableError) as caught:
            database.fetchone(queries.clock, {})
        assert database.is_outage(caught.value)

    @pytest.mark.parametrize("case", ["stayed busy", "path is a directory", "read-only"])
    def test_failures_that_waiting_does_not_cure_are_no_outage(
        self, case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A SQLite database that stayed busy for the busy timeout (already waited out), a
        path that is a directory, or a directory that cannot be created (read-only): each
        raises StorageUnavailableError (or its subclass), and none is an outage (SQLite-only)."""
        monkeypatch.setenv("SQLRESULTS_BUSY_TIMEOUT", "0.05")
        path = {
            "stayed busy": tmp_path / "busy.db",
            "path is a directory": tmp_path,
            "read-only": Path("/sys/sqlresults-x/results.db"),
        }[case]
        store = ResultStore(result_storage=Database(path), namespace="ns")
        locked, release = threading.Event(), threading.Event()
        holder = None
        if case == "stayed busy":
            store.exists("k")  # creates the file
            holder = run_in_thread(hold_write_lock, path, locked, release)
            locked.wait()
        try:
            with pytest.raises(StorageUnavailableError) as caught:
                store.write("v", key="k")
        finally:
            release.set()
            if holder is not None:
                join(holder)
        assert not store.result_storage.is_outage(caught.value)


@pytest.mark.postgres
class TestWakeups:
    """PostgreSQL only: SQLite has no LISTEN/NOTIFY (its pause is a sleep)."""

    def test_a_pause_whose_session_is_ended_listens_again(
        self, postgres_url: str, namespace: str, own_sessions: OwnSessions
    ) -> None:
        """The server ends the session a waiter listens on. The pause raises nothing: it
        listens again on a new session and returns at once (so the waiter checks for a release
        it may have missed), and the next pause, even an hour long, wakes at the release
        announced on the new session."""
        database = Database(own_sessions.url)
        announcer = SQLLockManager(Database(postgres_url), namespace=namespace)
        paused: list[str] = []

        def pause_an_hour(pause: Any) -> None:
            pause(3600.0)
            paused.append("returned")

        with database.wakeups(release_payload(namespace, "k")) as pause:
            ended = own_sessions.terminate()
            assert ended, "the waiter was not listening"
            join(run_in_thread(pause_an_hour, pause))
            assert paused == ["returned"]
            wait_until(lambda: own_sessions.listening() - ended)
            announcer.acquire_lock("k", "holder1")
            announcer.release_lock("k", "holder1")
            join(run_in_thread(pause_an_hour, pause))
            assert paused == ["returned", "returned"]
        database.close()
        announcer.database.close()


def public_queries() -> list[Any]:
    """Every public statement factory of sqlresults.queries."""
    return [
        function
        for name, function in inspect.getmembers(queries, inspect.isfunction)
        if function.__module__ == queries.__name__ and not name.startswith("_")
    ]


class TestStatements:
    def test_there_are_statements(self) -> None:
        """The statement list covers the store's and the lock manager's operations."""
        names = {function.__name__ for function in public_queries()}
        assert {"record_exists", "record_read", "record_upsert", "lock_acquire"} <= names

    @pytest.mark.parametrize("query", public_queries(), ids=lambda function: function.__name__)
    def test_statement_compiles_without_constant_binds(
        self, database: Database, query: Any
    ) -> None:
        """Every statement compiles for the backend's driver with named parameters only (a
        Python constant would become an unbound anonymous parameter)."""
        sql = database.sql(query)
        assert isinstance(sql, str)
        assert sql.strip()
        assert "param_" not in sql
        assert database.sql(query) is sql


def backend_pid(database: Database) -> int:
    """The server process of the pooled PostgreSQL connection the next operation will use
    (the pool is LIFO: the next checkout gets the connection the last operation used)."""
    proxy = database.engine.raw_connection()
    try:
        return int(proxy.dbapi_connection.execute("SELECT pg_backend_pid()").fetchone()[0])
    finally:
        proxy.close()


def lock_state_params(namespace: str) -> dict[str, Any]:
    """Parameters of queries.lock_state, a statement validation does not guard when called
    through Database directly."""
    return {"ns": namespace, "key": "k"}


class TestBadValuesReachingTheDriver:
    """Values that validation would refuse, sent straight through Database, as a future
    statement that forgot to validate would."""

    @pytest.mark.postgres
    def test_nul_is_bad_input_not_an_outage(self, postgres_url: str, namespace: str) -> None:
        """A NUL in a text parameter (psycopg refuses it on the client: "PostgreSQL text
        fields cannot contain NUL (0x00) bytes") raises InvalidArgumentError, in autocommit
        and inside a write transaction, and is not taken for a dropped connection: the pool
        keeps its connections (same server process before and after) and the store goes on
        working (PostgreSQL-only: SQLite stores NUL)."""
        database = Database(postgres_url)
        store = ResultStore(result_storage=database, namespace=namespace)
        store.write("kept", key="k")
        pid = backend_pid(database)
        pooled = database.engine.pool.checkedin()
        bad = lock_state_params(f"{namespace}\x00")

        with pytest.raises(InvalidArgumentError, match="NUL") as caught:
            database.fetchone(queries.lock_state, bad)
        assert not isinstance(caught.value, StorageUnavailableError)
        with pytest.raises(InvalidArgumentError, match="NUL"):
            database.transaction(lambda transaction: transaction.fetchone(queries.lock_state, bad))

        assert database.engine.pool.checkedin() == pooled
        assert backend_pid(database) == pid
        assert store.read("k").result == "kept"
        database.close()

    def test_text_the_driver_cannot_encode(self, database: Database, namespace: str) -> None:
        """A lone surrogate in a text parameter (not UTF-8: both drivers raise
        UnicodeEncodeError) raises InvalidArgumentError, not the driver's exception, and the
        database stays usable."""
        bad = lock_state_params(f"{namespace}\ud800")
        with pytest.raises(InvalidArgumentError) as caught:
            database.fetchone(queries.lock_state, bad)
        assert not isinstance(caught.value, UnicodeError)
        assert database.fetchone(queries.lock_state, lock_state_params(namespace)) is None


@pytest.mark.postgres
class TestDroppedConnection:
    """PostgreSQL only: SQLite has no server to lose."""

    def test_a_terminated_connection_is_replaced(self, postgres_url: str, namespace: str) -> None:
        """When the server ends the pooled connection an operation is about to use, the
        operation reconnects once and succeeds: a real disconnect is still a disconnect."""
        database = Database(postgres_url)
        store = ResultStore(result_storage=database, namespace=namespace)
        store.write("kept", key="k")
        doomed = backend_pid(database)
        killer = Database(postgres_url)
        with killer.engine.connect() as connection:
            connection.exec_driver_sql(f"SELECT pg_terminate_backend({doomed})")
        killer.close()

        assert store.read("k").result == "kept"
        assert backend_pid(database) != doomed
        database.close()


@pytest.mark.postgres
class TestPooledConnectionBuffers:
    """PostgreSQL only: the pool and libpq's never-shrinking buffers are PostgreSQL's; SQLite
    connections are per thread and read payloads without such buffers."""

    @staticmethod
    def _backend_pid(database: Database) -> int:
        return backend_pid(database)

    def test_small_values_keep_the_connection(self, postgres_url: str, namespace: str) -> None:
        """Operations on small values return their connection to the pool for reuse."""
        database = Database(postgres_url)
        store = ResultStore(result_storage=database, namespace=namespace)
        store.write(b"x" * 1000, key="small")
        before = self._backend_pid(database)
        store.read("small")
        store.write(b"y" * 1000, key="small")
        assert self._backend_pid(database) == before
        database.close()

    @pytest.mark.parametrize("operation", ["write", "read", "serializable commit"])
    def test_a_large_value_retires_its_connection(
        self, postgres_url: str, namespace: str, operation: str
    ) -> None:
        """A connection that carried a value over 16 MiB (a write, a read, or the write inside
        a SERIALIZABLE commit) is closed instead of pooled, so the process does not keep
        libpq's grown buffers; the next operation gets a fresh connection."""
        from sqlresults import IsolationLevel, transaction

        database = Database(postgres_url, auto_migrate=False)
        store = ResultStore(result_storage=database, namespace=namespace)
        large = os.urandom(17 * 1024 * 1024)
        if operation == "read":
            store.write(large, key="big")
        before = self._backend_pid(database)
        if operation == "write":
            store.write(large, key="big")
        elif operation == "read":
            store.cache.clear()
            assert store.read("big").result == large
        else:
            with transaction("big", store, isolation_level=IsolationLevel.SERIALIZABLE) as txn:
                txn.stage(large)
            assert store.exists("big")  # small: checks out a connection without retiring it
        assert self._backend_pid(database) != before
        database.close()
