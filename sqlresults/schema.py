"""The two tables sqlresults keeps, as SQLAlchemy Core metadata.

Times are stored as seconds since the Unix epoch (UTC) in double-precision columns: one portable
type whose comparisons are plain arithmetic in both dialects, with no timezone conversion on the hot
path. A payload is stored once, as raw bytes (BLOB / bytea), next to the metadata columns that
``exists()`` and ``stats()`` read without touching it. A record a task wrote also holds its
provenance, as JSON text (:class:`~sqlresults.records.Provenance`); NULL for other records.

Alembic revisions under ``alembic/versions`` create these tables; ``alembic check`` (run by the
test suite) fails if this module and the revisions drift apart.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = [
    "KEY_MAX_BYTES",
    "NAMESPACE_MAX_CHARS",
    "SCHEMA_REVISION",
    "VERSION_TABLE",
    "locks",
    "metadata",
    "records",
]

# The Alembic revision this version of sqlresults expects at head. A test checks it against the
# migration tree, so the store can verify the schema without importing Alembic on every start.
SCHEMA_REVISION = "d4a7b2c9e6f1"

# Our own version table, so sqlresults can live in a database whose application uses Alembic.
VERSION_TABLE = "sqlresults_alembic_version"

KEY_MAX_BYTES = 1024
NAMESPACE_MAX_CHARS = 255
HOLDER_MAX_CHARS = 1024

# Named constraints from the first revision: SQLite batch migrations can only drop named ones.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

records = Table(
    "sqlresults_records",
    metadata,
    Column("namespace", String(NAMESPACE_MAX_CHARS), primary_key=True),
    Column("key", String(KEY_MAX_BYTES), primary_key=True),
    Column("payload", LargeBinary, nullable=False, comment="serializer output, raw bytes"),
    Column("serializer", Text, nullable=False, comment="JSON spec of the serializer"),
    Column("checksum", BigInteger, nullable=False, comment="CRC-32 of the payload"),
    Column("signature", LargeBinary, nullable=True, comment="HMAC-SHA256 when a key is set"),
    Column("size", BigInteger, nullable=False, comment="payload length in bytes"),
    Column("created", Double, nullable=False, comment="seconds since the epoch, UTC"),
    Column("updated", Double, nullable=False, comment="seconds since the epoch, UTC"),
    Column("expires", Double, nullable=True, comment="NULL: never expires"),
    Column("version", BigInteger, nullable=False, comment="random per write, never reused"),
    # Last: revision 2 added it, and ADD COLUMN appends (reflection lists columns in table order).
    Column("provenance", Text, nullable=True, comment="JSON: the task, run and key components"),
)
# Partial: the sweep looks for expired records only, and an upsert that assigns expires
# rewrites the record's entry in a full index even when the value did not change (revision 3).
_expiring = records.c.expires.is_not(None)
Index(None, records.c.expires, sqlite_where=_expiring, postgresql_where=_expiring)

# WITHOUT ROWID on SQLite, and no expiry index: every acquire and release then writes one page
# to the log instead of three (the table, its primary key index, an expiry index; revision 4).
# Sweeps and statistics look within a namespace, the primary key's prefix, of a small table.
locks = Table(
    "sqlresults_locks",
    metadata,
    Column("namespace", String(NAMESPACE_MAX_CHARS), primary_key=True),
    Column("key", String(KEY_MAX_BYTES), primary_key=True),
    Column("holder", String(HOLDER_MAX_CHARS), nullable=False),
    Column("acquired", Double, nullable=False, comment="seconds since the epoch, UTC"),
    Column("expires", Double, nullable=False, comment="end of the lease"),
    Column("fence", BigInteger, nullable=False, comment="bumped by every acquire"),
    sqlite_with_rowid=False,
)
