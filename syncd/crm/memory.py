"""An in-memory CRM implementing the CRM port, for unit tests of the plan and push phases.

It behaves like the real ones where it matters to syncd: records are keyed by the TA id, so an
upsert never duplicates; every write (ours included) bumps the record's modified time, so the
incremental read sees our own writes come back (HubSpot's `hs_lastmodifieddate` echo); unknown
properties are refused per record. And it fails on demand: a key rejected for good, a key that
asks to be retried N times, a whole call that raises, a response lost after the write applied.

Time is a logical clock unless one is given: each write advances it by one millisecond from a fixed
epoch, so tests are deterministic and `changed_since` never depends on the wall clock.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from syncd.crm.port import CrmError, CrmRecord, Fields, Outcome, Upsert, WriteResult
from syncd.domain import mapping as fieldmaps

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class LoggedWrite:
    """One change the CRM applied: syncd's upserts and simulated edits by CRM users alike."""

    at: datetime
    kind: Literal["create", "update", "edit", "delete"]
    key: str
    fields: Fields = field(default_factory=dict)
    contact: Fields | None = None


@dataclass(frozen=True)
class Call:
    """One call through the port, for counting what a phase costs."""

    method: str
    keys: tuple[str, ...] = ()


@dataclass
class _Failure:
    outcome: Outcome
    reason: str
    remaining: int | None  # None: for ever
    retry_after: float | None = None


@dataclass
class _LostResponse:
    keys: frozenset[str] | None  # None: every item of the call
    applied: bool


