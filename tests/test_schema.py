"""Tests for sqlresults.schema: the two tables, their keys, indexes and constraint names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import (
    BigInteger,
    Double,
    LargeBinary,
    String,
    Table,
    Text,
    create_engine,
    inspect,
)
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from sqlresults import schema
from sqlresults.database import Database
from sqlresults.results import ResultStore

RECORD_COLUMNS = [
    "namespace",
    "key",
    "payload",
    "serializer",
    "checksum",
    "signature",
    "size",
    "created",
    "updated",
    "expires",
    "version",
    "provenance",
]
LOCK_COLUMNS = ["namespace", "key", "holder", "acquired", "expires", "fence"]


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A plain SQLAlchemy engine on the migrated database, for reflection."""
    engine = create_engine(database_url, poolclass=NullPool)
    yield engine
    engine.dispose()


class TestTables:
    def test_metadata_holds_exactly_the_two_prefixed_tables(self) -> None:
        """The metadata describes sqlresults_records and sqlresults_locks and nothing else, so
        every table sqlresults creates carries the sqlresults_ prefix."""
        assert sorted(schema.metadata.tables) == ["sqlresults_locks", "sqlresults_records"]
        assert schema.records is schema.metadata.tables["sqlresults_records"]
        assert schema.locks is schema.metadata.tables["sqlresults_locks"]

    def test_record_columns_in_order(self) -> None:
        """A record row holds the metadata columns of §3 next to its payload, then the
        provenance that revision 2 added (last, where ADD COLUMN puts it)."""
        assert [column.name for column in schema.records.columns] == RECORD_COLUMNS

    def test_lock_columns_in_order(self) -> None:
        """A lock row holds the holder, the lease and the fencing token."""
        assert [column.name for column in schema.locks.columns] == LOCK_COLUMNS

    @pytest.mark.parametrize("table", [schema.records, schema.locks], ids=lambda t: t.name)
    def test_primary_key_is_namespace_and_key(self, table: Table) -> None:
        """Both tables are keyed by (namespace, key), so namespaces never collide."""
        assert [column.name for column in table.primary_key.columns] == ["namespace", "key"]

    def test_record_column_types(self) -> None:
        """The payload is raw bytes, times are doubles (seconds since the epoch) and the
        checksum, size and version are 64-bit integers."""
        columns = schema.records.c
        assert isinstance(columns.payload.type, LargeBinary)
        assert isinstance(columns.signature.type, LargeBinary)
        assert isinstance(columns.serializer.type, Text)
        assert isinstance(columns.provenance.type, Text)
        for name in ("created", "updated", "expires"):
            assert isinstance(columns[name].type, Double), name
        for name in ("checksum", "size", "version"):
            assert isinstance(columns[name].type, BigInteger), name

    def test_nullable_columns(self) -> None:
        """Only a record's signature, expiry and provenance may be NULL (unsigned, never
        expires, not written by a task); a lock always has a lease end."""
        assert sorted(c.name for c in schema.records.columns if c.nullable) == [
            "expires",
            "provenance",
            "signature",
        ]
        assert [c.name for c in schema.locks.columns if c.nullable] == []


