"""Flags decided for changed accounts only: the queue `flag_dirty`, filled by triggers on what a
flag depends on.

A flag depends on the account's override (decided at once when set), its TARs (status and
product), its asset links, the products' capability and the configured default. The flag phase
used to decide every account every cycle (seconds at a million accounts, with nothing changed).
Now statement-level triggers mark, in `flag_dirty` and in the writer's own transaction, the
accounts that arrive and those whose TARs or links were inserted, deleted or changed in status or
product; the flag phase takes the marks and decides those accounts only
(`syncd.store.flags.recompute_changed`). Products and the default are compared with what the
last decision used, kept in `sync_cursors`.

Two indexes keep the other per-cycle selections off full scans: `ix_tier_accounts_sync_decided_at`
for the write-back's look for accounts switched on lately, `ix_tier_account_requests_pending_id`
for the keyset pages of pending TARs (write-back, pending sweep).

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Transition tables (REFERENCING ... TABLE) make these once per statement, not once per row: a
# page of a thousand TARs costs one INSERT ... SELECT DISTINCT into the queue.
_FUNCTIONS = {
    "syncd_flag_dirty_new_account": """
BEGIN
    INSERT INTO flag_dirty (account_id)
    SELECT id FROM new_rows
    ON CONFLICT (account_id) DO NOTHING;
    RETURN NULL;
END
""",
    "syncd_flag_dirty_added": """
BEGIN
    INSERT INTO flag_dirty (account_id)
    SELECT DISTINCT account_id FROM new_rows
    ON CONFLICT (account_id) DO NOTHING;
    RETURN NULL;
END
""",
    "syncd_flag_dirty_removed": """
BEGIN
    INSERT INTO flag_dirty (account_id)
    SELECT DISTINCT account_id FROM old_rows
    ON CONFLICT (account_id) DO NOTHING;
    RETURN NULL;
END
""",
    # Only what the flag reads: a TAR whose record changed in other ways marks nothing.
    "syncd_flag_dirty_request_changed": """
BEGIN
    INSERT INTO flag_dirty (account_id)
    SELECT n.account_id FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.status IS DISTINCT FROM o.status
       OR n.product_id IS DISTINCT FROM o.product_id
       OR n.account_id IS DISTINCT FROM o.account_id
    UNION
    SELECT o.account_id FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.account_id IS DISTINCT FROM o.account_id
    ON CONFLICT (account_id) DO NOTHING;
    RETURN NULL;
END
""",
}

_TRIGGERS = [
    ("tier_accounts", "INSERT", "NEW TABLE AS new_rows", "syncd_flag_dirty_new_account"),
    ("tier_account_requests", "INSERT", "NEW TABLE AS new_rows", "syncd_flag_dirty_added"),
    ("tier_account_requests", "DELETE", "OLD TABLE AS old_rows", "syncd_flag_dirty_removed"),
    (
        "tier_account_requests",
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "syncd_flag_dirty_request_changed",
    ),
    ("account_products", "INSERT", "NEW TABLE AS new_rows", "syncd_flag_dirty_added"),
    ("account_products", "DELETE", "OLD TABLE AS old_rows", "syncd_flag_dirty_removed"),
]


def _trigger_name(table: str, event: str) -> str:
    return f"tr_{table}_flag_dirty_{event.lower()}"


def upgrade() -> None:
    op.create_table(
        "flag_dirty",
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column(
            "marked_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_flag_dirty")),
    )
    op.create_index(
        op.f("ix_tier_accounts_sync_decided_at"),
        "tier_accounts",
        ["sync_decided_at"],
        unique=False,
    )
    op.create_index(
        "ix_tier_account_requests_pending_id",
        "tier_account_requests",
        ["id"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    for name, body in _FUNCTIONS.items():
        op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $${body}$$")
    for table, event, referencing, function in _TRIGGERS:
        op.execute(
            f"CREATE TRIGGER {_trigger_name(table, event)} AFTER {event} ON {table} "
            f"REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )


def downgrade() -> None:
    for table, event, _, _ in _TRIGGERS:
        op.execute(f"DROP TRIGGER {_trigger_name(table, event)} ON {table}")
    for name in _FUNCTIONS:
        op.execute(f"DROP FUNCTION {name}()")
    op.drop_index(
        "ix_tier_account_requests_pending_id",
        table_name="tier_account_requests",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_index(op.f("ix_tier_accounts_sync_decided_at"), table_name="tier_accounts")
    op.drop_table("flag_dirty")
