"""The plan and push phases: diff changed accounts against the CRM, write what differs, in batches.

Accounts whose mirrored version is newer than the one syncd last synced (found through the queue
the triggers keep, `syncd.store.push_queue`, so an idle push reads nothing) are read from the CRM in
batches of the adapter's size (one read per batch), diffed three ways (`syncd.domain.diff`; the
plan is `syncd.sync.push_plan`), and the ones that need a write are upserted by their key in one
call per batch, with what the read found (record and contact ids) so that the adapter can pick
the cheapest calls. Every account then gets its link row (CRM ids, synced version, what syncd
wrote) and its outcome in the ledger, in one transaction per batch.

The batches are pipelined: the next batch is selected, read and diffed in a worker thread
(`syncd.sync.prefetch`) while the current one is written and committed. Batches hold disjoint
accounts (keyset paging by id), so a read never races a write of the same account, and a
failure while planning a batch surfaces after every batch before it is committed.

Upserts are keyed by the TA id, so a repeated write never creates a second record; an outcome lost
with its response is left `unknown` and settled on the next cycle by reading the CRM again, never
by a blind create. A batch the CRM refuses as a whole is split in halves, down to the record at
fault, so one bad row does not hold back the others. A batch whose read fails (not fatally: an
unreadable answer, retries spent) is not written: its accounts go to retry with the reason, and
the push goes on with the next batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from syncd import crashpoints
from syncd.crm.port import CrmError, CrmPort, Outcome, Upsert, WriteResult
from syncd.domain.diff import AccountDiff, Plan
from syncd.domain.mapping import Mapping
from syncd.store import push_queue
from syncd.store.links import Candidate, Selection, iter_candidates, record_conflicts, save_links
from syncd.store.runs import LedgerEntry, record
from syncd.sync.prefetch import prefetch
from syncd.sync.pull import Stopped
from syncd.sync.push_plan import Planned, PlannedBatch, Planner, PlanReport, same_key

__all__ = ["PlanReport", "PushCounts", "PushOptions", "PushPhase"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushOptions:
    selection: Selection = field(default_factory=Selection)
    dry_run: bool = False
    retry_base: timedelta = timedelta(minutes=5)
    retry_cap: timedelta = timedelta(days=1)
    pipeline: bool = True
    """Plan the next batch in a worker thread while the current one is written."""

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
        self.planner = Planner(crm, mapping, options.selection)

    def run(self) -> PushCounts:
        now = self.clock()
        if not self.options.dry_run:
            with self.engine.begin() as conn:
                push_queue.unmark(conn)  # marks of accounts pushed since, or switched off
        batches = iter_candidates(self.engine, self.options.selection, now, self.crm.batch_size)
        plans: Iterator[PlannedBatch] = (self.planner.plan(batch) for batch in batches)
        if self.options.pipeline:
            plans = prefetch(plans)  # selected, read and diffed while the previous is written
        try:
            for batch in plans:
                if self.should_stop():
                    raise Stopped
                self.push_planned(batch)
        finally:
            # Both kinds of `plans` are generators: closing one now stops the prefetch worker
            # at once, rather than whenever the exception's traceback is dropped.
            getattr(plans, "close", lambda: None)()
        return self.counts

    def push_batch(self, batch: Sequence[Candidate]) -> None:
        """Plan and push one batch of candidates."""
        self.push_planned(self.planner.plan(batch))

    def push_planned(self, batch: PlannedBatch) -> None:
        """Write a planned batch to the CRM, then commit its links and ledger in one go."""
        # Counted here, in the writing thread only: the plan may run in the worker.
        self.counts.crm_reads += batch.reads
        self.counts.planned += batch.size
        self.counts.rejected += len(batch.entries)
        planned, entries = batch.planned, list(batch.entries)
        if batch.read_error is not None and not self.options.dry_run:
            self._unread(batch, entries)
            return
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
            push_queue.unmark(conn, [link["account_id"] for link in links])
            record_conflicts(conn, conflicts)
            record(conn, self.run_id, entries)
            crashpoints.reach("push.before_commit")
        logger.info("batch_pushed", extra={"accounts": batch.size, "written": len(writes)})

    def _unread(self, batch: PlannedBatch, entries: list[LedgerEntry]) -> None:
        """Record the accounts of a batch whose CRM read failed as to retry, with the reason."""
        now = self.clock()
        reason = f"reading the CRM failed: {batch.read_error}"
        links = [
            self._unsettled(
                c, WriteResult(c.account_id, Outcome.RETRY, reason=reason), now, entries
            )
            for c in batch.unread
        ]
        with self.engine.begin() as conn:
            save_links(conn, links)
            record(conn, self.run_id, entries)
        logger.warning("batch_read_failed", extra={"accounts": batch.size, "error": reason})

    def _upsert_of(self, planned: Planned) -> Upsert:
        """The write of one planned account, with what the read found: the record's id, and
        the contact's id when the read found the very contact being written linked to it."""
        plan, held = planned.plan, planned.crm
        fields = {**plan.account.changes, self.mapping.key_property: plan.key}
        contact = None
        contact_id = None
        if plan.contact is not None and plan.contact.needs_write:
            contact = {
                **plan.contact.changes,
                self.mapping.contact_key_property: planned.contact_key,
            }
            key_held = held.contact.get(self.mapping.contact_key_property) if held else None
            if held is not None and held.contact_id and same_key(key_held, planned.contact_key):
                contact_id = held.contact_id
        crm_id = held.crm_id if held is not None else None
        return Upsert(plan.key, fields, contact, crm_id=crm_id, contact_id=contact_id)

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
                        or self._held_contact_id(item),
                        "synced_version": candidate.version,
                        "synced_fields": _seen(plan.account, candidate.synced_fields),
                        "synced_contact": _seen(plan.contact, candidate.synced_contact)
                        if plan.contact
                        else {},
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
            links.append(self._unsettled(candidate, result, now, entries))
        return links, conflicts

    def _unsettled(
        self,
        candidate: Candidate,
        result: WriteResult,
        now: datetime,
        entries: list[LedgerEntry],
    ) -> dict[str, Any]:
        """The link row of an account left to retry, rejected or unknown, counted, with its
        ledger entry added to `entries`."""
        outcome = result.outcome
        attempts = candidate.attempts + 1
        state = {Outcome.RETRY: "retry", Outcome.REJECTED: "rejected"}.get(outcome, "unknown")
        wait = timedelta(0) if outcome is Outcome.UNKNOWN else self.options.backoff(attempts)
        if result.retry_after:
            wait = max(wait, timedelta(seconds=result.retry_after))
        setattr(self.counts, state, getattr(self.counts, state) + 1)
        entries.append(
            LedgerEntry("tier_account", result.key, "push", state, "crm_" + state, result.reason)
        )
        return {
            "account_id": result.key,
            "crm": self.crm.name,
            "state": state,
            "attempted_version": candidate.version,
            "attempts": attempts,
            "next_attempt_at": now + wait,
            "last_error": result.reason,
        }

    @staticmethod
    def _held_contact_id(item: Planned) -> str | None:
        """The contact id as the read found it, or as the link held it when not read."""
        if item.crm is not None and item.crm.contact_read:
            return item.crm.contact_id
        return item.candidate.contact_id

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


def _seen(diff: AccountDiff, before: dict[str, str | None] | None) -> dict[str, str | None]:
    """What syncd now holds as seen in the CRM: the diff's `new_last`, except CRM-owned fields the
    CRM changed: they keep the value seen before, so the write-back still sees the edit and takes
    it to Connect (it records the new value once it has)."""
    previous = before or {}
    return {**diff.new_last, **{f: previous.get(f) for f in diff.crm_owned_updates}}
