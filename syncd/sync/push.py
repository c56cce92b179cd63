"""The plan and push phases: diff changed accounts against the CRM, write what differs, in batches.

Accounts whose mirrored version is newer than the one syncd last synced are read from the CRM in
batches of the adapter's size (one read per batch), diffed three ways (`syncd.domain.diff`), and
the ones that need a write are upserted by their key in one call per batch. Every account then
gets its link row (CRM ids, synced version, what syncd wrote) and its outcome in the ledger, in
one transaction per batch.

Upserts are keyed by the TA id, so a repeated write never creates a second record; an outcome lost
with its response is left `unknown` and settled on the next cycle by reading the CRM again, never
by a blind create. A batch the CRM refuses as a whole is split in halves, down to the record at
fault, so one bad row does not hold back the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from syncd import crashpoints
from syncd.crm.port import CrmError, CrmPort, CrmRecord, Outcome, Upsert, WriteResult
from syncd.domain.diff import AccountDiff, Plan, diff
from syncd.domain.mapping import Mapping, UnmappableValue, apply
from syncd.store.links import Candidate, Selection, iter_candidates, record_conflicts, save_links
from syncd.store.runs import LedgerEntry, record
from syncd.sync.pull import Stopped

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushOptions:
    selection: Selection = field(default_factory=Selection)
    dry_run: bool = False
    retry_base: timedelta = timedelta(minutes=5)
    retry_cap: timedelta = timedelta(days=1)

    def backoff(self, attempts: int) -> timedelta:
        """Wait before try `attempts + 1`: the first retry comes the next cycle, then it doubles."""
        if attempts <= 1:
            return timedelta(0)
        wait: timedelta = self.retry_base * 2 ** (attempts - 2)
        return min(wait, self.retry_cap)


@dataclass
class PushCounts:
    planned: int = 0
    unchanged: int = 0
    created: int = 0
    updated: int = 0
    rejected: int = 0
    retry: int = 0
    unknown: int = 0
    conflicts: int = 0
    crm_reads: int = 0
    crm_writes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Planned:
    candidate: Candidate
    plan: Plan
    crm: CrmRecord | None
    contact_key: str | None


@dataclass
class PlanReport:
    """What a dry run would do, for `--dry-run` output."""

    creates: list[str] = field(default_factory=list)
    updates: dict[str, dict[str, str | None]] = field(default_factory=dict)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0

    def add(self, planned: Planned) -> None:
        plan = planned.plan
        key = plan.key
        for name, diff_ in (("account", plan.account), ("contact", plan.contact)):
            if diff_ is None:
                continue
            for conflict in diff_.conflicts:
                self.conflicts.append({"account": key, "object": name, **asdict(conflict)})
        if plan.account.create:
            self.creates.append(key)
        elif plan.needs_write:
            changes = dict(plan.account.changes)
            if plan.contact is not None:
                changes.update({f"contact.{k}": v for k, v in plan.contact.changes.items()})
            self.updates[key] = changes
        else:
            self.unchanged += 1


class PushPhase:
    """Plan and push every selected account; `run` returns the counts."""

    def __init__(
        self,
        engine: Engine,
        crm: CrmPort,
        mapping: Mapping,
        options: PushOptions,
        run_id: int | None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.engine = engine
        self.crm = crm
        self.mapping = mapping
        self.options = options
        self.run_id = run_id
        self.clock = clock
        self.should_stop = should_stop
        self.counts = PushCounts()
        self.report = PlanReport()
        self._account_rules = mapping.account_rules()
        self._contact_rules = mapping.contact_rules()

    def run(self) -> PushCounts:
        now = self.clock()
        for batch in iter_candidates(self.engine, self.options.selection, now, self.crm.batch_size):
            if self.should_stop():
                raise Stopped
            self.push_batch(batch)
        return self.counts

    def push_batch(self, batch: Sequence[Candidate]) -> None:
        planned, entries = self._plan(batch)
        if self.options.dry_run:
            for item in planned:
                self.report.add(item)
            return
        writes = [p for p in planned if p.plan.needs_write]
        results = {r.key: r for r in self._upsert([self._upsert_of(p) for p in writes])}
        crashpoints.reach("push.after_crm_write")
        links, conflicts = self._settle(planned, results, entries)
        with self.engine.begin() as conn:
            save_links(conn, links)
            record_conflicts(conn, conflicts)
            record(conn, self.run_id, entries)
            crashpoints.reach("push.before_commit")
        logger.info("batch_pushed", extra={"accounts": len(batch), "written": len(writes)})

    # -- plan ----------------------------------------------------------------------------------

    def _plan(self, batch: Sequence[Candidate]) -> tuple[list[Planned], list[LedgerEntry]]:
        self.counts.crm_reads += 1
        current = self.crm.read([c.account_id for c in batch])
        planned: list[Planned] = []
        entries: list[LedgerEntry] = []
        for candidate in batch:
            self.counts.planned += 1
            try:
                wanted, wanted_contact = apply(self.mapping, candidate.record)
            except UnmappableValue as exc:
                self.counts.rejected += 1
                entries.append(
                    LedgerEntry(
                        "tier_account",
                        candidate.account_id,
                        "push",
                        "rejected",
                        "mapping",
                        str(exc),
                    )
                )
                continue
            held = current.get(candidate.account_id)
            account = diff(
                wanted,
                held.fields if held else None,
                candidate.synced_fields,
                self._account_rules,
            )
            contact: AccountDiff | None = None
            contact_key = None
            if wanted_contact is not None:
                contact_key = wanted_contact.get(self.mapping.contact_key_property)
                crm_contact = held.contact if held is not None and held.contact_id else None
                contact = diff(
                    wanted_contact, crm_contact, candidate.synced_contact, self._contact_rules
                )
            planned.append(
                Planned(candidate, Plan(candidate.account_id, account, contact), held, contact_key)
            )
        return planned, entries

    def _upsert_of(self, planned: Planned) -> Upsert:
        plan = planned.plan
        fields = {**plan.account.changes, self.mapping.key_property: plan.key}
        contact = None
        if plan.contact is not None and plan.contact.needs_write:
            contact = {
                **plan.contact.changes,
                self.mapping.contact_key_property: planned.contact_key,
            }
        return Upsert(plan.key, fields, contact)

    # -- push ----------------------------------------------------------------------------------

    def _upsert(self, items: Sequence[Upsert]) -> list[WriteResult]:
        if not items:
            return []
        self.counts.crm_writes += 1
        try:
            return self.crm.upsert(items)
        except CrmError as exc:
            if exc.fatal:
                raise
            if len(items) > 1 and exc.status is not None and _refused_as_a_whole(exc.status):
                middle = len(items) // 2
                logger.info("batch_split", extra={"size": len(items), "status": exc.status})
                return self._upsert(items[:middle]) + self._upsert(items[middle:])
            outcome = Outcome.REJECTED if _refused_as_a_whole(exc.status) else Outcome.RETRY
            return [WriteResult(item.key, outcome, reason=str(exc)) for item in items]

    def _settle(
        self,
        planned: Sequence[Planned],
        results: dict[str, WriteResult],
        entries: list[LedgerEntry],
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        now = self.clock()
        links: list[dict[str, Any]] = []
        conflicts: list[dict[str, Any]] = []
        for item in planned:
            candidate, plan = item.candidate, item.plan
            result = results.get(plan.key)
            outcome = result.outcome if result else Outcome.DONE
            base = {"account_id": plan.key, "crm": self.crm.name}
            if outcome is Outcome.DONE:
                links.append(
                    {
                        **base,
                        "state": "synced",
                        "crm_id": (result.crm_id if result else None)
                        or (item.crm.crm_id if item.crm else None),
                        "contact_id": (result.contact_id if result else None)
                        or (item.crm.contact_id if item.crm else None),
                        "synced_version": candidate.version,
                        "synced_fields": plan.account.new_last,
                        "synced_contact": plan.contact.new_last if plan.contact else {},
                        "attempted_version": candidate.version,
                        "attempts": 0,
                        "next_attempt_at": None,
                        "last_error": None,
                        "synced_at": now,
                    }
                )
                conflicts.extend(self._conflict_rows(plan))
                if result is None:
                    self.counts.unchanged += 1
                    continue
                created = plan.account.create
                self.counts.created += created
                self.counts.updated += not created
                entries.append(
                    LedgerEntry(
                        "tier_account",
                        plan.key,
                        "push",
                        "created" if created else "updated",
                        message=", ".join(sorted(plan.account.changes)) or None,
                    )
                )
                continue
            assert result is not None
            attempts = candidate.attempts + 1
            state = {Outcome.RETRY: "retry", Outcome.REJECTED: "rejected"}.get(outcome, "unknown")
            wait = timedelta(0) if outcome is Outcome.UNKNOWN else self.options.backoff(attempts)
            if result.retry_after:
                wait = max(wait, timedelta(seconds=result.retry_after))
            links.append(
                {
                    **base,
                    "state": state,
                    "attempted_version": candidate.version,
                    "attempts": attempts,
                    "next_attempt_at": now + wait,
                    "last_error": result.reason,
                }
            )
            setattr(self.counts, state, getattr(self.counts, state) + 1)
            entries.append(
                LedgerEntry("tier_account", plan.key, "push", state, "crm_" + state, result.reason)
            )
        return links, conflicts

    def _conflict_rows(self, plan: Plan) -> list[dict[str, Any]]:
        rows = []
        for name, diff_ in (("account", plan.account), ("contact", plan.contact)):
            for conflict in diff_.conflicts if diff_ else ():
                self.counts.conflicts += 1
                rows.append(
                    {
                        "run_id": self.run_id,
                        "account_id": plan.key,
                        "object": name,
                        "field": conflict.field,
                        "connect_value": conflict.wanted,
                        "crm_value": conflict.crm_value,
                        "last_written": conflict.last_written,
                        "resolution": conflict.resolution,
                    }
                )
        return rows


def _refused_as_a_whole(status: int | None) -> bool:
    """A 4xx other than auth, quota and rate limits: something in the batch itself is wrong."""
    return status is not None and 400 <= status < 500 and status not in (401, 403, 408, 423, 429)
