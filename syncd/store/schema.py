"""syncd's tables. They change only through Alembic migrations (`alembic/versions/`).

Dashboards read these tables and the `v_*` views directly; the README documents every column.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


tier_accounts = Table(
    "tier_accounts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("external_id", Text),
    Column("external_uid", Text),
    Column("environment", Text),
    Column("db", Text),
    Column("owner_id", Text),
    Column("hub_id", Text),
    Column("parent_id", Text),
    Column("country", Text),
    Column("tax_id", Text),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
    Column("record", JSONB, nullable=False),
    Column("mirrored_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sync_enabled", Boolean),
    Column("sync_source", Text),
    Column("sync_override", Boolean),
    Column("sync_decided_at", DateTime(timezone=True)),
    CheckConstraint("version >= 0", name="version_not_negative"),
    CheckConstraint(
        "sync_source IN ('override', 'capability', 'default')", name="sync_source_known"
    ),
    Index(None, "parent_id"),
    Index(None, "owner_id"),
    Index(None, "sync_decided_at"),
    # The accounts that get no CRM write, counted at every /metrics scrape and by `syncd status`
    # with an index-only scan of them alone (migration 0008).
    Index(
        "ix_tier_accounts_sync_off",
        "id",
        postgresql_include=["version"],
        postgresql_where=text("sync_enabled IS NOT TRUE"),
    ),
)

tier_account_versions = Table(
    "tier_account_versions",
    metadata,
    Column("account_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("record", JSONB, nullable=False),
    Column("source", Text, nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("account_id", "version"),
    CheckConstraint("source IN ('account', 'request', 'reconcile')", name="source_known"),
)

tier_account_requests = Table(
    "tier_account_requests",
    metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("account_version", Integer, nullable=False),
    Column("product_id", Text, nullable=False),
    Column("vendor_id", Text),
    Column("provider_id", Text),
    Column("type", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("reason", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True)),
    Column("record", JSONB, nullable=False),
    Column("first_seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("mirrored_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(
        "status IN ('pending', 'accepted', 'ignored', 'unsupported')", name="status_known"
    ),
    Index(None, "account_id", "account_version"),
    Index(None, "product_id"),
    Index(
        "ix_tier_account_requests_pending",
        "account_id",
        postgresql_where=text("status = 'pending'"),
    ),
    # Keyset pages of pending TARs by id (write-back, pending sweep): migration 0006.
    Index(
        "ix_tier_account_requests_pending_id",
        "id",
        postgresql_where=text("status = 'pending'"),
    ),
)

products = Table(
    "products",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text),
    Column("tiers_updates", Boolean),
    Column("read_at", DateTime(timezone=True), nullable=False),
    Column("record", JSONB, nullable=False),
)

sync_cursors = Table(
    "sync_cursors",
    metadata,
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("kind", Text, nullable=False),
    Column("trigger", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True)),
    Column("outcome", Text, nullable=False, server_default="running"),
    Column("counts", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("error", Text),
    Column("host", Text),
    Column("pid", Integer),
    CheckConstraint(
        "outcome IN ('running', 'success', 'partial', 'failed', 'aborted')", name="outcome_known"
    ),
    CheckConstraint("kind IN ('sync', 'resync', 'reconcile')", name="kind_known"),
    Index(None, "started_at"),
)

sync_ledger = Table(
    "sync_ledger",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("run_id", BigInteger, ForeignKey("sync_runs.id", ondelete="CASCADE")),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("object_type", Text, nullable=False),
    Column("object_id", Text),
    Column("phase", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("error_kind", Text),
    Column("message", Text),
    Column("payload", Text),
    Index(None, "run_id"),
    Index(None, "object_id"),
)

crm_links = Table(
    "crm_links",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("crm", Text, nullable=False),
    Column("crm_id", Text),
    Column("contact_id", Text),
    Column("state", Text, nullable=False),
    Column("synced_version", Integer),
    Column("synced_fields", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("synced_contact", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("attempted_version", Integer),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("synced_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("state IN ('synced', 'retry', 'rejected', 'unknown')", name="state_known"),
    Index(None, "state"),
)

crm_conflicts = Table(
    "crm_conflicts",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("run_id", BigInteger, ForeignKey("sync_runs.id", ondelete="SET NULL")),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("account_id", Text, nullable=False),
    Column("object", Text, nullable=False),
    Column("field", Text, nullable=False),
    Column("connect_value", Text),
    Column("crm_value", Text),
    Column("last_written", Text),
    Column("resolution", Text, nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    CheckConstraint("object IN ('account', 'contact')", name="object_known"),
    CheckConstraint("resolution IN ('overwritten', 'kept', 'manual')", name="resolution_known"),
    Index(None, "account_id"),
    Index(
        "ix_crm_conflicts_open",
        "account_id",
        postgresql_where=text("resolution = 'manual' AND resolved_at IS NULL"),
    ),
)

account_products = Table(
    "account_products",
    metadata,
    Column("account_id", Text, nullable=False),
    Column("product_id", Text, nullable=False),
    Column("asset_id", Text),
    Column("seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("account_id", "product_id"),
    Index(None, "product_id"),
)

sync_overrides = Table(
    "sync_overrides",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("old_value", Boolean),
    Column("new_value", Boolean),
    Index(None, "account_id"),
)

connect_outbox = Table(
    "connect_outbox",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("kind", Text, nullable=False),
    Column("object_id", Text, nullable=False),
    Column("payload", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("state", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("run_id", BigInteger, ForeignKey("sync_runs.id", ondelete="SET NULL")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True)),
    Column("settled_at", DateTime(timezone=True)),
    Column("outcome", Text),
    Column("error", Text),
    CheckConstraint("kind IN ('accept', 'ignore', 'update_account')", name="kind_known"),
    CheckConstraint(
        "state IN ('pending', 'sent', 'done', 'failed', 'unknown')", name="state_known"
    ),
    Index(None, "state"),
    # A TAR is accepted or ignored once, ever: one action row per TAR.
    Index(
        "uq_connect_outbox_tar_action",
        "object_id",
        unique=True,
        postgresql_where=text("kind IN ('accept', 'ignore')"),
    ),
)

daemon_heartbeats = Table(
    "daemon_heartbeats",
    metadata,
    # host:pid, so a restarted container (same hostname, same pid 1) takes over its old row.
    Column("instance", Text, primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("beat_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("state", Text, nullable=False),
    Column("last_run_id", BigInteger, ForeignKey("sync_runs.id", ondelete="SET NULL")),
    CheckConstraint(
        "state IN ('starting', 'active', 'standby', 'stopping', 'stopped')", name="state_known"
    ),
)

# Accounts whose flag must be decided (again): marked by statement-level triggers on
# tier_accounts (new ones), tier_account_requests and account_products (migration 0006), taken by
# the flag phase.
flag_dirty = Table(
    "flag_dirty",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("marked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Accounts that may be behind the CRM with sync on: marked by statement-level triggers on
# tier_accounts (a new version, sync switched on) and crm_links (synced version lowered, link
# deleted) (migration 0007); read and unmarked by the push.
push_dirty = Table(
    "push_dirty",
    metadata,
    Column(
        "account_id", Text, ForeignKey("tier_accounts.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("marked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
