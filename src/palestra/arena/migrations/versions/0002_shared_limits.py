"""Per-user limits kept in the store, so that they hold across web server processes: one
row per message (or vote) a user was allowed, read back over the limit's window.

Also raises palestra_meta's schema_version to 2, which Palestra 0.1 (before migrations)
reads as "made by a newer Palestra" and refuses, instead of writing to a store it does not
know.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _schema_version(value: str) -> None:
    meta = sa.table("palestra_meta", sa.column("key"), sa.column("value"))
    op.execute(meta.update().where(meta.c.key == "schema_version").values(value=value))


def upgrade() -> None:
    op.create_table(
        "arena_limits",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user", sa.String(64), nullable=False),
        sa.Column("tstamp", sa.Float, nullable=False),
    )
    op.create_index("ix_arena_limits_kind_user_tstamp", "arena_limits", ["kind", "user", "tstamp"])
    op.create_index("ix_arena_limits_tstamp", "arena_limits", ["tstamp"])
    _schema_version("2")


def downgrade() -> None:
    op.drop_table("arena_limits")
    _schema_version("1")
