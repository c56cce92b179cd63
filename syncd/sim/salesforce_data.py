"""The simulated org's records and the rules a write goes through.

Every write, ours included, stamps `SystemModstamp` and `LastModifiedDate` with the org clock at
whole-second precision (Salesforce datetimes carry `.000` milliseconds), so a batch of 200 shares
one stamp: the equal-timestamp bursts and the echo of our own writes that incremental reads must
cope with. With `visibility_delay` set, queries see a write only that many seconds later, while a
read by id sees it at once.
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from syncd.sim.salesforce_schema import FieldSpec, default_schemas, record_id

Row = dict[str, Any]
Error = dict[str, Any]

# Deliberately loose, like Salesforce's own check: something@something.something.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def error(code: str, message: str, fields: list[str] | None = None) -> Error:
    """One entry of a per-record `errors` array."""
    return {"statusCode": code, "message": message, "fields": fields or []}


class Org:
    """Records by type and id, unique-value indexes, and what queries can see."""

    def __init__(self, clock: Callable[[], float], visibility_delay: float = 0.0) -> None:
        self.clock = clock
        self.visibility_delay = visibility_delay
        self.validate_email = True
        self.refused_emails: set[str] = set()
        """Addresses refused as INVALID_EMAIL_ADDRESS however well-formed (a validation rule)."""
        self.schemas = default_schemas()
        self.records: dict[str, dict[str, Row]] = {name: {} for name in self.schemas}
        self._visible: dict[str, dict[str, Row]] = {name: {} for name in self.schemas}
        self._pending: list[tuple[float, int, str, str, Row]] = []
        self._seq = itertools.count(1)
        self._index: dict[tuple[str, str], dict[Any, set[str]]] = {}
        self._indexed_fields: dict[str, list[str]] = {}
        self._required: dict[str, list[str]] = {}
        self.locks: dict[tuple[str, str], int] = defaultdict(int)
        self._reindex()

    # -- metadata ----------------------------------------------------------------------------

    def add_field(self, sobject: str, spec: FieldSpec) -> None:
        self.schemas[sobject][spec.name] = spec
        self._reindex()

    def drop_field(self, sobject: str, name: str) -> None:
        self.schemas[sobject].pop(name, None)
        self._reindex()

    def indexed(self, sobject: str) -> list[str]:
        """Fields with an index: unique ones, external ids and lookups (as in Salesforce)."""
        return self._indexed(sobject)

    def _indexed(self, sobject: str) -> list[str]:
        return self._indexed_fields[sobject]

    def _reindex(self) -> None:
        """Rebuild the indexes, and what is derived from the schemas, after a schema change."""
        self._indexed_fields = {
            sobject: [n for n, f in fields.items() if f.unique or f.external_id or f.reference_to]
            for sobject, fields in self.schemas.items()
        }
        self._required = {
            sobject: [n for n, f in fields.items() if f.required]
            for sobject, fields in self.schemas.items()
        }
        self._index = {}
        for sobject, rows in self.records.items():
            for name in self._indexed(sobject):
                index = self._index[(sobject, name)] = defaultdict(set)
                for rid, row in rows.items():
                    if row.get(name) is not None:
                        index[row[name]].add(rid)

    # -- reads -------------------------------------------------------------------------------

    def find(self, sobject: str, field: str, value: Any) -> list[str]:
        """Ids of the records whose (unique or external id) `field` equals `value`."""
        return sorted(self._index.get((sobject, field), {}).get(value, set()))

    def by_external_id(self, sobject: str, field: str, value: Any) -> Row | None:
        ids = self.find(sobject, field, value)
        return self.records[sobject][ids[0]] if ids else None

    def visible_rows(self, sobject: str) -> list[Row]:
        """What a query sees now: every write older than the visibility delay."""
        return list(self.visible_by_id(sobject).values())

    def visible_by_id(self, sobject: str) -> dict[str, Row]:
        """What a query sees now, by record id (a read-only view: do not change it)."""
        now = self.clock()
        while self._pending and self._pending[0][0] <= now:
            _, _, kind, rid, snapshot = heapq.heappop(self._pending)
            self._visible[kind][rid] = snapshot
        return self._visible[sobject]

    # -- writes ------------------------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.fromtimestamp(math.floor(self.clock()), UTC)

    def write(self, sobject: str, rid: str | None, values: Mapping[str, Any]) -> tuple[str, bool]:
        """Apply checked values (creating when `rid` is None); stamp; return (id, created)."""
        now, created = self.now(), rid is None
        if rid is None:
            rid = record_id(sobject, next(self._seq))
            row: Row = {"Id": rid, "IsDeleted": False, "CreatedDate": now}
            self.records[sobject][rid] = row
        row = self.records[sobject][rid]
        for name in self._indexed(sobject):
            if name in values and row.get(name) is not None:
                self._index[(sobject, name)][row[name]].discard(rid)
        row.update(values)
        row["LastModifiedDate"] = row["SystemModstamp"] = now
        for name in self._indexed(sobject):
            if row.get(name) is not None:
                self._index[(sobject, name)][row[name]].add(rid)
        self._publish(sobject, rid, dict(row))
        return rid, created

    def restore(self, sobject: str, rid: str, before: Row | None) -> None:
        """Undo a write (allOrNone rollback): put back the row as it was, or remove it."""
        row = self.records[sobject].get(rid)
        for name in self._indexed(sobject):
            if row and row.get(name) is not None:
                self._index[(sobject, name)][row[name]].discard(rid)
        if before is None:
            self.records[sobject].pop(rid, None)
            self._visible[sobject].pop(rid, None)
            return
        self.records[sobject][rid] = before
        for name in self._indexed(sobject):
            if before.get(name) is not None:
                self._index[(sobject, name)][before[name]].add(rid)
        self._publish(sobject, rid, dict(before))

    def _publish(self, sobject: str, rid: str, snapshot: Row) -> None:
        if self.visibility_delay <= 0:
            self._visible[sobject][rid] = snapshot
        else:
            due = self.clock() + self.visibility_delay
            heapq.heappush(self._pending, (due, next(self._seq), sobject, rid, snapshot))

    # -- rules -------------------------------------------------------------------------------

    def check(self, sobject: str, rid: str | None, values: Mapping[str, Any]) -> list[Error]:
        """The errors Salesforce would answer for writing `values` to record `rid` (None: new)."""
        schema, errors = self.schemas[sobject], []
        fixed = [n for n in values if not schema[n].updateable]
        if fixed:
            errors.append(
                error(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {', '.join(fixed)}. Please check the "
                    "security settings of this field and verify that it is read/write.",
                    fixed,
                )
            )
        current = self.records[sobject].get(rid) if rid else None
        missing = []
        for name in self._required[sobject]:
            # A create must set it; an update may leave it out but not blank it.
            if values.get(name) in (None, "") and (name in values or current is None):
                missing.append(name)
        if missing:
            errors.append(
                error(
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{', '.join(missing)}]",
                    missing,
                )
            )
        for name, value in values.items():
            errors.extend(self._check_value(sobject, rid, schema[name], value))
        return errors

    def _check_value(
        self, sobject: str, rid: str | None, spec: FieldSpec, value: Any
    ) -> list[Error]:
        if value is None:
            return []
        text = str(value)
        if (
            spec.type == "email"
            and self.validate_email
            and (not _EMAIL.match(text) or text.lower() in self.refused_emails)
        ):
            return [
                error(
                    "INVALID_EMAIL_ADDRESS",
                    f"{spec.name}: invalid email address: {text}",
                    [spec.name],
                )
            ]
        if spec.length and spec.type not in {"id", "reference"} and len(text) > spec.length:
            return [
                error(
                    "STRING_TOO_LONG",
                    f"{spec.name}: data value too large: {text[:40]} (max length={spec.length})",
                    [spec.name],
                )
            ]
        if spec.unique:
            others = [o for o in self.find(sobject, spec.name, value) if o != rid]
            if others:
                return [
                    error(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {spec.name} duplicates value on record "
                        f"with id: {others[0]}",
                        [spec.name],
                    )
                ]
        return []
