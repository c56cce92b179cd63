"""Backlog gauges read from Postgres at scrape time (every 15 to 30 s of a Prometheus).

One query per scrape, bounded by `DbProbe` (statement timeout and a wait limit), so a slow or
stopped database costs a scrape at most the timeout. When the read fails, the three gauges are
left out of that scrape (Prometheus then shows a gap rather than a stale number) and
`syncd_backlog_read_ok` is 0.

- `syncd_pending_tars`: TARs pending in Connect, as mirrored (`v_pending_tars`).
- `syncd_accounts_behind`: accounts whose sync is on and whose mirrored version is newer than
  the one syncd last wrote to the CRM, or that syncd never wrote (`v_account_sync.behind`).
- `syncd_accounts_sync_off`: accounts that get no CRM write: sync off, or not decided yet
  (`sync_enabled IS NOT TRUE`, the same rule as the push's selection of enabled accounts).

The numbers are the views', counted without reading every account and link: counted over
`v_account_sync`, the last two read all of them at each scrape (a million accounts: the whole
table and every link, every 15 s). Each is read where an index keeps it small:

- pending TARs, from the partial index of pending TARs (the view's joins add no row to a TAR);
- behind with sync on, from the push's queue `push_dirty` (migration 0007): its triggers mark
  every account that falls behind with sync on, so the view's condition checked on the marked
  accounts only gives the view's count exactly (a mark that outlived its reason fails it);
- sync off or undecided, from the partial index `ix_tier_accounts_sync_off` (migration 0008),
  whose predicate is the gauge's condition: an index-only scan of those accounts only.

bench/scrape.py measures both forms at a million accounts; tests/integration/
test_backlog_counts.py checks that they agree in every state.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Connection, text

from syncd.service.dbprobe import DbProbe, ProbeFailed

PENDING_TARS = "SELECT count(*) FROM tier_account_requests WHERE status = 'pending'"
"""`count(*) FROM v_pending_tars`, from `ix_tier_account_requests_pending` alone: the view's
left joins (to the account, product, link and one accept or ignore action) read each TAR's row
and add none."""

ACCOUNTS_BEHIND = """
SELECT count(*) FROM push_dirty q
JOIN tier_accounts a ON a.id = q.account_id
LEFT JOIN crm_links l ON l.account_id = q.account_id
WHERE a.sync_enabled AND (l.synced_version IS NULL OR l.synced_version < a.version)
"""
"""`count(*) FROM v_account_sync WHERE behind AND sync_enabled IS TRUE`, from the queue."""

ACCOUNTS_SYNC_OFF = "SELECT count(*) FROM tier_accounts WHERE sync_enabled IS NOT TRUE"
"""`count(*) FROM v_account_sync WHERE sync_enabled IS NOT TRUE`, written as the predicate of
`ix_tier_accounts_sync_off` so that the planner can answer it from that index."""

BACKLOG_SQL = text(
    f"""
    SELECT
        ({PENDING_TARS}) AS pending_tars,
        ({ACCOUNTS_BEHIND}) AS accounts_behind,
        ({ACCOUNTS_SYNC_OFF}) AS accounts_sync_off
    """
)


@dataclass(frozen=True)
class Backlog:
    pending_tars: int
    accounts_behind: int
    accounts_sync_off: int


def read_backlog(conn: Connection) -> Backlog:
    """The three backlog numbers, in one statement."""
    row = conn.execute(BACKLOG_SQL).one()
    return Backlog(int(row.pending_tars), int(row.accounts_behind), int(row.accounts_sync_off))


_HELP = {
    "syncd_pending_tars": "Tier account requests pending in Connect (mirror).",
    "syncd_accounts_behind": (
        "Accounts with sync on whose mirrored version is newer than the CRM has from syncd."
    ),
    "syncd_accounts_sync_off": "Accounts whose sync is off or not decided yet.",
}
READ_OK = "syncd_backlog_read_ok"


class BacklogCollector(Collector):
    """A custom collector: reads the backlog each time the registry is collected."""

    def __init__(self, probe: DbProbe) -> None:
        self.probe = probe

    def describe(self) -> list[GaugeMetricFamily]:
        # Declared without reading, so that registering does not query the database.
        families = [GaugeMetricFamily(name, doc) for name, doc in _HELP.items()]
        return [*families, GaugeMetricFamily(READ_OK, "1 when the backlog gauges could be read.")]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            backlog = self.probe.run(read_backlog)
        except ProbeFailed:
            yield GaugeMetricFamily(READ_OK, "1 when the backlog gauges could be read.", value=0)
            return
        values = {
            "syncd_pending_tars": backlog.pending_tars,
            "syncd_accounts_behind": backlog.accounts_behind,
            "syncd_accounts_sync_off": backlog.accounts_sync_off,
        }
        for name, value in values.items():
            yield GaugeMetricFamily(name, _HELP[name], value=value)
        yield GaugeMetricFamily(READ_OK, "1 when the backlog gauges could be read.", value=1)