class MemoryCrm:
    """A CRM in memory. `properties`/`contact_properties` are what it has; `creatable` ones are
    missing until `setup()` creates them (as syncd creates HubSpot's custom properties)."""

    def __init__(
        self,
        properties: Iterable[str],
        contact_properties: Iterable[str] = (),
        *,
        key_property: str = "connect_account_id",
        creatable: Iterable[str] = (),
        creatable_contact: Iterable[str] = (),
        batch_size: int = 100,
        name: str = "memory",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.name = name
        self.batch_size = batch_size
        self.key_property = key_property
        self._properties = set(properties)
        self._contact_properties = set(contact_properties)
        self._creatable = set(creatable) - self._properties
        self._creatable_contact = set(creatable_contact) - self._contact_properties
        self._clock = clock
        self._tick = 0
        self._ids = itertools.count(1)
        self._records: dict[str, CrmRecord] = {}
        self._failures: dict[str, _Failure] = {}
        self._lost: _LostResponse | None = None
        self._raise_next: CrmError | None = None
        self._lock = threading.Lock()
        self.writes: list[LoggedWrite] = []
        """Every change applied, in order."""
        self.calls: list[Call] = []
        """Every call through the port, in order."""

    @classmethod
    def for_mapping(
        cls,
        mapping: fieldmaps.Mapping,
        *,
        missing: Iterable[str] = (),
        batch_size: int = 100,
        clock: Callable[[], datetime] | None = None,
    ) -> MemoryCrm:
        """A CRM with every property `mapping` needs, except `missing` ones (`account.X` /
        `contact.Y`, as `check_against` names them), which `setup()` then creates."""
        absent = set(missing)
        account = {f.target for f in mapping.account}
        contact = {f.target for f in mapping.contact}
        absent_account = {p for p in account if f"account.{p}" in absent}
        absent_contact = {p for p in contact if f"contact.{p}" in absent}
        return cls(
            account - absent_account,
            contact - absent_contact,
            key_property=mapping.key_property,
            creatable=absent_account,
            creatable_contact=absent_contact,
            batch_size=batch_size,
            clock=clock,
        )

    # ---- the port -------------------------------------------------------------------------

    def properties(self) -> set[str]:
        """The account properties the CRM has now."""
        self.calls.append(Call("properties"))
        return set(self._properties)

    def contact_properties(self) -> set[str]:
        """The contact properties the CRM has now."""
        self.calls.append(Call("contact_properties"))
        return set(self._contact_properties)

    def setup(self) -> list[str]:
        """Create the creatable properties still missing; say which."""
        with self._lock:
            self.calls.append(Call("setup"))
            done = [f"created account property {p}" for p in sorted(self._creatable)]
            done += [f"created contact property {p}" for p in sorted(self._creatable_contact)]
            self._properties |= self._creatable
            self._contact_properties |= self._creatable_contact
            self._creatable, self._creatable_contact = set(), set()
            return done

    def read(
        self, keys: Sequence[str], skip_contacts: Mapping[str, str] | None = None
    ) -> dict[str, CrmRecord]:
        """The records of `keys` that exist; those in `skip_contacts` with that record id come
        without their contact (`contact_read=False`), as the HubSpot adapter leaves them."""
        skip = skip_contacts or {}
        with self._lock:
            self.calls.append(Call("read", tuple(keys)))
            self._maybe_raise()
            found = {k: _copy(self._records[k]) for k in keys if k in self._records}
        return {
            k: replace(r, contact_id=None, contact={}, contact_read=False)
            if skip.get(k) == r.crm_id
            else r
            for k, r in found.items()
        }

    def upsert(self, items: Sequence[Upsert]) -> list[WriteResult]:
        """Create or update each item by key; one result per item, in order."""
        if len(items) > self.batch_size:
            # A real CRM answers 400 to an oversized batch; here it is a bug in the caller.
            raise ValueError(
                f"{len(items)} items in one upsert; the batch size is {self.batch_size}"
            )
        with self._lock:
            self.calls.append(Call("upsert", tuple(item.key for item in items)))
            self._maybe_raise()
            lost, self._lost = self._lost, None
            return [self._upsert_one(item, lost) for item in items]

    def changed_since(self, since: datetime) -> Iterator[CrmRecord]:
        """Records modified at or after `since`, oldest first (ties by key)."""
        with self._lock:
            self.calls.append(Call("changed_since"))
            self._maybe_raise()
            found = [
                _copy(r) for r in self._records.values() if r.modified_at and r.modified_at >= since
            ]
        return iter(sorted(found, key=lambda r: (r.modified_at or EPOCH, r.key)))

    # ---- failures on demand ---------------------------------------------------------------

    def reject(self, key: str, reason: str = "FIELD_CUSTOM_VALIDATION_EXCEPTION") -> None:
        """Refuse every upsert of `key` for good, with `reason`."""
        self._failures[key] = _Failure(Outcome.REJECTED, reason, None)

    def fail_retry(
        self,
        key: str,
        times: int = 1,
        *,
        reason: str = "UNABLE_TO_LOCK_ROW",
        retry_after: float | None = None,
    ) -> None:
        """Answer "retry later" to the next `times` upserts of `key`, then accept them."""
        self._failures[key] = _Failure(Outcome.RETRY, reason, times, retry_after)

    def clear_failures(self) -> None:
        """Forget every per-key failure, lost response and pending error."""
        self._failures.clear()
        self._lost, self._raise_next = None, None

    def lose_next_response(
        self, keys: Iterable[str] | None = None, *, applied: bool = True
    ) -> None:
        """Make the next upsert answer UNKNOWN for `keys` (all if None): a timeout after commit
        when `applied`, before it otherwise. Only settled by reading back."""
        self._lost = _LostResponse(None if keys is None else frozenset(keys), applied)

    def raise_next(self, error: CrmError) -> None:
        """Make the next read, upsert or changed_since call raise `error`, writing nothing."""
        self._raise_next = error

    # ---- the CRM's users ------------------------------------------------------------------

    def edit(self, key: str, fields: Fields | None = None, contact: Fields | None = None) -> None:
        """Change a record as a CRM user would (not through syncd). A None value clears it."""
        with self._lock:
            record = self._records[key]
            at = self._now()
            self._records[key] = replace(
                record,
                fields=_merged(record.fields, fields or {}),
                contact=_merged(record.contact, contact or {}),
                modified_at=at,
            )
            logged_contact = None if contact is None else dict(contact)
            self.writes.append(LoggedWrite(at, "edit", key, dict(fields or {}), logged_contact))

    def delete(self, key: str) -> None:
        """Remove a record, as a CRM user deleting it would."""
        with self._lock:
            del self._records[key]
            self.writes.append(LoggedWrite(self._now(), "delete", key))

    def get(self, key: str) -> CrmRecord | None:
        """The record of `key` as it is now (no call is logged)."""
        record = self._records.get(key)
        return None if record is None else _copy(record)

    @property
    def keys(self) -> set[str]:
        """The keys of every record."""
        return set(self._records)

    def now(self) -> datetime:
        """The time of the latest change (the epoch before any)."""
        if self._clock is not None:
            return self._clock()
        return EPOCH + timedelta(milliseconds=self._tick)

    # ---- internals ------------------------------------------------------------------------

    def _now(self) -> datetime:
        self._tick += 1
        return self.now()

    def _maybe_raise(self) -> None:
        error, self._raise_next = self._raise_next, None
        if error is not None:
            raise error

    def _upsert_one(self, item: Upsert, lost: _LostResponse | None) -> WriteResult:
        failure = self._failures.get(item.key)
        if failure is not None:
            if failure.remaining is not None:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    del self._failures[item.key]
            return WriteResult(
                item.key, failure.outcome, reason=failure.reason, retry_after=failure.retry_after
            )
        unknown = self._unknown_properties(item)
        if unknown:
            return WriteResult(item.key, Outcome.REJECTED, reason=f"unknown property {unknown}")
        is_lost = lost is not None and (lost.keys is None or item.key in lost.keys)
        if is_lost and lost is not None and not lost.applied:
            return WriteResult(item.key, Outcome.UNKNOWN, reason="response lost (simulated)")
        record = self._write(item)
        if is_lost:
            return WriteResult(item.key, Outcome.UNKNOWN, reason="response lost (simulated)")
        return WriteResult(item.key, Outcome.DONE, record.crm_id, record.contact_id)

    def _unknown_properties(self, item: Upsert) -> str | None:
        for name in item.fields:
            if name not in self._properties:
                return name
        for name in item.contact or {}:
            if name not in self._contact_properties:
                return f"contact.{name}"
        return None

    def _write(self, item: Upsert) -> CrmRecord:
        at = self._now()
        existing = self._records.get(item.key)
        if existing is None:
            fields = _merged({self.key_property: item.key}, item.fields)
            record = CrmRecord(item.key, f"mem-{next(self._ids)}", fields, modified_at=at)
        else:
            record = replace(existing, fields=_merged(existing.fields, item.fields), modified_at=at)
        if item.contact is not None:
            contact_id = record.contact_id or f"mem-c-{next(self._ids)}"
            record = replace(
                record, contact_id=contact_id, contact=_merged(record.contact, item.contact)
            )
        self._records[item.key] = record
        kind: Literal["create", "update"] = "create" if existing is None else "update"
        contact = None if item.contact is None else dict(item.contact)
        self.writes.append(LoggedWrite(at, kind, item.key, dict(item.fields), contact))
        return record


def _merged(base: Fields, changes: Fields) -> dict[str, str | None]:
    """`base` with `changes` applied; a None value removes the property, as clearing it would."""
    out = dict(base)
    for name, value in changes.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def _copy(record: CrmRecord) -> CrmRecord:
    # Callers get their own dicts: a caller mutating one must not change the CRM.
    return replace(record, fields=dict(record.fields), contact=dict(record.contact))
