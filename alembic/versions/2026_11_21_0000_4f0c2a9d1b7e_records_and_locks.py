"""Records and locks.

Revision ID: 4f0c2a9d1b7e
Revises:
Create Date: 2026-11-21 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sqlresults.dialects import payload_storage_ddl

revision: str = "4f0c2a9d1b7e"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create sqlresults_records and sqlresults_locks."""
    op.create_table(
        "sqlresults_records",
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column(
            "payload", sa.LargeBinary(), nullable=False, comment="serializer output, raw bytes"
        ),
        sa.Column("serializer", sa.Text(), nullable=False, comment="JSON spec of the serializer"),
        sa.Column("checksum", sa.BigInteger(), nullable=False, comment="CRC-32 of the payload"),
        sa.Column(
            "signature", sa.LargeBinary(), nullable=True, comment="HMAC-SHA256 when a key is set"
        ),
        sa.Column("size", sa.BigInteger(), nullable=False, comment="payload length in bytes"),
        sa.Column("created", sa.Double(), nullable=False, comment="seconds since the epoch, UTC"),
        sa.Column("updated", sa.Double(), nullable=False, comment="seconds since the epoch, UTC"),
        sa.Column("expires", sa.Double(), nullable=True, comment="NULL: never expires"),
        sa.Column(
            "version", sa.BigInteger(), nullable=False, comment="random per write, never reused"
        ),
        sa.PrimaryKeyConstraint("namespace", "key", name=op.f("pk_sqlresults_records")),
    )
    op.create_index(op.f("ix_sqlresults_records_expires"), "sqlresults_records", ["expires"])
    op.create_table(
        "sqlresults_locks",
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("holder", sa.String(1024), nullable=False),
        sa.Column("acquired", sa.Double(), nullable=False, comment="seconds since the epoch, UTC"),
        sa.Column("expires", sa.Double(), nullable=False, comment="end of the lease"),
        sa.Column("fence", sa.BigInteger(), nullable=False, comment="bumped by every acquire"),
        sa.PrimaryKeyConstraint("namespace", "key", name=op.f("pk_sqlresults_locks")),
    )
    op.create_index(op.f("ix_sqlresults_locks_expires"), "sqlresults_locks", ["expires"])
    storage_ddl = payload_storage_ddl(op.get_context().dialect.name)
    if storage_ddl is not None:
        op.execute(storage_ddl)


def downgrade() -> None:
    """Drop both tables."""
    op.drop_index(op.f("ix_sqlresults_locks_expires"), table_name="sqlresults_locks")
    op.drop_table("sqlresults_locks")
    op.drop_index(op.f("ix_sqlresults_records_expires"), table_name="sqlresults_records")
    op.drop_table("sqlresults_records")
