"""Views for dashboards: v_pending_tars, v_account_sync, v_run_summary.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING_TARS = """
CREATE VIEW v_pending_tars AS
SELECT
    r.id AS request_id,
    r.account_id,
    a.name AS account_name,
    r.product_id,
    p.name AS product_name,
    r.account_version,
    r.created_at,
    now() - r.created_at AS age,
    a.sync_enabled,
    l.state AS crm_state,
    l.synced_version,
    o.kind AS action,
    o.state AS action_state,
    CASE
        WHEN o.state IN ('sent', 'unknown')
            THEN o.kind || ' sent, outcome to be read back'
        WHEN o.state = 'pending' THEN o.kind || ' queued'
        WHEN a.id IS NULL THEN 'account not mirrored yet'
        WHEN a.sync_enabled IS NOT TRUE THEN 'sync is off for the account'
        WHEN EXISTS (
            SELECT 1 FROM crm_conflicts c
            WHERE c.account_id = r.account_id
              AND c.resolution = 'manual' AND c.resolved_at IS NULL
        ) THEN 'manual conflict open'
        WHEN l.account_id IS NULL THEN 'not pushed to the CRM yet'
        WHEN l.state = 'retry' THEN 'CRM write to retry: ' || coalesce(l.last_error, '')
        WHEN l.state = 'unknown' THEN 'CRM write outcome unknown, read back next cycle'
        WHEN l.state = 'rejected' THEN 'CRM refused the change: ' || coalesce(l.last_error, '')
        WHEN l.synced_version < r.account_version THEN 'CRM behind the requested version'
        ELSE 'ready: accepted on the next cycle'
    END AS why_pending
FROM tier_account_requests r
LEFT JOIN tier_accounts a ON a.id = r.account_id
LEFT JOIN products p ON p.id = r.product_id
LEFT JOIN crm_links l ON l.account_id = r.account_id
LEFT JOIN connect_outbox o ON o.object_id = r.id AND o.kind IN ('accept', 'ignore')
WHERE r.status = 'pending'
"""

ACCOUNT_SYNC = """
CREATE VIEW v_account_sync AS
SELECT
    a.id AS account_id,
    a.name,
    a.sync_enabled,
    a.sync_source,
    a.sync_override,
    a.version AS mirrored_version,
    l.synced_version,
    (l.synced_version IS NULL OR l.synced_version < a.version) AS behind,
    l.state AS crm_state,
    l.crm_id,
    l.last_error,
    l.synced_at,
    (
        SELECT count(*) FROM tier_account_requests r
        WHERE r.account_id = a.id AND r.status = 'pending'
    ) AS pending_requests
FROM tier_accounts a
LEFT JOIN crm_links l ON l.account_id = a.id
"""

RUN_SUMMARY = """
CREATE VIEW v_run_summary AS
SELECT
    id AS run_id,
    kind,
    trigger,
    outcome,
    started_at,
    finished_at,
    finished_at - started_at AS duration,
    (counts #>> '{seconds,pull}')::double precision AS pull_seconds,
    (counts #>> '{seconds,flags}')::double precision AS flags_seconds,
    (counts #>> '{seconds,push}')::double precision AS push_seconds,
    (counts #>> '{seconds,writeback}')::double precision AS writeback_seconds,
    (counts #>> '{pull,requests_written}')::integer AS requests_mirrored,
    (counts #>> '{pull,accounts_written}')::integer AS accounts_mirrored,
    (counts #>> '{pull,malformed}')::integer AS malformed,
    (counts #>> '{push,created}')::integer AS crm_created,
    (counts #>> '{push,updated}')::integer AS crm_updated,
    (counts #>> '{push,unchanged}')::integer AS crm_unchanged,
    (counts #>> '{push,rejected}')::integer AS crm_rejected,
    (counts #>> '{push,retry}')::integer AS crm_retry,
    (counts #>> '{push,unknown}')::integer AS crm_unknown,
    (counts #>> '{push,conflicts}')::integer AS conflicts,
    (counts #>> '{writeback,accepted}')::integer AS tars_accepted,
    (counts #>> '{writeback,ignored}')::integer AS tars_ignored,
    (counts ->> 'connect_requests')::integer AS connect_requests,
    error
FROM sync_runs
"""

VIEWS = {
    "v_pending_tars": PENDING_TARS,
    "v_account_sync": ACCOUNT_SYNC,
    "v_run_summary": RUN_SUMMARY,
}


def upgrade() -> None:
    for sql in VIEWS.values():
        op.execute(sql)


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW {name}")
