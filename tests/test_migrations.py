"""Tests for sqlresults.migrations and the Alembic tree under alembic/ (DESIGN §3, §7).

Tests that touch a database run on SQLite and PostgreSQL unless their parametrization says
otherwise: a single head, upgrade from empty, an up/down stairway, ``alembic check`` against
drift, head→base→head with rows present, coexistence with another application's tables,
concurrent first use, the auto-migration rules, the offline (``--sql``) script applied by
hand, and the provenance revision (2) on databases holding rows: upgraded from revision 1,
downgraded back to it with every row still verifiable, and its offline script.
"""

from __future__ import annotations

import itertools
import multiprocessing
import sqlite3
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, insert, inspect, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from sqlresults import migrations, schema
from sqlresults.database import Database
from sqlresults.errors import (
    ConfigurationError,
    IntegrityError,
    RecordNotFoundError,
    SchemaOutOfDateError,
)
from sqlresults.integrity import Signer, record_checksum, verify_record
from sqlresults.records import Provenance
from sqlresults.results import ResultStore
from sqlresults.serializers import PickleSerializer

OUR_TABLES = {"sqlresults_records", "sqlresults_locks"}
UNKNOWN_REVISION = "ffffffffffff"
REVISION_1 = "4f0c2a9d1b7e"  # records and locks
PROVENANCE_REVISION = "9b5fefa6be0b"  # adds sqlresults_records.provenance
LEAN_INDEX_REVISION = "c3d8e1f05a2b"  # makes the records' expiry index partial
LEAN_LOCKS_REVISION = "d4a7b2c9e6f1"  # locks WITHOUT ROWID on SQLite, no locks expiry index
SIGNING_KEY = "migration-test-signing-key-0123"
PROVENANCE = Provenance(
    task="pipeline.train",
    flow_run_id="0b7f3f0e-9a7e-4a4b-8f1e-58b3c7f0a2d4",
    cache_policy="INPUTS + TASK_SOURCE",
    components={"task_source": "5e2a", "inputs.model": "9f1c"},
)

# A process that never finishes is a failure, not something to wait for forever.
PROCESS_TIMEOUT = 120


