"""SOQL in the simulator: a query checked against the org's schema, run, and paged.

Pages hold at most `page_size` records (Salesforce: 2,000; the `Sforce-Query-Options: batchSize`
header is a hint clamped to 200..2,000). The rest is kept behind a query locator named in
`nextRecordsUrl` (`/services/data/vXX.X/query/01g…-2000`) until read; like Salesforce, only a
few locators stay open per user, the oldest being dropped (`INVALID_QUERY_LOCATOR` after that).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from syncd.sim.salesforce_data import Org, Row
from syncd.sim.salesforce_schema import child_relationships
from syncd.sim.salesforce_soql import (
    Comparison,
    Query,
    SoqlError,
    comparisons,
    matches,
    parse,
    rename,
)
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
    """Parse `text` and check it against the org: object, fields, literal types, and the child
    relationships its subqueries name."""
    query = parse(text)
    sobject = sobject_name(org, query.sobject)
    if sobject is None:
        raise SoqlError("INVALID_TYPE", f"sObject type '{query.sobject}' is not supported.")
    children = {name.lower(): name for name in child_relationships(org.schemas, sobject)}
    subqueries = []
    for sub in query.subqueries:
        name = children.get(sub.sobject.lower())
        if name is None:
            raise SoqlError(
                "INVALID_TYPE",
                f"Didn't understand relationship '{sub.sobject}' in FROM part of query call.",
            )
        child = child_relationships(org.schemas, sobject)[name][0]
        compiled = _checked(org, sub, child)
        subqueries.append(replace(compiled, relationship=name))
    return replace(_checked(org, query, sobject), subqueries=tuple(subqueries))


def _checked(org: Org, query: Query, sobject: str) -> Query:
    """`query` over `sobject` with canonical field names, its literals checked."""
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
    return replace(query, sobject=sobject)


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
        rows = self._rows(query)
        records = [project(query.sobject, query.fields, row, version) for row in rows]
        for sub in query.subqueries:
            self._add_children(query.sobject, sub, rows, records, version)
        size = self.page_size
        if batch_hint and batch_hint.startswith("batchSize=") and batch_hint[10:].isdigit():
            size = min(size, max(200, min(2000, int(batch_hint[10:]))))
        return self._page(records, version, size, None, 0)

    def _rows(self, query: Query) -> list[Row]:
        """The visible rows matching the query, sorted and limited. `Field IN (...)` on an
        indexed field (external id, unique) is looked up in the index, as Salesforce does."""
        where = query.where
        if isinstance(where, Comparison) and where.op in {"=", "IN"}:
            values = where.value if isinstance(where.value, tuple) else (where.value,)
            # The index holds current values, queries see snapshots: only without a delay.
            usable = self.org.visibility_delay <= 0 and None not in values
            if usable and where.field in self.org.indexed(query.sobject):
                found = {r for v in values for r in self.org.find(query.sobject, where.field, v)}
                visible = self.org.visible_by_id(query.sobject)
                candidates = [visible[rid] for rid in sorted(found) if rid in visible]
                rows = [r for r in candidates if matches(where, r)]
                return soql_sort(rows, query.order_by)[: query.limit]
        candidates = self.org.visible_rows(query.sobject)
        rows = [r for r in candidates if matches(where, r)]
        return soql_sort(rows, query.order_by)[: query.limit]

    def _add_children(
        self,
        parent: str,
        sub: Query,
        rows: list[Row],
        records: list[dict[str, Any]],
        version: str,
    ) -> None:
        """Each parent record gets its children under the relationship's name: null when
        there are none, else a query result of its own (`totalSize`, `done`, `records`)."""
        assert sub.relationship is not None
        child, lookup = child_relationships(self.org.schemas, parent)[sub.relationship]
        by_parent: dict[str, list[Row]] = {}
        if self.org.visibility_delay <= 0:  # the lookup's index holds what queries see
            visible = self.org.visible_by_id(child)
            for row in rows:
                ids = self.org.find(child, lookup, row["Id"])
                found = [visible[k] for k in ids if k in visible]
                by_parent[row["Id"]] = [k for k in found if matches(sub.where, k)]
        else:
            wanted = {row["Id"] for row in rows}
            for row in self.org.visible_rows(child):
                if row.get(lookup) in wanted and matches(sub.where, row):
                    by_parent.setdefault(row[lookup], []).append(row)
        for row, record in zip(rows, records, strict=True):
            kids = soql_sort(by_parent.get(row["Id"], []), sub.order_by)[: sub.limit]
            record[sub.relationship] = (
                {
                    "totalSize": len(kids),
                    "done": True,
                    "records": [project(child, sub.fields, kid, version) for kid in kids],
                }
                if kids
                else None
            )

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
