"""Accounts pushed from a queue: `push_dirty`, filled by triggers when an account falls behind.

The push used to find its work by comparing `crm_links.synced_version` with
`tier_accounts.version` for every account with sync on: a condition across two tables no index
can serve, so a cycle with nothing to push read every account and every link (seconds at a
million accounts). Now triggers mark, in `push_dirty` and in the writer's own transaction, each
account that may have fallen behind the CRM:

- an account whose sync is on gets a new version, or an account gets its sync switched on
  (triggers on `tier_accounts`);
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

# Row-level triggers with a WHEN clause, not 0006's statement-level ones: a statement trigger with
# transition tables makes Postgres keep a copy of every updated account row, `record` included,
# for every UPDATE of tier_accounts (the first flag decision of a million accounts was still
# reading them back from temporary files after ten minutes). Here the WHEN clause is checked in
# the executor and the function runs only for an account that may have fallen behind.
_FUNCTIONS = {
    "syncd_push_dirty_account": """
BEGIN
    INSERT INTO push_dirty (account_id) VALUES (NEW.id)
    ON CONFLICT (account_id) DO NOTHING;
    RETURN NULL;
END
""",
    "syncd_push_dirty_link": """
BEGIN
    INSERT INTO push_dirty (account_id)
    SELECT id FROM tier_accounts WHERE id = OLD.account_id AND sync_enabled
    ON CONFLICT (account_id) DO NOTHING;
    RETURN NULL;
END
""",
}

# (name, timing and event, WHEN condition or "", function)
_TRIGGERS = [
    (
        "tr_tier_accounts_push_dirty_insert",
        "AFTER INSERT ON tier_accounts",
        "NEW.sync_enabled",
        "syncd_push_dirty_account",
    ),
    (
        "tr_tier_accounts_push_dirty_update",
        "AFTER UPDATE OF version, sync_enabled ON tier_accounts",
        "NEW.sync_enabled AND (OLD.sync_enabled IS NOT TRUE OR NEW.version <> OLD.version)",
        "syncd_push_dirty_account",
    ),
    (
        "tr_crm_links_push_dirty_update",
        "AFTER UPDATE OF synced_version ON crm_links",
        "OLD.synced_version IS NOT NULL"
        " AND (NEW.synced_version IS NULL OR NEW.synced_version < OLD.synced_version)",
        "syncd_push_dirty_link",
    ),
    ("tr_crm_links_push_dirty_delete", "AFTER DELETE ON crm_links", "", "syncd_push_dirty_link"),
]


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
    for name, event, condition, function in _TRIGGERS:
        when = f" WHEN ({condition})" if condition else ""
        op.execute(
            f"CREATE TRIGGER {name} {event} FOR EACH ROW{when} EXECUTE FUNCTION {function}()"
        )
    op.execute(
        "INSERT INTO push_dirty (account_id) "
        "SELECT a.id FROM tier_accounts a LEFT JOIN crm_links l ON l.account_id = a.id "
        "WHERE a.sync_enabled AND (l.synced_version IS NULL OR l.synced_version < a.version)"
    )


def downgrade() -> None:
    for name, event, _, _ in _TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON {event.rsplit(' ', 1)[-1]}")
    for name in _FUNCTIONS:
        op.execute(f"DROP FUNCTION {name}()")
    op.drop_table("push_dirty")
