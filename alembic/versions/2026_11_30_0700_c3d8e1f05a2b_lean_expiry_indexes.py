"""Lean expiry indexes: records that never expire stay out of the expiry index.

Revision ID: c3d8e1f05a2b
Revises: 9b5fefa6be0b
Create Date: 2026-11-30 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c3d8e1f05a2b"
down_revision: str | Sequence[str] | None = "9b5fefa6be0b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHERE = sa.text("expires IS NOT NULL")


def upgrade() -> None:
    """Make ix_sqlresults_records_expires partial (``WHERE expires IS NOT NULL``).

    Only the sweep reads it, and it looks for expired records only. A full index also holds
    every record that never expires, and SQLite rewrites an index entry whenever an UPDATE
    assigns one of its columns, changed or not: every upsert of such a record wrote an index
    page more to the log (a third of a small write's cost). Both backends build partial indexes
    from the same clause; the offline script is two statements.
    """
    op.drop_index("ix_sqlresults_records_expires", table_name="sqlresults_records")
    op.create_index(
        "ix_sqlresults_records_expires",
        "sqlresults_records",
        ["expires"],
        sqlite_where=_WHERE,
        postgresql_where=_WHERE,
    )


def downgrade() -> None:
    """Make the index full again, as revision 2 had it."""
    op.drop_index("ix_sqlresults_records_expires", table_name="sqlresults_records")
    op.create_index("ix_sqlresults_records_expires", "sqlresults_records", ["expires"])
