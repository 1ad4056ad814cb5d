"""Lean locks: one page written per lock change on SQLite.

Revision ID: d4a7b2c9e6f1
Revises: c3d8e1f05a2b
Create Date: 2026-11-30 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d4a7b2c9e6f1"
down_revision: str | Sequence[str] | None = "c3d8e1f05a2b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = 'namespace, "key", holder, acquired, expires, fence'


def upgrade() -> None:
    """Drop ix_sqlresults_locks_expires; on SQLite, also make sqlresults_locks a WITHOUT ROWID
    table (its rows are copied, held locks included).

    Every acquire and release changes a lock row. In a rowid table with a composite primary key
    and an expiry index, SQLite writes three pages to the log for it (the table, the primary
    key index, the expiry index); a WITHOUT ROWID table is its primary key index, so one page.
    The expiry index served only sweeps and statistics, which look within a namespace (the
    primary key's prefix) of a table holding only the locks in use. PostgreSQL loses the
    index too (one index entry less per acquire); its table has no rowid to drop.
    """
    op.drop_index("ix_sqlresults_locks_expires", table_name="sqlresults_locks")
    if op.get_context().dialect.name == "sqlite":
        _recreate_locks(with_rowid=False)


def downgrade() -> None:
    """Make sqlresults_locks a rowid table again (SQLite) and restore its expiry index."""
    if op.get_context().dialect.name == "sqlite":
        _recreate_locks(with_rowid=True)
    op.create_index("ix_sqlresults_locks_expires", "sqlresults_locks", ["expires"])


def _recreate_locks(*, with_rowid: bool) -> None:
    """Copy sqlresults_locks into a new table of the same columns, with or without rowid.

    Plain statements rather than a batch operation, so the offline script shows them as they
    run; SQLite runs them in the migration's transaction, so no lock row can be lost.
    """
    op.create_table(
        "_sqlresults_locks_new",
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("holder", sa.String(1024), nullable=False),
        sa.Column("acquired", sa.Double(), nullable=False, comment="seconds since the epoch, UTC"),
        sa.Column("expires", sa.Double(), nullable=False, comment="end of the lease"),
        sa.Column("fence", sa.BigInteger(), nullable=False, comment="bumped by every acquire"),
        sa.PrimaryKeyConstraint("namespace", "key", name="pk_sqlresults_locks"),
        sqlite_with_rowid=with_rowid,
    )
    op.execute(
        f"INSERT INTO _sqlresults_locks_new ({_COLUMNS}) SELECT {_COLUMNS} FROM sqlresults_locks"
    )
    op.drop_table("sqlresults_locks")
    op.rename_table("_sqlresults_locks_new", "sqlresults_locks")
