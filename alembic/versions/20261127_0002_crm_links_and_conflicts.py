"""CRM links (TA to CRM ids, what syncd last wrote, push state) and recorded conflicts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 04:14:50.821504
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "crm_links",
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("crm", sa.Text(), nullable=False),
        sa.Column("crm_id", sa.Text(), nullable=True),
        sa.Column("contact_id", sa.Text(), nullable=True),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("synced_version", sa.Integer(), nullable=True),
        sa.Column(
            "synced_fields",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "synced_contact",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("attempted_version", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "state IN ('synced', 'retry', 'rejected', 'unknown')",
            name=op.f("ck_crm_links_state_known"),
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_crm_links")),
    )
    op.create_index(op.f("ix_crm_links_state"), "crm_links", ["state"], unique=False)
    op.create_table(
        "crm_conflicts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("object", sa.Text(), nullable=False),
        sa.Column("field", sa.Text(), nullable=False),
        sa.Column("connect_value", sa.Text(), nullable=True),
        sa.Column("crm_value", sa.Text(), nullable=True),
        sa.Column("last_written", sa.Text(), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "object IN ('account', 'contact')", name=op.f("ck_crm_conflicts_object_known")
        ),
        sa.CheckConstraint(
            "resolution IN ('overwritten', 'kept', 'manual')",
            name=op.f("ck_crm_conflicts_resolution_known"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["sync_runs.id"],
            name=op.f("fk_crm_conflicts_run_id_sync_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_conflicts")),
    )
    op.create_index(
        op.f("ix_crm_conflicts_account_id"), "crm_conflicts", ["account_id"], unique=False
    )
    op.create_index(
        "ix_crm_conflicts_open",
        "crm_conflicts",
        ["account_id"],
        unique=False,
        postgresql_where=sa.text("resolution = 'manual' AND resolved_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_crm_conflicts_open",
        table_name="crm_conflicts",
        postgresql_where=sa.text("resolution = 'manual' AND resolved_at IS NULL"),
    )
    op.drop_index(op.f("ix_crm_conflicts_account_id"), table_name="crm_conflicts")
    op.drop_table("crm_conflicts")
    op.drop_index(op.f("ix_crm_links_state"), table_name="crm_links")
    op.drop_table("crm_links")