# -- helpers --------------------------------------------------------------------------------


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    """A throwaway SQLAlchemy engine, independent of sqlresults, for looking at a database."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


def _table_names(url: str) -> set[str]:
    with _engine(url) as engine:
        return set(inspect(engine).get_table_names())


def _execute(url: str, *statements: str) -> None:
    with _engine(url) as engine, engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


def _fetchall(url: str, sql: str) -> list[tuple[Any, ...]]:
    with _engine(url) as engine, engine.connect() as connection:
        return [tuple(row) for row in connection.exec_driver_sql(sql)]


def _libpq_uri(url: str) -> str:
    """The SQLAlchemy URL as a URI psycopg accepts (``postgresql://…``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _revisions_oldest_first() -> list[migrations.Revision]:
    return list(reversed(migrations.history()))


def _record_columns(url: str) -> list[str]:
    with _engine(url) as engine:
        return [column["name"] for column in inspect(engine).get_columns("sqlresults_records")]


# The columns revision 1 has, as sqlresults wrote them before provenance existed.
_REVISION_1_COLUMNS = [column for column in schema.records.columns if column.name != "provenance"]


def _insert_as_revision_1(
    url: str, namespace: str, values: dict[str, Any], *, signing_key: str | None = None
) -> None:
    """Write records into a database at revision 1 as sqlresults did then, bypassing the
    store (which would migrate the database first): pickled payloads, the checksum over the
    whole record (pinned against that version's in test_integrity), signed when a key is
    given."""
    spec = PickleSerializer().spec_json()
    signer = None if signing_key is None else Signer(signing_key.encode())
    rows = []
    for index, (key, value) in enumerate(values.items()):
        payload = PickleSerializer().dumps(value)
        rows.append(
            {
                "namespace": namespace,
                "key": key,
                "payload": payload,
                "serializer": spec,
                "checksum": record_checksum(namespace, key, spec, None, payload),
                "signature": None
                if signer is None
                else signer.sign(namespace, key, spec, None, payload),
                "size": len(payload),
                "created": 1_800_000_000.0,
                "updated": 1_800_000_000.0,
                "expires": None,
                "version": index + 1,
            }
        )
    with _engine(url) as engine, engine.begin() as connection:
        connection.execute(insert(schema.records), rows)


def _verify_rows_as_revision_1(url: str, namespace: str, signing_key: str | None) -> int:
    """Check every record of the namespace as sqlresults verified records before provenance
    existed (no provenance column to read); return how many there were.

    Raises:
        IntegrityError: A row fails its checksum, or its signature.
    """
    signer = None if signing_key is None else Signer(signing_key.encode())
    columns = [c for c in _REVISION_1_COLUMNS if c.name not in {"size", "created", "updated"}]
    with _engine(url) as engine, engine.connect() as connection:
        rows = connection.execute(
            select(*columns).where(schema.records.c.namespace == namespace)
        ).all()
    for row in rows:
        verify_record(
            row.namespace,
            row.key,
            row.serializer,
            row.expires,
            bytes(row.payload),
            row.checksum,
            None if row.signature is None else bytes(row.signature),
            signer,
        )
    return len(rows)


def _create_foreign_application(url: str) -> None:
    """Another application's tables in the same database, Alembic version table included."""
    _execute(
        url,
        "CREATE TABLE app_items (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL)",
        "CREATE INDEX ix_app_items_name ON app_items (name)",
        "INSERT INTO app_items (id, name) VALUES (1, 'kept')",
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
        "INSERT INTO alembic_version (version_num) VALUES ('abc123def456')",
    )


def _assert_foreign_application_intact(url: str) -> None:
    assert _fetchall(url, "SELECT id, name FROM app_items") == [(1, "kept")]
    assert _fetchall(url, "SELECT version_num FROM alembic_version") == [("abc123def456",)]
    with _engine(url) as engine:
        indexes = inspect(engine).get_indexes("app_items")
    assert [index["name"] for index in indexes] == ["ix_app_items_name"]


@pytest.fixture
def open_database() -> Iterator[Callable[..., Database]]:
    """Open :class:`Database` objects that are closed when the test ends."""
    opened: list[Database] = []

    def open_(url: str, **kwargs: Any) -> Database:
        database = Database(url, **kwargs)
        opened.append(database)
        return database

    yield open_
    for database in opened:
        database.close()


# -- worker processes (module level, so the spawn start method can import them) ------------


def _write_on_first_use(url: str, index: int, barrier: Any, results: Any) -> None:
    try:
        barrier.wait(timeout=PROCESS_TIMEOUT)
        store = ResultStore(result_storage=url, namespace="first-use")
        store.write({"writer": index}, key=f"k{index}")
        assert store.read(f"k{index}").result == {"writer": index}
        results.put((index, None))
    except BaseException:
        results.put((index, traceback.format_exc()))


def _upgrade_concurrently(url: str, index: int, barrier: Any, results: Any) -> None:
    try:
        database = Database(url)
        barrier.wait(timeout=PROCESS_TIMEOUT)
        migrations.upgrade(database)
        database.close()
        results.put((index, None))
    except BaseException:
        results.put((index, traceback.format_exc()))


def _run_in_processes(target: Callable[..., None], url: str, count: int) -> dict[int, str | None]:
    """Start ``count`` spawned processes that pass a barrier together; return their outcomes
    (None for success, else the traceback)."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(count)
    results = context.Queue()
    processes = [
        context.Process(target=target, args=(url, index, barrier, results))
        for index in range(count)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = dict(results.get(timeout=PROCESS_TIMEOUT) for _ in processes)
    finally:
        for process in processes:
            process.join(timeout=PROCESS_TIMEOUT)
            if process.is_alive():
                process.kill()
                process.join()
        results.close()
        results.join_thread()
    assert [process.exitcode for process in processes] == [0] * count
    return outcomes


# -- tests ----------------------------------------------------------------------------------


class TestRevisionTree:
    def test_exactly_one_head(self) -> None:
        """The tree never branches: there is exactly one head, and it is head_revision()."""
        config = Config()
        config.set_main_option("script_location", str(migrations.script_location()))
        heads = ScriptDirectory.from_config(config).get_heads()
        assert heads == [migrations.head_revision()]

    def test_schema_revision_is_the_head(self) -> None:
        """The revision the store checks at start-up without importing Alembic is the head
        of the migration tree."""
        assert migrations.head_revision() == schema.SCHEMA_REVISION

    def test_history_is_newest_first_with_messages(self) -> None:
        """history() starts at the head and follows down_revision to the base, each step with
        its message and exactly the first marked as head."""
        steps = migrations.history()
        assert steps
        assert steps[0].revision == migrations.head_revision()
        assert [step.is_head for step in steps] == [True] + [False] * (len(steps) - 1)
        for newer, older in itertools.pairwise(steps):
            assert newer.down_revision == older.revision
        assert steps[-1].down_revision is None
        assert all(step.message for step in steps)
        assert len({step.revision for step in steps}) == len(steps)

    def test_script_location_holds_the_tree(self) -> None:
        """script_location() is a directory with env.py, the template and the versions, with
        no __init__.py that could shadow the alembic library."""
        location = migrations.script_location()
        assert (location / "env.py").is_file()
        assert (location / "script.py.mako").is_file()
        assert list((location / "versions").glob("*.py"))
        assert not (location / "__init__.py").exists()

    def test_every_revision_file_is_in_the_history(self) -> None:
        """Each file under versions/ names its revision in its file name, and every revision
        of the history has a file."""
        files = sorted((migrations.script_location() / "versions").glob("*.py"))
        revisions = {step.revision for step in migrations.history()}
        assert len(files) == len(revisions)
        for revision in revisions:
            assert [f for f in files if f"_{revision}_" in f.name], revision


class TestUpgrade:
    def test_upgrade_on_an_empty_database(
        self, empty_database_url: str, open_database: Callable[..., Database]
    ) -> None:
        """Upgrading an empty database creates both tables, the records' expiry index (the
        locks have none since revision 4) and our own version table (never alembic_version),
        at the head revision."""
        database = open_database(empty_database_url, auto_migrate=False)
        assert migrations.current_revision(database) is None

        migrations.upgrade(database)

        with _engine(empty_database_url) as engine:
            inspector = inspect(engine)
            assert set(inspector.get_table_names()) == OUR_TABLES | {schema.VERSION_TABLE}
            indexes = {
                table: [(ix["name"], ix["column_names"]) for ix in inspector.get_indexes(table)]
                for table in OUR_TABLES
            }
            assert indexes == {
                "sqlresults_records": [("ix_sqlresults_records_expires", ["expires"])],
                "sqlresults_locks": [],
            }
        assert "alembic_version" not in _table_names(empty_database_url)
        assert _fetchall(empty_database_url, f"SELECT version_num FROM {schema.VERSION_TABLE}") == [
            (migrations.head_revision(),)
        ]
        assert migrations.current_revision(database) == migrations.head_revision()

    def test_upgrading_twice_is_a_no_op(
        self, empty_database_url: str, open_database: Callable[..., Database], namespace: str
    ) -> None:
        """A second upgrade to head changes nothing: same revision, same tables, rows kept."""
        database = open_database(empty_database_url, auto_migrate=False)
        migrations.upgrade(database)
        store = ResultStore(result_storage=database, namespace=namespace)
        store.write("kept", key="k")

        migrations.upgrade(database)

        assert migrations.current_revision(database) == migrations.head_revision()
        assert _table_names(empty_database_url) == OUR_TABLES | {schema.VERSION_TABLE}
        assert _fetchall(empty_database_url, f"SELECT count(*) FROM {schema.VERSION_TABLE}") == [
            (1,)
        ]
        assert store.read("k").result == "kept"

    def test_unknown_target_revision_is_a_configuration_error(
        self, empty_database_url: str, open_database: Callable[..., Database]
    ) -> None:
        """Asking for a revision the tree does not have raises ConfigurationError (not
        Alembic's CommandError) and creates nothing."""
        database = open_database(empty_database_url, auto_migrate=False)
        with pytest.raises(ConfigurationError, match="nosuchrev"):
            migrations.upgrade(database, "nosuchrev")
        assert _table_names(empty_database_url) & OUR_TABLES == set()

    def test_stairway(
        self, empty_database_url: str, open_database: Callable[..., Database]
    ) -> None:
        """For every revision in order: upgrade to it, downgrade one step, upgrade again. Each
        step lands where it should and the walk ends at head."""
        database = open_database(empty_database_url, auto_migrate=False)
        for step in _revisions_oldest_first():
            migrations.upgrade(database, step.revision)
            assert migrations.current_revision(database) == step.revision
            migrations.downgrade(database, "-1")
            assert migrations.current_revision(database) == step.down_revision
            migrations.upgrade(database, step.revision)
            assert migrations.current_revision(database) == step.revision
        assert migrations.current_revision(database) == migrations.head_revision()
        migrations.check(database)  # raises SchemaOutOfDateError on drift


class TestCheck:
    def test_no_drift_between_schema_and_migrations(
        self, database_url: str, open_database: Callable[..., Database]
    ) -> None:
        """``alembic check`` finds nothing to autogenerate: sqlresults.schema and the
        migration tree describe the same tables, types, indexes and comments."""
        database = open_database(database_url)
        migrations.check(database)  # raises SchemaOutOfDateError on drift

    def test_drift_is_detected(
        self, empty_database_url: str, open_database: Callable[..., Database]
    ) -> None:
        """When the database lacks something the schema declares, check() fails with
        SchemaOutOfDateError naming the difference, proving the check can fail."""
        database = open_database(empty_database_url, auto_migrate=False)
        migrations.upgrade(database)
        _execute(empty_database_url, "DROP INDEX ix_sqlresults_records_expires")
        with pytest.raises(SchemaOutOfDateError, match="ix_sqlresults_records_expires"):
            migrations.check(database)

    def test_other_applications_tables_are_not_drift(
        self, empty_database_url: str, open_database: Callable[..., Database]
    ) -> None:
        """Tables that are not ours (including another alembic_version) are ignored by the
        check, so sqlresults can share a database with an application."""
        _create_foreign_application(empty_database_url)
        database = open_database(empty_database_url, auto_migrate=False)
        migrations.upgrade(database)
        migrations.check(database)  # raises SchemaOutOfDateError on drift


class TestHeadBaseHead:
    def test_round_trip_with_rows(
        self, empty_database_url: str, open_database: Callable[..., Database], namespace: str
    ) -> None:
        """With records and a lock present, downgrading to base drops both tables (and their
        rows); upgrading again gives empty tables that work."""
        database = open_database(empty_database_url, auto_migrate=False)
        migrations.upgrade(database)
        store = ResultStore(result_storage=database, namespace=namespace)
        store.write({"a": 1}, key="a")
        store.write(b"\x00" * 10_000, key="big")
        assert store.acquire_lock("locked", holder="h1")
        assert _fetchall(empty_database_url, "SELECT count(*) FROM sqlresults_records") == [(2,)]

        migrations.downgrade(database, "base")

        assert migrations.current_revision(database) is None
        assert _table_names(empty_database_url) & OUR_TABLES == set()

        migrations.upgrade(database)

        assert migrations.current_revision(database) == migrations.head_revision()
        for table in OUR_TABLES:
            assert _fetchall(empty_database_url, f"SELECT count(*) FROM {table}") == [(0,)]
        fresh = open_database(empty_database_url, auto_migrate=False)
        store = ResultStore(result_storage=fresh, namespace=namespace)
        assert not store.exists("a")
        with pytest.raises(RecordNotFoundError):
            store.read("a")
        assert not store.is_locked("locked")
        store.write({"b": 2}, key="b")
        assert store.read("b").result == {"b": 2}
        assert list(store.keys()) == ["b"]

    def test_other_applications_tables_are_left_alone(
        self, empty_database_url: str, open_database: Callable[..., Database]
    ) -> None:
        """Upgrade and downgrade touch only sqlresults tables: another application's table,
        index, rows and alembic_version survive both."""
        _create_foreign_application(empty_database_url)
        database = open_database(empty_database_url, auto_migrate=False)

        migrations.upgrade(database)
        _assert_foreign_application_intact(empty_database_url)
        assert migrations.current_revision(database) == migrations.head_revision()

        migrations.downgrade(database, "base")
        _assert_foreign_application_intact(empty_database_url)
        assert _table_names(empty_database_url) & OUR_TABLES == set()

        migrations.upgrade(database)
        _assert_foreign_application_intact(empty_database_url)
        assert _table_names(empty_database_url) >= OUR_TABLES


@pytest.mark.slow
class TestConcurrentFirstUse:
    @pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
    def test_processes_share_a_new_sqlite_file(self, empty_database_url: str) -> None:
        """Four processes open stores on the same new SQLite file at once and write. SQLite
        files are migrated on first use by default, so all four race to create the schema:
        every write succeeds and the file ends with one schema at head."""
        outcomes = _run_in_processes(_write_on_first_use, empty_database_url, 4)

        assert outcomes == dict.fromkeys(range(4))
        assert _fetchall(empty_database_url, f"SELECT version_num FROM {schema.VERSION_TABLE}") == [
            (migrations.head_revision(),)
        ]
        assert _table_names(empty_database_url) == OUR_TABLES | {schema.VERSION_TABLE}
        assert _fetchall(empty_database_url, "SELECT key FROM sqlresults_records ORDER BY key") == [
            (f"k{index}",) for index in range(4)
        ]

    @pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
    def test_concurrent_upgrades_on_postgresql(self, empty_database_url: str) -> None:
        """PostgreSQL is never migrated implicitly by default, so four processes call
        migrations.upgrade() on an empty database at once: the advisory lock serialises them,
        none fails, and the database ends at head with one version row."""
        outcomes = _run_in_processes(_upgrade_concurrently, empty_database_url, 4)

        assert outcomes == dict.fromkeys(range(4))
        assert _fetchall(empty_database_url, f"SELECT version_num FROM {schema.VERSION_TABLE}") == [
            (migrations.head_revision(),)
        ]
        assert _table_names(empty_database_url) == OUR_TABLES | {schema.VERSION_TABLE}


class TestMigrationWaitsForTheWriteLock:
    @pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
    @pytest.mark.parametrize("how", ["upgrade", "first-write"])
    def test_waits_for_another_writer(
        self,
        empty_database_url: str,
        open_database: Callable[..., Database],
        namespace: str,
        how: str,
    ) -> None:
        """While another connection holds the SQLite write lock (as a concurrent migrator or
        writer does), a migration waits for it, within busy_timeout, instead of failing with
        StorageUnavailableError; then it runs and the store works."""
        path = make_url(empty_database_url).database
        assert path is not None
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("PRAGMA journal_mode = WAL")
        holder.execute("BEGIN IMMEDIATE")
        database = open_database(empty_database_url)
        store = ResultStore(result_storage=database, namespace=namespace)
        actions: dict[str, Callable[[], object]] = {
            "upgrade": lambda: migrations.upgrade(database),
            "first-write": lambda: store.write("value", key="k"),
        }
        errors: list[BaseException] = []

        def migrate() -> None:
            try:
                actions[how]()
            except BaseException as exc:
                errors.append(exc)

        worker = threading.Thread(target=migrate)
        worker.start()
        # Give the migration time to run into the lock (if it gets there later, it simply
        # finds the lock free: the test then proves less, but never fails wrongly).
        worker.join(timeout=0.5)
        holder.execute("COMMIT")
        holder.close()
        worker.join(timeout=PROCESS_TIMEOUT)

        assert not worker.is_alive()
        assert errors == []
        assert database.schema_revision() == migrations.head_revision()
        store.write("after", key="k2")
        assert store.read("k2").result == "after"


class TestAutoMigrate:
    @pytest.mark.parametrize("operation", ["write", "read", "exists"])
    def test_refused_without_auto_migration(
        self,
        empty_database_url: str,
        open_database: Callable[..., Database],
        namespace: str,
        operation: str,
    ) -> None:
        """With auto_migrate=False, the first store operation on an empty database raises
        SchemaOutOfDateError naming ``sqlresults migrate`` (exists() does not answer False)
        and the database stays empty."""
        database = open_database(empty_database_url, auto_migrate=False)
        store = ResultStore(result_storage=database, namespace=namespace)
        calls: dict[str, Callable[[], object]] = {
            "write": lambda: store.write(1, key="k"),
            "read": lambda: store.read("k"),
            "exists": lambda: store.exists("k"),
        }
        with pytest.raises(SchemaOutOfDateError, match="sqlresults migrate"):
            calls[operation]()
        assert _table_names(empty_database_url) == set()

    @pytest.mark.parametrize(
        ("backend", "setting"),
        [("sqlite", None), ("sqlite", "true"), ("postgresql", "true"), ("postgresql", "1")],
        indirect=["backend"],
    )
    def test_migrated_on_first_use(
        self,
        empty_database_url: str,
        open_database: Callable[..., Database],
        namespace: str,
        monkeypatch: pytest.MonkeyPatch,
        setting: str | None,
    ) -> None:
        """SQLite files are migrated on first use unless told otherwise; PostgreSQL only when
        SQLRESULTS_AUTO_MIGRATE is true."""
        if setting is not None:
            monkeypatch.setenv("SQLRESULTS_AUTO_MIGRATE", setting)
        database = open_database(empty_database_url)
        store = ResultStore(result_storage=database, namespace=namespace)

        store.write("value", key="k")

        assert store.read("k").result == "value"
        assert database.schema_revision() == migrations.head_revision()

    @pytest.mark.parametrize(
        ("backend", "setting"),
        [("sqlite", "false"), ("postgresql", None), ("postgresql", "false")],
        indirect=["backend"],
    )
    def test_not_migrated_on_first_use(
        self,
        empty_database_url: str,
        open_database: Callable[..., Database],
        namespace: str,
        monkeypatch: pytest.MonkeyPatch,
        setting: str | None,
    ) -> None:
        """PostgreSQL is never migrated implicitly by default, and SQLRESULTS_AUTO_MIGRATE=false
        turns SQLite's auto-migration off: the store refuses and creates nothing."""
        if setting is not None:
            monkeypatch.setenv("SQLRESULTS_AUTO_MIGRATE", setting)
        database = open_database(empty_database_url)
        store = ResultStore(result_storage=database, namespace=namespace)

        with pytest.raises(SchemaOutOfDateError, match="sqlresults migrate"):
            store.write("value", key="k")

        assert _table_names(empty_database_url) == set()

    def test_argument_true_overrides_the_setting(
        self,
        empty_database_url: str,
        open_database: Callable[..., Database],
        namespace: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Database(auto_migrate=True) migrates even when SQLRESULTS_AUTO_MIGRATE=false."""
        monkeypatch.setenv("SQLRESULTS_AUTO_MIGRATE", "false")
        database = open_database(empty_database_url, auto_migrate=True)
        store = ResultStore(result_storage=database, namespace=namespace)

        store.write(1, key="k")

        assert database.schema_revision() == migrations.head_revision()

    def test_argument_false_overrides_the_setting(
        self,
        empty_database_url: str,
        open_database: Callable[..., Database],
        namespace: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Database(auto_migrate=False) refuses even when SQLRESULTS_AUTO_MIGRATE=true."""
        monkeypatch.setenv("SQLRESULTS_AUTO_MIGRATE", "true")
        database = open_database(empty_database_url, auto_migrate=False)
        store = ResultStore(result_storage=database, namespace=namespace)

        with pytest.raises(SchemaOutOfDateError, match="sqlresults migrate"):
            store.write(1, key="k")

        assert _table_names(empty_database_url) == set()

    @pytest.mark.parametrize("auto_migrate", [True, False])
    def test_unknown_revision_asks_to_upgrade_sqlresults(
        self,
        empty_database_url: str,
        open_database: Callable[..., Database],
        namespace: str,
        auto_migrate: bool,
    ) -> None:
        """A database stamped with a revision this version does not know (a newer sqlresults
        migrated it) is refused with SchemaOutOfDateError telling the user to upgrade
        sqlresults, and auto-migration does not touch it."""
        _execute(
            empty_database_url,
            f"CREATE TABLE {schema.VERSION_TABLE} (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
            f"INSERT INTO {schema.VERSION_TABLE} (version_num) VALUES ('{UNKNOWN_REVISION}')",
        )
        database = open_database(empty_database_url, auto_migrate=auto_migrate)
        store = ResultStore(result_storage=database, namespace=namespace)

        with pytest.raises(SchemaOutOfDateError, match="Upgrade sqlresults") as raised:
            store.write(1, key="k")

        assert UNKNOWN_REVISION in str(raised.value)
        assert _table_names(empty_database_url) == {schema.VERSION_TABLE}
        assert migrations.current_revision(database) == UNKNOWN_REVISION

    def test_upgrade_refuses_an_unknown_revision(
        self, empty_database_url: str, open_database: Callable[..., Database]
    ) -> None:
        """migrations.upgrade() on a database at an unknown revision refuses as the store does:
        SchemaOutOfDateError naming the revision and telling to upgrade sqlresults (not
        Alembic's "Can't locate revision"); it changes nothing."""
        _execute(
            empty_database_url,
            f"CREATE TABLE {schema.VERSION_TABLE} (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
            f"INSERT INTO {schema.VERSION_TABLE} (version_num) VALUES ('{UNKNOWN_REVISION}')",
        )
        database = open_database(empty_database_url, auto_migrate=False)
        with pytest.raises(SchemaOutOfDateError, match="Upgrade sqlresults") as raised:
            migrations.upgrade(database)
        assert UNKNOWN_REVISION in str(raised.value)
        assert _table_names(empty_database_url) == {schema.VERSION_TABLE}


class TestOfflineSQL:
    def test_postgresql_script_creates_everything(self) -> None:
        """The offline script for a PostgreSQL URL creates both tables, their indexes and our
        version table, adds revision 2's column, and stamps the head revision, without
        connecting anywhere."""
        sql = migrations.upgrade_sql("postgresql+psycopg://u:s3cret@nowhere.invalid:1/db")
        for table in (*sorted(OUR_TABLES), schema.VERSION_TABLE):
            assert f"CREATE TABLE {table} " in sql
        assert "CREATE INDEX ix_sqlresults_records_expires" in sql
        assert "CREATE INDEX ix_sqlresults_locks_expires" in sql
        assert "DROP INDEX ix_sqlresults_locks_expires" in sql  # revision 4
        assert "ALTER TABLE sqlresults_records ADD COLUMN provenance TEXT" in sql
        assert "BYTEA" in sql
        assert "SET STORAGE EXTERNAL" in sql
        assert migrations.head_revision() in sql
        assert "alembic_version " not in sql.replace(schema.VERSION_TABLE, "")
        assert "s3cret" not in sql

    def test_sqlite_script_creates_everything(self) -> None:
        """The offline script for a SQLite URL uses SQLite types and creates no file."""
        sql = migrations.upgrade_sql("sqlite:///never-created.db")
        for table in (*sorted(OUR_TABLES), schema.VERSION_TABLE):
            assert f"CREATE TABLE {table} " in sql
        assert "BLOB" in sql
        assert "ALTER TABLE sqlresults_records ADD COLUMN provenance TEXT" in sql
        assert "BYTEA" not in sql
        assert "SET STORAGE" not in sql

    def test_from_head_to_head_creates_nothing(self) -> None:
        """Starting from the head revision there is nothing to create."""
        head = migrations.head_revision()
        sql = migrations.upgrade_sql("sqlite:///x.db", from_revision=head)
        assert "CREATE TABLE" not in sql

    @pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
    def test_postgresql_script_applied_by_hand(
        self, empty_database_url: str, open_database: Callable[..., Database], namespace: str
    ) -> None:
        """A DBA can run the --sql output as is (psycopg, one execute, autocommit off): the
        database then is at head and a store writes and reads on it."""
        sql = migrations.upgrade_sql(empty_database_url)
        with psycopg.connect(_libpq_uri(empty_database_url)) as connection:
            connection.execute(sql)

        database = open_database(empty_database_url, auto_migrate=False)
        assert database.schema_revision() == migrations.head_revision()
        store = ResultStore(result_storage=database, namespace=namespace)
        store.write([1, 2, 3], key="k")
        assert store.read("k").result == [1, 2, 3]
        migrations.check(database)  # raises SchemaOutOfDateError on drift

    @pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
    def test_sqlite_script_applied_by_hand(
        self, empty_database_url: str, open_database: Callable[..., Database], namespace: str
    ) -> None:
        """The SQLite --sql output runs with sqlite3's executescript: the file then is at
        head and a store writes and reads on it."""
        sql = migrations.upgrade_sql(empty_database_url)
        path = make_url(empty_database_url).database
        assert path is not None
        connection = sqlite3.connect(path)
        try:
            connection.executescript(sql)
        finally:
            connection.close()

        database = open_database(empty_database_url, auto_migrate=False)
        assert database.schema_revision() == migrations.head_revision()
        store = ResultStore(result_storage=database, namespace=namespace)
        store.write([1, 2, 3], key="k")
        assert store.read("k").result == [1, 2, 3]
        migrations.check(database)  # raises SchemaOutOfDateError on drift


class TestProvenanceRevision:
    """Revision 2 adds ``sqlresults_records.provenance`` to databases that hold rows."""

    def test_upgrade_from_revision_1_keeps_the_rows(
        self,
        empty_database_url: str,
        open_database: Callable[..., Database],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """On a revision-1 database holding plain and signed records, upgrading adds the
        column (NULL in every row) and keeps every row, which the store then reads and
        verifies (signatures included), and the schema matches the models."""
        database = open_database(empty_database_url, auto_migrate=False)
        migrations.upgrade(database, REVISION_1)
        assert "provenance" not in _record_columns(empty_database_url)
        _insert_as_revision_1(empty_database_url, "plain", {"a": {"a": 1}, "b": [1, 2]})
        _insert_as_revision_1(
            empty_database_url, "signed", {"s": "signed value"}, signing_key=SIGNING_KEY
        )

        migrations.upgrade(database)

        assert migrations.current_revision(database) == migrations.head_revision()
        assert _record_columns(empty_database_url)[-1] == "provenance"
        assert _fetchall(
            empty_database_url, "SELECT count(*), count(provenance) FROM sqlresults_records"
        ) == [(3, 0)]
        migrations.check(database)  # raises SchemaOutOfDateError on drift
        plain = ResultStore(result_storage=database, namespace="plain")
        for key, value in {"a": {"a": 1}, "b": [1, 2]}.items():
            record = plain.read(key)
            assert (record.result, record.metadata.provenance) == (value, None)
        monkeypatch.setenv("SQLRESULTS_SIGNING_KEY", SIGNING_KEY)
        signed = ResultStore(result_storage=database, namespace="signed")
        assert signed.read("s").result == "signed value"
        # And the upgraded table takes records with provenance.
        signed.write(1, key="new", provenance=PROVENANCE)
        assert signed.read("new").metadata.provenance == PROVENANCE

    @pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
    def test_sqlite_file_at_revision_1_upgrades_on_first_use(
        self, empty_database_url: str, open_database: Callable[..., Database]
    ) -> None:
        """A SQLite file left at revision 1 by an older sqlresults is upgraded by the first
        store that opens it (auto-migration), and its rows read."""
        migrations.upgrade(open_database(empty_database_url, auto_migrate=False), REVISION_1)
        _insert_as_revision_1(empty_database_url, "ns", {"k": "old"})

        store = ResultStore(result_storage=open_database(empty_database_url), namespace="ns")

        assert store.read("k").result == "old"
        assert store.result_storage.schema_revision() == migrations.head_revision()

    @pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
    def test_postgresql_at_revision_1_asks_for_migrate(
        self, empty_database_url: str, open_database: Callable[..., Database]
    ) -> None:
        """PostgreSQL at revision 1 is not migrated implicitly: the store refuses with
        SchemaOutOfDateError naming ``sqlresults migrate`` and leaves it at revision 1; once
        migrated, the rows read."""
        migrations.upgrade(open_database(empty_database_url, auto_migrate=False), REVISION_1)
        _insert_as_revision_1(empty_database_url, "ns", {"k": "old"})
        database = open_database(empty_database_url)
        store = ResultStore(result_storage=database, namespace="ns")

        with pytest.raises(SchemaOutOfDateError, match="sqlresults migrate"):
            store.read("k")
        assert migrations.current_revision(database) == REVISION_1

        migrations.upgrade(database)
        assert store.read("k").result == "old"

    def test_downgrade_keeps_the_rows_and_their_seals(
        self,
        empty_database_url: str,
        open_database: Callable[..., Database],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Downgrading to revision 1 drops the column but no row, and every row, with or
        without provenance, signed or not, still passes the checksum and signature as
        revision 1 computes them (without provenance). Upgrading again, the store reads them
        all, with no provenance."""
        database = open_database(empty_database_url, auto_migrate=False)
        migrations.upgrade(database)
        plain = ResultStore(result_storage=database, namespace="plain")
        plain.write({"a": 1}, key="with", provenance=PROVENANCE)
        plain.write(b"\x00" * 10_000, key="big", provenance=PROVENANCE)
        plain.write("no provenance", key="without")
        monkeypatch.setenv("SQLRESULTS_SIGNING_KEY", SIGNING_KEY)
        signed = ResultStore(result_storage=database, namespace="signed")
        signed.write("signed", key="with", provenance=PROVENANCE)
        signed.write("signed too", key="without")
        # Before the downgrade, a record with provenance fails revision 1's checks.
        with pytest.raises(IntegrityError):
            _verify_rows_as_revision_1(empty_database_url, "plain", None)

        migrations.downgrade(database, REVISION_1)

        assert migrations.current_revision(database) == REVISION_1
        assert "provenance" not in _record_columns(empty_database_url)
        assert _verify_rows_as_revision_1(empty_database_url, "plain", None) == 3
        assert _verify_rows_as_revision_1(empty_database_url, "signed", SIGNING_KEY) == 2

        migrations.upgrade(database)

        migrations.check(database)  # raises SchemaOutOfDateError on drift
        monkeypatch.delenv("SQLRESULTS_SIGNING_KEY")
        plain = ResultStore(result_storage=database, namespace="plain")
        for key, value in {"with": {"a": 1}, "big": b"\x00" * 10_000}.items():
            record = plain.read(key)
            assert (record.result, record.metadata.provenance) == (value, None)
        assert plain.read("without").result == "no provenance"
        monkeypatch.setenv("SQLRESULTS_SIGNING_KEY", SIGNING_KEY)
        signed = ResultStore(result_storage=database, namespace="signed")
        assert signed.read("with").result == "signed"
        assert signed.read("without").result == "signed too"

    def test_downgrade_pages_through_many_rows(
        self, empty_database_url: str, open_database: Callable[..., Database]
    ) -> None:
        """The downgrade rewrites rows in pages (1,000 per statement): a table of more than
        two pages, in two namespaces, comes out with every row verifiable."""
        database = open_database(empty_database_url, auto_migrate=False)
        migrations.upgrade(database)
        for namespace in ("a", "b"):
            store = ResultStore(result_storage=database, namespace=namespace)
            for index in range(1_100):
                store.write(index, key=f"k{index:05d}", provenance=PROVENANCE)

        migrations.downgrade(database, REVISION_1)

        assert _verify_rows_as_revision_1(empty_database_url, "a", None) == 1_100
        assert _verify_rows_as_revision_1(empty_database_url, "b", None) == 1_100

    def test_offline_script_from_revision_1_is_one_column(self) -> None:
        """``--sql`` from revision 1 to the provenance revision adds the column and moves the
        version, and creates nothing else, on both dialects."""
        for url in ("sqlite:///never-created.db", "postgresql+psycopg://u@nowhere.invalid/db"):
            sql = migrations.upgrade_sql(url, PROVENANCE_REVISION, from_revision=REVISION_1)
            assert "ALTER TABLE sqlresults_records ADD COLUMN provenance TEXT" in sql
            assert f"SET version_num='{PROVENANCE_REVISION}'" in sql
            assert "CREATE TABLE" not in sql
            assert "DROP" not in sql

    def test_offline_script_applied_by_hand_to_revision_1(
        self, empty_database_url: str, open_database: Callable[..., Database]
    ) -> None:
        """A DBA can apply the script from revision 1 to a revision-1 database holding rows
        (psycopg on PostgreSQL, sqlite3 on SQLite): the database is then at head, its rows
        read and the schema matches the models."""
        migrations.upgrade(open_database(empty_database_url, auto_migrate=False), REVISION_1)
        _insert_as_revision_1(empty_database_url, "ns", {"k": [1, 2, 3]})
        sql = migrations.upgrade_sql(empty_database_url, from_revision=REVISION_1)
        url = make_url(empty_database_url)
        if url.get_backend_name() == "sqlite":
            assert url.database is not None
            connection = sqlite3.connect(url.database)
            try:
                connection.executescript(sql)
            finally:
                connection.close()
        else:
            with psycopg.connect(_libpq_uri(empty_database_url)) as pg_connection:
                pg_connection.execute(sql)

        database = open_database(empty_database_url, auto_migrate=False)
        assert database.schema_revision() == migrations.head_revision()
        assert ResultStore(result_storage=database, namespace="ns").read("k").result == [1, 2, 3]
        migrations.check(database)  # raises SchemaOutOfDateError on drift

    def test_offline_downgrade_is_refused(self) -> None:
        """The downgrade rewrites seals row by row, which a script cannot: asked for one
        offline, it says to run it against the database instead."""
        config = Config()
        config.set_main_option("script_location", str(migrations.script_location()))
        config.attributes["url"] = "sqlite:///never-created.db"
        with pytest.raises(NotImplementedError, match="run it against the database"):
            command.downgrade(config, f"{PROVENANCE_REVISION}:{REVISION_1}", sql=True)


def _expiry_index_sql(url: str) -> str:
    """The definition of ix_sqlresults_records_expires, as the database reports it."""
    if make_url(url).get_backend_name() == "sqlite":
        sql = "SELECT sql FROM sqlite_master WHERE name = 'ix_sqlresults_records_expires'"
    else:
        sql = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_sqlresults_records_expires'"
    [(definition,)] = _fetchall(url, sql)
    return str(definition)


class TestLeanExpiryIndexRevision:
    def test_expiry_index_leaves_out_records_that_never_expire(
        self, empty_database_url: str, open_database: Callable[..., Database]
    ) -> None:
        """At head the records' expiry index is partial (expires IS NOT NULL), so upserts of
        records that never expire do not rewrite it; the sweep still finds expired records
        through it, and the schema matches the models."""
        database = open_database(empty_database_url, auto_migrate=False)
        migrations.upgrade(database)
        assert "WHERE" in _expiry_index_sql(empty_database_url).upper()
        migrations.check(database)  # raises SchemaOutOfDateError on drift
        store = ResultStore(result_storage=database, namespace="ns")
        store.write("kept", key="kept")
        store.write("gone", key="gone", expiration=timedelta(seconds=-1))
        assert store.sweep_expired() == 1
        assert store.read("kept").result == "kept"

    def test_downgrade_restores_the_full_index(
        self, empty_database_url: str, open_database: Callable[..., Database]
    ) -> None:
        """Downgrading to the provenance revision makes the index full again, rows kept."""
        database = open_database(empty_database_url, auto_migrate=False)
        migrations.upgrade(database)
        ResultStore(result_storage=database, namespace="ns").write(1, key="k")
        migrations.downgrade(database, PROVENANCE_REVISION)
        assert "WHERE" not in _expiry_index_sql(empty_database_url).upper()
        assert _fetchall(empty_database_url, "SELECT count(*) FROM sqlresults_records") == [(1,)]
        migrations.upgrade(database, LEAN_INDEX_REVISION)
        assert migrations.current_revision(database) == LEAN_INDEX_REVISION

    def test_offline_script_is_two_index_statements(self) -> None:
        """``--sql`` from the provenance revision drops and recreates the index, partial, and
        touches no table, on both dialects."""
        for url in ("sqlite:///never-created.db", "postgresql+psycopg://u@nowhere.invalid/db"):
            sql = migrations.upgrade_sql(
                url, LEAN_INDEX_REVISION, from_revision=PROVENANCE_REVISION
            )
            assert "DROP INDEX ix_sqlresults_records_expires" in sql
            assert "WHERE expires IS NOT NULL" in sql
            assert "TABLE" not in sql.replace("sqlresults_alembic_version", "")


def _locks_ddl(url: str) -> str:
    """The definition of sqlresults_locks on SQLite ("" on PostgreSQL, which has no rowid)."""
    if make_url(url).get_backend_name() != "sqlite":
        return ""
    [(definition,)] = _fetchall(
        url, "SELECT sql FROM sqlite_master WHERE name = 'sqlresults_locks'"
    )
    return str(definition)


def _lock_index_names(url: str) -> set[str]:
    with _engine(url) as engine:
        return {str(index["name"]) for index in inspect(engine).get_indexes("sqlresults_locks")}


class TestLeanLocksRevision:
    def test_upgrade_keeps_held_locks(
        self, empty_database_url: str, open_database: Callable[..., Database]
    ) -> None:
        """Upgrading from revision 3 drops the locks' expiry index and, on SQLite, makes the
        table WITHOUT ROWID (one page per lock change); locks held across the upgrade stay held
        by their holders, with their fences, and the schema matches the models."""
        database = open_database(empty_database_url, auto_migrate=False)
        migrations.upgrade(database, LEAN_INDEX_REVISION)
        now = time.time()
        _execute(
            empty_database_url,
            "INSERT INTO sqlresults_locks (namespace, key, holder, acquired, expires, fence) "
            f"VALUES ('ns', 'held', 'h1', {now}, {now + 60}, 7)",
        )
        migrations.upgrade(database)
        store = ResultStore(result_storage=database, namespace="ns")
        assert migrations.current_revision(database) == LEAN_LOCKS_REVISION
        assert "ix_sqlresults_locks_expires" not in _lock_index_names(empty_database_url)
        if make_url(empty_database_url).get_backend_name() == "sqlite":
            assert "WITHOUT ROWID" in _locks_ddl(empty_database_url).upper()
        migrations.check(database)  # raises SchemaOutOfDateError on drift
        assert store.is_lock_holder("held", "h1")
        assert store.acquire_lock("held", holder="h2", timeout=0) is False
        assert _fetchall(empty_database_url, "SELECT fence FROM sqlresults_locks") == [(7,)]
        store.write("by h1", key="held", holder="h1")
        store.release_lock("held", holder="h1")
        assert store.acquire_lock("held", holder="h2", timeout=0) is True

    def test_downgrade_restores_the_rowid_table_and_index(
        self, empty_database_url: str, open_database: Callable[..., Database]
    ) -> None:
        """Downgrading to revision 3 brings back the rowid table and its expiry index, lock
        rows kept."""
        database = open_database(empty_database_url, auto_migrate=False)
        migrations.upgrade(database)
        store = ResultStore(result_storage=database, namespace="ns")
        assert store.acquire_lock("held", holder="h1", hold_timeout=60)
        migrations.downgrade(database, LEAN_INDEX_REVISION)
        assert "ix_sqlresults_locks_expires" in _lock_index_names(empty_database_url)
        assert "WITHOUT ROWID" not in _locks_ddl(empty_database_url).upper()
        assert _fetchall(empty_database_url, "SELECT key, holder FROM sqlresults_locks") == [
            ("held", "h1")
        ]

    def test_offline_script(self) -> None:
        """``--sql`` from revision 3: SQLite copies the locks into a WITHOUT ROWID table;
        PostgreSQL only drops the index."""
        sqlite = migrations.upgrade_sql("sqlite:///x.db", from_revision=LEAN_INDEX_REVISION)
        assert "DROP INDEX ix_sqlresults_locks_expires" in sqlite
        assert "WITHOUT ROWID" in sqlite
        assert "ALTER TABLE _sqlresults_locks_new RENAME TO sqlresults_locks" in sqlite
        postgresql = migrations.upgrade_sql(
            "postgresql+psycopg://u@nowhere.invalid/db", from_revision=LEAN_INDEX_REVISION
        )
        assert "DROP INDEX ix_sqlresults_locks_expires" in postgresql
        assert "TABLE" not in postgresql.replace("sqlresults_alembic_version", "")


class TestPostgreSQLStorage:
    @pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
    def test_payload_is_stored_external(self, database_url: str) -> None:
        """The payload column uses STORAGE EXTERNAL (out of line, not compressed again by
        TOAST); the other columns keep their defaults."""
        rows = _fetchall(
            database_url,
            "SELECT attname, attstorage FROM pg_attribute "
            "WHERE attrelid = 'sqlresults_records'::regclass AND attname IN "
            "('payload', 'serializer')",
        )
        assert dict(rows) == {"payload": "e", "serializer": "x"}
