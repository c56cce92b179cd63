"""The plan phase of a push: one batch of candidates read from the CRM and diffed three ways.

One read per batch (`CrmPort.read`). The caller (`syncd.sync.push`) may run `Planner.plan` in
the prefetch worker while it writes the previous batch, so the planner keeps no state that the
writing thread changes: it returns everything, counts included, in a `PlannedBatch`.

What the read must bring, and what it may leave out: an account's contact is needed only when
Connect wants something else than what syncd last wrote to it (on the fields syncd writes), when
the link names no contact yet, or in a full resync. Any other account goes to the read in
`skip_contacts` with the record id its link holds; an adapter whose contacts cost calls of their
own (HubSpot: an association read and a contacts read) then reads only the accounts' records, so
a cycle that changed account fields alone costs one read per batch. The adapter reads the contact
after all when the record it finds is not the one the link names (recreated, merged).

A read that fails without stopping the run (an unreadable answer, retries spent) leaves its
batch unplanned (`PlannedBatch.read_error`): those accounts are retried later, the other batches
go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from syncd.crm.port import CrmError, CrmPort, CrmRecord, Fields
from syncd.domain.diff import AccountDiff, Plan, diff, same
from syncd.domain.mapping import Mapping, UnmappableValue, apply
from syncd.store.links import Candidate, Selection
from syncd.store.runs import LedgerEntry


@dataclass(frozen=True)
class Planned:
    candidate: Candidate
    plan: Plan
    crm: CrmRecord | None
    contact_key: str | None


@dataclass(frozen=True)
class PlannedBatch:
    """One batch of candidates, read and diffed, ready to be written."""

    size: int
    planned: list[Planned]
    entries: tuple[LedgerEntry, ...]
    """Ledger entries of candidates the mapping refused (rejected, not written)."""
    reads: int
    read_error: str | None = None
    """Why the CRM read of this batch failed (not fatally); `planned` is then empty and
    `unread` holds the candidates that wait for a later cycle."""
    unread: tuple[Candidate, ...] = ()


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


def same_key(a: str | None, b: str | None) -> bool:
    """Whether two contact keys name the same contact (emails ignore case)."""
    return bool(a and b) and (a or "").strip().lower() == (b or "").strip().lower()


class Planner:
    """Reads and diffs batches of candidates for one CRM and mapping."""

    def __init__(self, crm: CrmPort, mapping: Mapping, selection: Selection) -> None:
        self.crm = crm
        self.mapping = mapping
        self.selection = selection
        self._account_rules = mapping.account_rules()
        self._contact_rules = mapping.contact_rules()

    def plan(self, batch: Sequence[Candidate]) -> PlannedBatch:
        """Read the batch's CRM state (one read) and diff every candidate the mapping takes."""
        wanted: list[tuple[Candidate, Fields, Fields | None]] = []
        entries: list[LedgerEntry] = []
        for candidate in batch:
            try:
                fields, contact = apply(self.mapping, candidate.record)
            except UnmappableValue as exc:
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
            wanted.append((candidate, fields, contact))
        skip = {
            c.account_id: c.crm_id
            for c, _, contact in wanted
            if c.crm_id is not None and not self.contact_needs_read(c, contact)
        }
        try:
            current = self.crm.read([c.account_id for c in batch], skip_contacts=skip)
        except CrmError as exc:
            if exc.fatal:
                raise
            unread = tuple(c for c, _, _ in wanted)
            return PlannedBatch(len(batch), [], tuple(entries), 1, str(exc), unread)
        planned = [self._diff(c, f, contact, current.get(c.account_id)) for c, f, contact in wanted]
        return PlannedBatch(len(batch), planned, tuple(entries), reads=1)

    def contact_needs_read(self, candidate: Candidate, wanted: Fields | None) -> bool:
        """Whether the diff needs the CRM's contact (see the module doc)."""
        if wanted is None:
            return False  # no contact to write
        if self.selection.full or candidate.contact_id is None:
            return True
        if candidate.synced_version is None or candidate.synced_contact is None:
            return True
        last = candidate.synced_contact
        return any(
            rule.owner == "connect" and not same(wanted.get(name), last.get(name))
            for name, rule in self._contact_rules.items()
        )

    def _diff(
        self,
        candidate: Candidate,
        wanted: Fields,
        wanted_contact: Fields | None,
        held: CrmRecord | None,
    ) -> Planned:
        account = diff(
            wanted, held.fields if held else None, candidate.synced_fields, self._account_rules
        )
        contact: AccountDiff | None = None
        contact_key = None
        if wanted_contact is not None:
            contact_key = wanted_contact.get(self.mapping.contact_key_property)
            if held is not None and not held.contact_read:
                # Not read, since Connect wants what syncd last wrote: nothing to write, and
                # what syncd last wrote stays the reference.
                contact = AccountDiff(create=False, new_last=dict(candidate.synced_contact or {}))
            else:
                crm_contact = held.contact if held is not None and held.contact_id else None
                last = candidate.synced_contact
                key_held = (
                    crm_contact.get(self.mapping.contact_key_property) if crm_contact else None
                )
                if crm_contact is not None and not same_key(key_held, contact_key):
                    # Another key is another CRM record (HubSpot: a changed email is a new
                    # contact): it gets every field, as a created record does.
                    crm_contact = last = None
                contact = diff(wanted_contact, crm_contact, last, self._contact_rules)
        return Planned(candidate, Plan(candidate.account_id, account, contact), held, contact_key)
