"""One compact row per battle vote, written in the vote's own transaction: what the
leaderboard needs (models, winner, voter, time, the cleaning's per-battle verdicts, style
counts, categories) without reading conversation states or decoding JSON. Rows for votes
stored before this revision are filled in by the store when it opens (it has the code that
judges them).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "arena_battles",
        sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tstamp", sa.Float, nullable=False),
        sa.Column("judge", sa.String(64), nullable=False),
        sa.Column("model_a", sa.String(256), nullable=False),
        sa.Column("model_b", sa.String(256), nullable=False),
        sa.Column("winner", sa.String(16), nullable=False),
        sa.Column("anony", sa.Boolean, nullable=False),
        sa.Column("turn", sa.Integer, nullable=False),
        sa.Column("language", sa.String(32), nullable=False),
        sa.Column("dedup_key", sa.String(40), nullable=False),
        sa.Column("identity_leak", sa.Boolean, nullable=False),
        sa.Column("errored", sa.Boolean, nullable=False),
        # Style counts per side (answer words, headers, list items, bold), null when the
        # battle has no answers to measure; plain columns and a comma-joined label list,
        # so that reading a million rows decodes no JSON.
        *(
            sa.Column(f"style_{side}_{feature}", sa.Float)
            for side in "ab"
            for feature in ("length", "headers", "lists", "bold")
        ),
        sa.Column("categories", sa.String(512), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("arena_battles")
