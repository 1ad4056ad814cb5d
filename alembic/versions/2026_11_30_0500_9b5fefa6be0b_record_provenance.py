"""Record provenance.

Revision ID: 9b5fefa6be0b
Revises: 4f0c2a9d1b7e
Create Date: 2026-11-30 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sqlresults.integrity import seals_without_provenance

revision: str = "9b5fefa6be0b"
down_revision: str | Sequence[str] | None = "4f0c2a9d1b7e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Rows rewritten per statement batch on downgrade: bounded memory, whatever the table's size.
_BATCH = 1000


def upgrade() -> None:
    """Add sqlresults_records.provenance; rows already there get NULL (no provenance).

    A plain ADD COLUMN on both backends, even in batch mode (SQLite adds a nullable column
    without copying the table), so it is quick and the offline script is one statement.
    Existing rows keep their checksums and signatures: without provenance they are unchanged.
    """
    with op.batch_alter_table("sqlresults_records") as batch_op:
        batch_op.add_column(
            sa.Column(
                "provenance",
                sa.Text(),
                nullable=True,
                comment="JSON: the task, run and key components",
            )
        )


def downgrade() -> None:
    """Drop sqlresults_records.provenance, keeping every row verifiable by revision 1.

    The checksum and signature of a record with provenance cover it, so each such row first
    gets the seals it would have without it (sqlresults.integrity.seals_without_provenance:
    from the stored seals alone, no payload read and no signing key needed); then the column
    goes. SQLite drops it by copying the table (batch mode), rows included.

    Raises:
        NotImplementedError: Offline (``--sql``): rewriting the seals needs the rows.
    """
    if op.get_context().as_sql:
        raise NotImplementedError(
            "Downgrading the provenance revision rewrites the checksum of each record with "
            "provenance, which needs the rows: run it against the database, not with --sql."
        )
    _remove_provenance_from_seals()
    with op.batch_alter_table("sqlresults_records") as batch_op:
        batch_op.drop_column("provenance")


def _remove_provenance_from_seals() -> None:
    records = sa.table(
        "sqlresults_records",
        sa.column("namespace", sa.String()),
        sa.column("key", sa.String()),
        sa.column("checksum", sa.BigInteger()),
        sa.column("signature", sa.LargeBinary()),
        sa.column("provenance", sa.Text()),
    )
    # Pages in primary key order, after the last row seen: each row is visited once, and no
    # payload is read.
    page = (
        sa.select(
            records.c.namespace,
            records.c.key,
            records.c.checksum,
            records.c.signature,
            records.c.provenance,
        )
        .where(
            records.c.provenance.is_not(None),
            sa.tuple_(records.c.namespace, records.c.key)
            > sa.tuple_(sa.bindparam("after_ns"), sa.bindparam("after_key")),
        )
        .order_by(records.c.namespace, records.c.key)
        .limit(_BATCH)
    )
    rewrite = (
        sa.update(records)
        .where(
            records.c.namespace == sa.bindparam("b_ns"),
            records.c.key == sa.bindparam("b_key"),
        )
        .values(checksum=sa.bindparam("b_checksum"), signature=sa.bindparam("b_signature"))
    )
    connection = op.get_bind()
    after = {"after_ns": "", "after_key": ""}
    while rows := connection.execute(page, after).all():
        changes = []
        for namespace, key, checksum, signature, provenance in rows:
            if not isinstance(provenance, str) or not isinstance(checksum, int):
                continue  # damaged (SQLite keeps any type): it stays damaged, and refused
            new_checksum, new_signature = seals_without_provenance(
                checksum, None if signature is None else bytes(signature), provenance
            )
            changes.append(
                {
                    "b_ns": namespace,
                    "b_key": key,
                    "b_checksum": new_checksum,
                    "b_signature": new_signature,
                }
            )
        if changes:
            connection.execute(rewrite, changes)
        after = {"after_ns": rows[-1][0], "after_key": rows[-1][1]}
