"""Accounts pushed from a queue: `push_dirty`, filled by triggers when an account falls behind.

The push used to find its work by comparing `crm_links.synced_version` with
`tier_accounts.version` for every account with sync on: a condition across two tables no index
can serve, so a cycle with nothing to push read every account and every link (seconds at a
million accounts). Now triggers mark, in `push_dirty` and in the writer's own transaction, each
account that may have fallen behind the CRM:

- an account whose sync is on gets a new version, or an account behind gets its sync switched on
  (a statement-level trigger on `tier_accounts`);
- its link loses what it said was synced: `synced_version` lowered or cleared, or the link
  deleted (on `crm_links`; syncd itself never does this, an operator may, between cycles).

The push reads its candidates from the marks only and unmarks an account once its link is
synced or its sync is off (`syncd.store.push_queue`). The upgrade marks every account behind
today.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in 0006: transition tables, so a page of a thousand accounts costs one INSERT ... SELECT.
_FUNCTIONS = {
    "syncd_push_dirty_new_account": """
BEGIN
    INSERT INTO push_dirty (account_id)
    SELECT id FROM new_rows WHERE sync_enabled
    ON CONFLICT (account_id) DO NOTHING;
    RETURN NULL;
END
""",
    "syncd_push_dirty_account_changed": """
BEGIN
    INSERT INTO push_dirty (account_id)
    SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.sync_enabled
      AND (o.sync_enabled IS NOT TRUE OR n.version IS DISTINCT FROM o.version)
    ON CONFLICT (account_id) DO NOTHING;
    RETURN NULL;
END
""",
    "syncd_push_dirty_link_lowered": """
BEGIN
    INSERT INTO push_dirty (account_id)
    SELECT n.account_id FROM new_rows n JOIN old_rows o ON o.account_id = n.account_id
    JOIN tier_accounts a ON a.id = n.account_id
    WHERE a.sync_enabled AND o.synced_version IS NOT NULL
      AND (n.synced_version IS NULL OR n.synced_version < o.synced_version)
    ON CONFLICT (account_id) DO NOTHING;
    RETURN NULL;
END
""",
    "syncd_push_dirty_link_deleted": """
BEGIN
    INSERT INTO push_dirty (account_id)
    SELECT o.account_id FROM old_rows o JOIN tier_accounts a ON a.id = o.account_id
    WHERE a.sync_enabled
    ON CONFLICT (account_id) DO NOTHING;
    RETURN NULL;
END
""",
}

_TRIGGERS = [
    ("tier_accounts", "INSERT", "NEW TABLE AS new_rows", "syncd_push_dirty_new_account"),
    (
        "tier_accounts",
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "syncd_push_dirty_account_changed",
    ),
    (
        "crm_links",
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "syncd_push_dirty_link_lowered",
    ),
    ("crm_links", "DELETE", "OLD TABLE AS old_rows", "syncd_push_dirty_link_deleted"),
]


def _trigger_name(table: str, event: str) -> str:
    return f"tr_{table}_push_dirty_{event.lower()}"


def upgrade() -> None:
    op.create_table(
        "push_dirty",
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column(
            "marked_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["tier_accounts.id"],
            name=op.f("fk_push_dirty_account_id_tier_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_push_dirty")),
    )
    for name, body in _FUNCTIONS.items():
        op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $${body}$$")
    for table, event, referencing, function in _TRIGGERS:
        op.execute(
            f"CREATE TRIGGER {_trigger_name(table, event)} AFTER {event} ON {table} "
            f"REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
    op.execute(
        "INSERT INTO push_dirty (account_id) "
        "SELECT a.id FROM tier_accounts a LEFT JOIN crm_links l ON l.account_id = a.id "
        "WHERE a.sync_enabled AND (l.synced_version IS NULL OR l.synced_version < a.version)"
    )


def downgrade() -> None:
    for table, event, _, _ in _TRIGGERS:
        op.execute(f"DROP TRIGGER {_trigger_name(table, event)} ON {table}")
    for name in _FUNCTIONS:
        op.execute(f"DROP FUNCTION {name}()")
    op.drop_table("push_dirty")
