"""The per-account sync flag in `tier_accounts` (`sync_enabled`, `sync_source`, `sync_override`,
`sync_decided_at`) and the history of operator overrides (`sync_overrides`).

`recompute_flags` is the set-based form of `syncd.domain.flags.effective_flag`: one statement
decides every account (or one), and writes only the rows whose flag or source changed, so a cycle
where nothing changed writes nothing. `sync_decided_at` is when the current decision was made.

`recompute_changed` decides only the accounts whose inputs changed since the last decision
(`syncd.store.flag_inputs`): in a cycle where nothing changed it reads a few index entries, where
deciding every account takes seconds at a million accounts (bench/flags.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, delete, insert, select, text, update

from syncd.domain.flags import Source
from syncd.store import flag_inputs
from syncd.store.schema import flag_dirty, sync_overrides, tier_accounts


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
    full: bool = True
    """Whether every account was decided (else only those whose inputs changed)."""

    @property
    def decided(self) -> int:
        """Accounts decided on or off by this statement."""
        return self.enabled + self.disabled


@dataclass(frozen=True)
class OverrideChange:
    account_id: str
    old_override: bool | None
    new_override: bool | None
    old_enabled: bool | None
    enabled: bool
    source: Source
    at: datetime


Scope = Literal["all", "one", "some"]


def _recompute_sql(scope: Scope) -> str:
    match = {"all": None, "one": "= :account_id", "some": "= ANY(CAST(:ids AS text[]))"}[scope]
    by_tar = f"WHERE r.account_id {match}" if match else ""
    by_link = f"WHERE l.account_id {match}" if match else ""
    by_account = f"WHERE a.id {match}" if match else ""
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


_RECOMPUTE_ALL = text(_recompute_sql("all"))
_RECOMPUTE_ONE = text(_recompute_sql("one"))
_RECOMPUTE_SOME = text(_recompute_sql("some"))
_TAKE_MARKS = text("DELETE FROM flag_dirty RETURNING account_id")
_ACCOUNTS_OF = text(
    "SELECT account_id FROM tier_account_requests WHERE product_id = ANY(CAST(:p AS text[])) "
    "UNION SELECT account_id FROM account_products WHERE product_id = ANY(CAST(:p AS text[]))"
)
_ACCOUNTS_ESTIMATE = text("SELECT reltuples FROM pg_class WHERE oid = 'tier_accounts'::regclass")
FULL_ABOVE = 0.25
"""Above this share of the accounts (and `FULL_MIN`), deciding every account is cheaper than
deciding a list of ids."""
FULL_MIN = 10_000


def recompute_flags(conn: Connection, default: bool, account_id: str | None = None) -> Recomputed:
    """Decide the flag of every account (or of `account_id` only) from its override, its
    products and `default`, in one statement; rows are written only where the decision moved.

    Deciding every account also takes every mark of `flag_dirty` (taken first, so a mark
    committed meanwhile stays) and records the products and default it used, from which
    `recompute_changed` goes on. Deciding one account marks it, so that the next
    `recompute_changed` decides it again with the products it records."""
    if account_id is not None:
        row = conn.execute(_RECOMPUTE_ONE, {"default": default, "account_id": account_id}).one()
        # Decided from the products as they are now, which the next `recompute_changed` may not
        # see as changed (a capability that flips and flips back): it takes this account again.
        flag_inputs.mark(conn, [account_id])
        return Recomputed(int(row.enabled), int(row.disabled), int(row.changed))
    conn.execute(delete(flag_dirty))
    used = flag_inputs.DecidedWith(default, flag_inputs.capabilities(conn))
    row = conn.execute(_RECOMPUTE_ALL, {"default": default}).one()
    flag_inputs.save_state(conn, used)
    return Recomputed(int(row.enabled), int(row.disabled), int(row.changed))


def recompute_changed(conn: Connection, default: bool) -> Recomputed:
    """Decide the flags of the accounts whose inputs changed since the last decision: those the
    triggers marked (new accounts, changed TARs or links) and those of a product whose capability
    changed. Every account, as `recompute_flags` does, when the default changed, no decision is
    on record, or most accounts changed.

    The marks are taken first, into a list: with none (a quiet cycle) no other statement runs,
    so the cost does not hang on the planner's view of a table a bulk change left stale."""
    before = flag_inputs.read_state(conn)
    if before is None or before.default != default:
        return recompute_flags(conn, default)
    now = flag_inputs.capabilities(conn)
    moved = flag_inputs.changed_products(before.products, now)
    # Taken before the decision reads anything: a mark committed meanwhile stays for next time.
    ids = set(conn.execute(_TAKE_MARKS).scalars())
    if moved:
        ids.update(conn.execute(_ACCOUNTS_OF, {"p": moved}).scalars())
        flag_inputs.save_state(conn, flag_inputs.DecidedWith(default, now))
    if not ids:
        return Recomputed(0, 0, 0, full=False)
    if len(ids) > FULL_MIN:
        # reltuples: the planner's estimate of the rows, -1 before the table was ever analysed.
        estimate = float(conn.execute(_ACCOUNTS_ESTIMATE).scalar_one())
        if len(ids) > FULL_ABOVE * estimate:
            return recompute_flags(conn, default)
    row = conn.execute(_RECOMPUTE_SOME, {"default": default, "ids": sorted(ids)}).one()
    return Recomputed(int(row.enabled), int(row.disabled), int(row.changed), full=False)


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
