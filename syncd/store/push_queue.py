"""The push's queue, `push_dirty`: accounts that may be behind the CRM with sync on.

Triggers (migration 0007) mark an account in the transaction that puts it behind: a new version
while its sync is on, its sync switched on, its link's synced version lowered or the link
deleted. So every account with sync on and behind is marked, whatever crashed when; a mark may
outlive its reason (the account was pushed, or its sync switched off), and `unmark` clears those.
The push reads its candidates from the marks (`syncd.store.links.iter_candidates`), so a cycle
with nothing to push reads nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, text

# Locking the account row makes the check safe against a writer outside the cycle (`syncd
# accounts`, which does not take the writer lock): that writer's update either comes first, and
# the check waits for its commit and reads the new row, or waits for this delete to commit, and
# its trigger then marks the account again. Links are written by the cycle itself only.
_UNMARK = """
DELETE FROM push_dirty WHERE account_id IN (
    SELECT q.account_id FROM push_dirty q
    JOIN tier_accounts a ON a.id = q.account_id
    LEFT JOIN crm_links l ON l.account_id = q.account_id
    WHERE {where}(a.sync_enabled IS NOT TRUE OR l.synced_version >= a.version)
    FOR UPDATE OF q, a
)
"""
_UNMARK_ALL = text(_UNMARK.format(where=""))
_UNMARK_SOME = text(_UNMARK.format(where="q.account_id = ANY(:ids) AND "))


def unmark(conn: Connection, account_ids: Sequence[str] | None = None) -> int:
    """Clear the marks of accounts that are synced or whose sync is off: of these accounts, or
    of every marked one when None. Returns how many were cleared. A mark whose account is behind
    with sync on stays (one waiting for its retry time too)."""
    if account_ids is None:
        return conn.execute(_UNMARK_ALL).rowcount
    if not account_ids:
        return 0
    return conn.execute(_UNMARK_SOME, {"ids": list(account_ids)}).rowcount
