"""The store as Palestra 0.1 made it: the settings table and one table of events.

A store made before migrations existed has exactly these tables and no alembic_version;
opening it stamps it at this revision and upgrades it from here.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    meta = op.create_table(
        "palestra_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )
    op.create_table(
        "arena_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tstamp", sa.Float, nullable=False, index=True),
        sa.Column("type", sa.String(32), nullable=False, index=True),
        sa.Column("user", sa.String(64), nullable=False, index=True),
        sa.Column("models", sa.JSON, nullable=False),
        sa.Column("shown", sa.JSON, nullable=False),
        sa.Column("states", sa.JSON, nullable=False),
        sa.Column("gen_params", sa.JSON, nullable=False),
        sa.Column("start", sa.Float),
        sa.Column("finish", sa.Float),
        sa.Column("battle_id", sa.String(64), nullable=False, index=True),
        sa.Column("flags", sa.JSON, nullable=False),
    )
    op.bulk_insert(meta, [{"key": "schema_version", "value": "1"}])


def downgrade() -> None:
    op.drop_table("arena_events")
    op.drop_table("palestra_meta")
