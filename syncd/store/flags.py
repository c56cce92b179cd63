"""The per-account sync flag in `tier_accounts` (`sync_enabled`, `sync_source`, `sync_override`,
`sync_decided_at`) and the history of operator overrides (`sync_overrides`).

`recompute_flags` is the set-based form of `syncd.domain.flags.effective_flag`: one statement
decides every account (or one), and writes only the rows whose flag or source changed, so a cycle
where nothing changed writes nothing. `sync_decided_at` is when the current decision was made.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select, text, update

from syncd.domain.flags import Source
from syncd.store.schema import sync_overrides, tier_accounts


class UnknownAccount(LookupError):
    """No account with this id in the mirror."""

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        super().__init__(f"no account {account_id} in the mirror")


@dataclass(frozen=True)
class Recomputed:
    enabled: int
    """Accounts decided on (of those recomputed)."""
    disabled: int
    """Accounts decided off."""
    changed: int
    """Accounts whose flag or source changed, the only rows written."""


@dataclass(frozen=True)
class OverrideChange:
    account_id: str
    old_override: bool | None
    new_override: bool | None
    old_enabled: bool | None
    enabled: bool
    source: Source
    at: datetime


def _recompute_sql(one_account: bool) -> str:
    by_tar = "WHERE r.account_id = :account_id" if one_account else ""
    by_link = "WHERE l.account_id = :account_id" if one_account else ""
    by_account = "WHERE a.id = :account_id" if one_account else ""
    # What each TAR and each asset link says: the product's capability once read, else the TAR's
    # status (pending: on, unsupported: off), else NULL. bool_or skips NULLs, so per account it is
    # true if any product is on, false if some is off and none on, NULL when none says anything.
    # OR-ing rows rather than products first gives the same answer (an unread product with a
    # pending and an unsupported TAR is on either way) and spares grouping the TARs twice.
    return f"""
WITH evidence AS (
    SELECT r.account_id,
           COALESCE(p.tiers_updates,
                    CASE r.status WHEN 'pending' THEN true WHEN 'unsupported' THEN false END)
               AS says
    FROM tier_account_requests r LEFT JOIN products p ON p.id = r.product_id
    {by_tar}
    UNION ALL
    SELECT l.account_id, p.tiers_updates
    FROM account_products l LEFT JOIN products p ON p.id = l.product_id
    {by_link}
), capability AS (
    SELECT account_id, bool_or(says) AS enabled FROM evidence GROUP BY account_id
), decided AS (
    SELECT a.id, a.sync_override,
           a.sync_enabled AS was_enabled, a.sync_source AS was_source,
           COALESCE(a.sync_override, c.enabled, CAST(:default AS boolean)) AS enabled,
           CASE WHEN a.sync_override IS NOT NULL THEN 'override'
                WHEN c.enabled IS NOT NULL THEN 'capability'
                ELSE 'default' END AS source
    FROM tier_accounts a LEFT JOIN capability c ON c.account_id = a.id
    {by_account}
), moved AS (
    -- Only the decisions that moved go on to the UPDATE: in a quiet cycle its join is empty.
    SELECT id, sync_override, enabled, source FROM decided
    WHERE was_enabled IS DISTINCT FROM enabled OR was_source IS DISTINCT FROM source
), changed AS (
    UPDATE tier_accounts t
    SET sync_enabled = d.enabled, sync_source = d.source, sync_decided_at = now()
    FROM moved d
    WHERE t.id = d.id
      AND (t.sync_enabled IS DISTINCT FROM d.enabled OR t.sync_source IS DISTINCT FROM d.source)
      -- An operator who changed the override since this statement's snapshot has recomputed the
      -- row already (READ COMMITTED re-checks this against the row as committed): keep theirs.
      AND t.sync_override IS NOT DISTINCT FROM d.sync_override
    RETURNING 1
)
SELECT count(*) FILTER (WHERE enabled) AS enabled,
       count(*) FILTER (WHERE NOT enabled) AS disabled,
       (SELECT count(*) FROM changed) AS changed
FROM decided
"""


_RECOMPUTE_ALL = text(_recompute_sql(one_account=False))
_RECOMPUTE_ONE = text(_recompute_sql(one_account=True))


def recompute_flags(conn: Connection, default: bool, account_id: str | None = None) -> Recomputed:
    """Decide the flag of every account (or of `account_id` only) from its override, its
    products and `default`, in one statement; rows are written only where the decision moved."""
    if account_id is None:
        row = conn.execute(_RECOMPUTE_ALL, {"default": default}).one()
    else:
        row = conn.execute(_RECOMPUTE_ONE, {"default": default, "account_id": account_id}).one()
    return Recomputed(int(row.enabled), int(row.disabled), int(row.changed))


def set_override(
    conn: Connection,
    account_id: str,
    value: bool | None,
    *,
    actor: str,
    reason: str,
    default: bool,
) -> OverrideChange:
    """Set the operator's override of `account_id` (None clears it), record who, when, why, the old
    and the new value in `sync_overrides`, and decide the account's flag at once.

    Raises UnknownAccount when the mirror has no such account, ValueError on an empty reason or
    actor. The caller owns the transaction: the override, its history row and the new flag commit
    together.
    """
    if not reason.strip():
        raise ValueError("a reason is required")
    if not actor.strip():
        raise ValueError("who makes the change is required")
    row = conn.execute(
        select(tier_accounts.c.sync_override, tier_accounts.c.sync_enabled)
        .where(tier_accounts.c.id == account_id)
        .with_for_update()
    ).first()
    if row is None:
        raise UnknownAccount(account_id)
    conn.execute(
        update(tier_accounts).where(tier_accounts.c.id == account_id).values(sync_override=value)
    )
    at = conn.execute(
        insert(sync_overrides)
        .values(
            account_id=account_id,
            actor=actor.strip(),
            reason=reason.strip(),
            old_value=row.sync_override,
            new_value=value,
        )
        .returning(sync_overrides.c.at)
    ).scalar_one()
    recompute_flags(conn, default, account_id)
    enabled, source = conn.execute(
        select(tier_accounts.c.sync_enabled, tier_accounts.c.sync_source).where(
            tier_accounts.c.id == account_id
        )
    ).one()
    return OverrideChange(
        account_id, row.sync_override, value, row.sync_enabled, bool(enabled), source, at
    )
