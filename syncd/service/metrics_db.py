"""Backlog gauges read from Postgres at scrape time, from the dashboard views (schema 0004).

One query per scrape, bounded by `DbProbe` (statement timeout and a wait limit), so a slow or
stopped database costs a scrape at most the timeout. When the read fails, the three gauges are
left out of that scrape (Prometheus then shows a gap rather than a stale number) and
`syncd_backlog_read_ok` is 0.

- `syncd_pending_tars`: TARs pending in Connect, as mirrored (`v_pending_tars`).
- `syncd_accounts_behind`: accounts whose sync is on and whose mirrored version is newer than
  the one syncd last wrote to the CRM, or that syncd never wrote (`v_account_sync.behind`).
- `syncd_accounts_sync_off`: accounts that get no CRM write: sync off, or not decided yet
  (`sync_enabled IS NOT TRUE`, the same rule as the push's selection of enabled accounts).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Connection, text

from syncd.service.dbprobe import DbProbe, ProbeFailed

BACKLOG_SQL = text(
    """
    SELECT
        (SELECT count(*) FROM v_pending_tars) AS pending_tars,
        (SELECT count(*) FROM v_account_sync WHERE behind AND sync_enabled IS TRUE)
            AS accounts_behind,
        (SELECT count(*) FROM v_account_sync WHERE sync_enabled IS NOT TRUE) AS accounts_sync_off
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
