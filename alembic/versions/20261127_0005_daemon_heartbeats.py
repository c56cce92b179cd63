"""One heartbeat row per `syncd run` instance (daemon_heartbeats).

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "daemon_heartbeats",
        sa.Column("instance", sa.Text(), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "beat_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("last_run_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "state IN ('starting', 'active', 'standby', 'stopping', 'stopped')",
            name=op.f("ck_daemon_heartbeats_state_known"),
        ),
        sa.ForeignKeyConstraint(
            ["last_run_id"],
            ["sync_runs.id"],
            name=op.f("fk_daemon_heartbeats_last_run_id_sync_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("instance", name=op.f("pk_daemon_heartbeats")),
    )


def downgrade() -> None:
    op.drop_table("daemon_heartbeats")
