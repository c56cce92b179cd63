"""SOQL in the simulator: a query checked against the org's schema, run, and paged.

Pages hold at most `page_size` records (Salesforce: 2,000; the `Sforce-Query-Options: batchSize`
header is a hint clamped to 200..2,000). The rest is kept behind a query locator named in
`nextRecordsUrl` (`/services/data/vXX.X/query/01g…-2000`) until read; like Salesforce, only a
few locators stay open per user, the oldest being dropped (`INVALID_QUERY_LOCATOR` after that).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from syncd.sim.salesforce_data import Org, Row
from syncd.sim.salesforce_soql import Query, SoqlError, comparisons, matches, parse, rename
from syncd.sim.salesforce_soql import sort_rows as soql_sort

MAX_OPEN_CURSORS = 10


def json_value(value: Any) -> Any:
    """A stored value as the API shows it; datetimes as `2025-01-01T00:00:00.000+0000`."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    return value


def project(sobject: str, fields: Iterable[str], row: Row, version: str) -> dict[str, Any]:
    """One record as the API returns it: `attributes`, then the fields asked for."""
    url = f"/services/data/v{version}/sobjects/{sobject}/{row['Id']}"
    out: dict[str, Any] = {"attributes": {"type": sobject, "url": url}}
    out.update({field: json_value(row.get(field)) for field in fields})
    return out


def sobject_name(org: Org, name: str) -> str | None:
    """The canonical spelling of an object name (API names are case-insensitive)."""
    return {s.lower(): s for s in org.schemas}.get(name.lower())


def compile_query(org: Org, text: str) -> Query:
    """Parse `text` and check it against the org: object, fields, literal types."""
    query = parse(text)
    sobject = sobject_name(org, query.sobject)
    if sobject is None:
        raise SoqlError("INVALID_TYPE", f"sObject type '{query.sobject}' is not supported.")
    schema = org.schemas[sobject]
    by_lower = {name.lower(): name for name in schema}

    def resolve(field: str) -> str:
        if field.lower() not in by_lower:
            raise SoqlError("INVALID_FIELD", f"No such column '{field}' on entity '{sobject}'")
        return by_lower[field.lower()]

    query = rename(query, resolve)
    for cond in comparisons(query.where):
        is_date = schema[cond.field].type == "datetime"
        values = cond.value if isinstance(cond.value, tuple) else (cond.value,)
        for value in values:
            if value is not None and isinstance(value, datetime) != is_date:
                # Datetime literals are unquoted, and quoted strings are not datetimes.
                kind = "dateTime and should not" if is_date else "string and should"
                raise SoqlError(
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{cond.field}' must be of type "
                    f"{kind} be enclosed in quotes",
                )
    return Query(query.fields, sobject, query.where, query.order_by, query.limit)


class QueryRunner:
    """Runs queries over what the org lets queries see, and serves their later pages."""

    def __init__(self, org: Org, page_size: int = 2000) -> None:
        self.org = org
        self.page_size = page_size
        self.log: list[str] = []
        """Every SOQL statement accepted, as received (after URL decoding)."""
        self._cursors: OrderedDict[str, tuple[list[dict[str, Any]], int]] = OrderedDict()
        self._seq = 0

    def run(self, text: str, version: str, batch_hint: str | None = None) -> dict[str, Any]:
        """The first page of `text`'s results; SoqlError if Salesforce would refuse it."""
        query = compile_query(self.org, text)
        self.log.append(text)
        rows = [r for r in self.org.visible_rows(query.sobject) if matches(query.where, r)]
        rows = soql_sort(rows, query.order_by)[: query.limit]
        records = [project(query.sobject, query.fields, row, version) for row in rows]
        size = self.page_size
        if batch_hint and batch_hint.startswith("batchSize=") and batch_hint[10:].isdigit():
            size = min(size, max(200, min(2000, int(batch_hint[10:]))))
        return self._page(records, version, size, None, 0)

    def more(self, locator: str, version: str) -> dict[str, Any]:
        """The page a `nextRecordsUrl` points at."""
        cursor, _, offset = locator.rpartition("-")
        if cursor not in self._cursors or not offset.isdigit():
            raise SoqlError("INVALID_QUERY_LOCATOR", "invalid query locator")
        rows, size = self._cursors[cursor]
        return self._page(rows, version, size, cursor, int(offset))

    def _page(
        self, rows: list[dict[str, Any]], version: str, size: int, cursor: str | None, start: int
    ) -> dict[str, Any]:
        end = start + size
        body: dict[str, Any] = {"totalSize": len(rows), "done": end >= len(rows)}
        if end < len(rows):
            if cursor is None:
                self._seq += 1
                cursor = f"01gSm{self._seq:010d}AAA"
                self._cursors[cursor] = (rows, size)
                while len(self._cursors) > MAX_OPEN_CURSORS:
                    self._cursors.popitem(last=False)
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{cursor}-{end}"
        elif cursor is not None:
            self._cursors.pop(cursor, None)
        body["records"] = rows[start:end]
        return body
