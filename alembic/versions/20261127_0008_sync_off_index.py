"""A partial index of the accounts that get no CRM write: `ix_tier_accounts_sync_off`.

The backlog gauge `syncd_accounts_sync_off`, read at every scrape of /metrics (every 15 to 30 s),
counts the accounts whose sync is off or not decided yet (`sync_enabled IS NOT TRUE`), and
`syncd status` counts those of them behind the CRM. Counted over `v_account_sync`, each scrape
read every account and every link (a million accounts: the whole table). No index served the
condition: `sync_enabled` was not indexed, and a B-tree cannot take `IS NOT TRUE` as a search
key anyway. This index holds those accounts only, with the condition as its predicate, so the
count is an index-only scan of them; it carries `version` so that status's count of them behind
the CRM reads no account row either (bench/scrape.py measures both).

The accounts with sync on and behind are counted from the push's queue (0007): no index needed.

The cost is on writes: an account switched off or on adds or leaves an entry, and an account's
new version can no longer be a heap-only (HOT) update, `version` being indexed now. Built in the
migration's transaction, so writes to tier_accounts wait for the build (seconds at a million
accounts); the daemon never migrates by itself.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_tier_accounts_sync_off",
        "tier_accounts",
        ["id"],
        unique=False,
        postgresql_include=["version"],
        postgresql_where=sa.text("sync_enabled IS NOT TRUE"),
    )


def downgrade() -> None:
    op.drop_index("ix_tier_accounts_sync_off", table_name="tier_accounts")
