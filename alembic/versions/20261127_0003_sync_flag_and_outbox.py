"""The per-account sync flag (columns on tier_accounts, account_products, sync_overrides) and the
outbox of actions on Connect (connect_outbox).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 04:52:50.368468
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account_products",
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("product_id", sa.Text(), nullable=False),
        sa.Column("asset_id", sa.Text(), nullable=True),
        sa.Column(
            "seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("account_id", "product_id", name=op.f("pk_account_products")),
    )
    op.create_index(
        op.f("ix_account_products_product_id"), "account_products", ["product_id"], unique=False
    )
    op.create_table(
        "sync_overrides",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("old_value", sa.Boolean(), nullable=True),
        sa.Column("new_value", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_overrides")),
    )
    op.create_index(
        op.f("ix_sync_overrides_account_id"), "sync_overrides", ["account_id"], unique=False
    )
    op.create_table(
        "connect_outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("object_id", sa.Text(), nullable=False),
        sa.Column(
            "payload",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("state", sa.Text(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('accept', 'ignore', 'update_account')",
            name=op.f("ck_connect_outbox_kind_known"),
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'sent', 'done', 'failed', 'unknown')",
            name=op.f("ck_connect_outbox_state_known"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["sync_runs.id"],
            name=op.f("fk_connect_outbox_run_id_sync_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connect_outbox")),
    )
    op.create_index(op.f("ix_connect_outbox_state"), "connect_outbox", ["state"], unique=False)
    op.create_index(
        "uq_connect_outbox_tar_action",
        "connect_outbox",
        ["object_id"],
        unique=True,
        postgresql_where=sa.text("kind IN ('accept', 'ignore')"),
    )
    op.add_column("tier_accounts", sa.Column("sync_enabled", sa.Boolean(), nullable=True))
    op.add_column("tier_accounts", sa.Column("sync_source", sa.Text(), nullable=True))
    op.add_column("tier_accounts", sa.Column("sync_override", sa.Boolean(), nullable=True))
    op.add_column(
        "tier_accounts", sa.Column("sync_decided_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_check_constraint(
        op.f("ck_tier_accounts_sync_source_known"),
        "tier_accounts",
        "sync_source IN ('override', 'capability', 'default')",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_tier_accounts_sync_source_known"), "tier_accounts", type_="check")
    op.drop_column("tier_accounts", "sync_decided_at")
    op.drop_column("tier_accounts", "sync_override")
    op.drop_column("tier_accounts", "sync_source")
    op.drop_column("tier_accounts", "sync_enabled")
    op.drop_index(
        "uq_connect_outbox_tar_action",
        table_name="connect_outbox",
        postgresql_where=sa.text("kind IN ('accept', 'ignore')"),
    )
    op.drop_index(op.f("ix_connect_outbox_state"), table_name="connect_outbox")
    op.drop_table("connect_outbox")
    op.drop_index(op.f("ix_sync_overrides_account_id"), table_name="sync_overrides")
    op.drop_table("sync_overrides")
    op.drop_index(op.f("ix_account_products_product_id"), table_name="account_products")
    op.drop_table("account_products")