class TestSizes:
    def test_key_columns_hold_the_longest_valid_key(self) -> None:
        """Keys may be 1,024 bytes of UTF-8, so both key columns are at least that long (a
        character is at least a byte, so 1,024 characters always suffice)."""
        assert schema.KEY_MAX_BYTES == 1024
        for table in (schema.records, schema.locks):
            key_type = table.c.key.type
            assert isinstance(key_type, String)
            assert key_type.length == schema.KEY_MAX_BYTES

    def test_namespace_columns_hold_the_longest_namespace(self) -> None:
        """Namespaces of up to 255 characters fit both tables."""
        assert schema.NAMESPACE_MAX_CHARS == 255
        for table in (schema.records, schema.locks):
            namespace_type = table.c.namespace.type
            assert isinstance(namespace_type, String)
            assert namespace_type.length == schema.NAMESPACE_MAX_CHARS

    @pytest.mark.parametrize(
        "key", ["k" * 1024, "\U0001f600" * 256, "é" * 512], ids=["ascii", "4-byte", "2-byte"]
    )
    def test_a_1024_byte_key_round_trips(self, database_url: str, namespace: str, key: str) -> None:
        """A key of exactly 1,024 UTF-8 bytes, in one-, two- or four-byte characters, is
        stored and read back verbatim on the migrated database."""
        assert len(key.encode()) == 1024
        database = Database(database_url)
        try:
            store = ResultStore(result_storage=database, namespace=namespace)
            store.write({"v": 1}, key=key)
            assert store.read(key).result == {"v": 1}
            assert list(store.keys()) == [key]
        finally:
            database.close()


class TestNames:
    def test_version_table(self) -> None:
        """Alembic's version table is our own, so a host application's alembic_version is
        never touched."""
        assert schema.VERSION_TABLE == "sqlresults_alembic_version"
        assert schema.VERSION_TABLE not in schema.metadata.tables

    def test_naming_convention(self) -> None:
        """Constraints are named from the first revision: SQLite batch migrations can only drop
        named constraints."""
        convention = schema.metadata.naming_convention
        assert convention["pk"] == "pk_%(table_name)s"
        assert convention["ix"] == "ix_%(table_name)s_%(column_0_N_name)s"
        assert {"uq", "ck", "fk"} <= set(convention)

    def test_primary_key_names(self) -> None:
        """The primary keys are named pk_<table>."""
        assert schema.records.primary_key.name == "pk_sqlresults_records"
        assert schema.locks.primary_key.name == "pk_sqlresults_locks"

    def test_expiry_indexes(self) -> None:
        """The records have one index, on their expires column, named by the convention, so
        sweeping never scans the table. The locks have none: each lock change would write it
        too, and sweeps look within a namespace (the primary key's prefix) of a small table."""
        (index,) = schema.records.indexes
        assert index.name == "ix_sqlresults_records_expires"
        assert [column.name for column in index.columns] == ["expires"]
        assert not index.unique
        assert not schema.locks.indexes

    def test_locks_are_without_rowid_on_sqlite(self) -> None:
        """On SQLite the locks table is its primary key (one page written per lock change)."""
        assert schema.locks.dialect_options["sqlite"]["with_rowid"] is False

    def test_schema_revision_is_a_revision_id(self) -> None:
        """SCHEMA_REVISION is a 12-hex-digit Alembic revision id (its agreement with the
        migration tree is tested in test_migrations)."""
        assert len(schema.SCHEMA_REVISION) == 12
        int(schema.SCHEMA_REVISION, 16)


class TestMigratedDatabase:
    def test_reflected_tables_match_the_metadata(self, engine: Engine) -> None:
        """The migrated database has the metadata's columns, primary keys (with their names)
        and expiry indexes, on this backend."""
        inspector = inspect(engine)
        for table in (schema.records, schema.locks):
            columns = {column["name"]: column for column in inspector.get_columns(table.name)}
            assert list(columns) == [column.name for column in table.columns]
            for column in table.columns:
                assert columns[column.name]["nullable"] == column.nullable, column.name
            key_type = columns["key"]["type"]
            assert isinstance(key_type, String)
            assert key_type.length == schema.KEY_MAX_BYTES
            primary_key = inspector.get_pk_constraint(table.name)
            assert primary_key["constrained_columns"] == ["namespace", "key"]
            assert primary_key["name"] == f"pk_{table.name}"
            indexes = inspector.get_indexes(table.name)
            assert [(ix["name"], ix["column_names"]) for ix in indexes] == [
                (f"ix_{name}_expires", ["expires"]) for name in [table.name] if table.indexes
            ]
