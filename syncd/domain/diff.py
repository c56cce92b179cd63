"""The three-way diff of one CRM record: what Connect wants, what the CRM holds, what we last wrote.

For each mapped field, with `wanted` (the mapping applied to the TA), `crm` (the CRM's value now)
and `last` (the value syncd last wrote or saw for this link):

| case                                 | connect-owned field            | crm-owned field          |
|--------------------------------------|--------------------------------|--------------------------|
| no CRM record                        | create with the `wanted` value | seeded from `wanted`     |
| wanted == crm                        | nothing                        | nothing                  |
| crm == last (CRM untouched since us) | write `wanted`                 | nothing                  |
| crm != last (edited in the CRM)      | conflict, settled by policy    | `crm` goes to Connect    |

Policies for a CRM edit to a connect-owned field: `connect_wins` (the default) writes `wanted` and
records the overwritten value; `crm_wins` keeps the CRM value; `manual` keeps it too and leaves the
conflict to an operator. Kept and manual conflicts leave `last` as it was, so the CRM edit is still
recognised as one next time instead of being mistaken for syncd's own write.

Our own writes coming back (crm == last) are never conflicts: that is what stops echo loops
(HubSpot bumps `hs_lastmodifieddate` on every write, so the incremental read sees each of ours).

Comparison rules: None and blank are the same value (CRMs return either for an empty property), and
values are compared with surrounding whitespace stripped and CRLF read as LF (Salesforce text areas
edited in its UI come back with CRLF). Case is significant: a case change is a real edit. Only
fields named in `rules` are looked at; anything else in either record is never touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Owner = Literal["connect", "crm"]
Policy = Literal["connect_wins", "crm_wins", "manual"]
Resolution = Literal["overwritten", "kept", "manual"]
Fields = Mapping[str, str | None]

_RESOLUTION: dict[Policy, Resolution] = {
    "connect_wins": "overwritten",
    "crm_wins": "kept",
    "manual": "manual",
}


@dataclass(frozen=True)
class FieldRule:
    """Who owns a field and how a CRM edit to a connect-owned field is settled."""

    owner: Owner = "connect"
    policy: Policy | None = None

    @property
    def effective_policy(self) -> Policy:
        """The policy in force: the one given, else the owner's side wins."""
        if self.policy is not None:
            return self.policy
        return "connect_wins" if self.owner == "connect" else "crm_wins"


@dataclass(frozen=True)
class Conflict:
    """A CRM edit syncd did not make, to a field Connect also wants to change."""

    field: str
    wanted: str | None
    crm_value: str | None
    last_written: str | None
    resolution: Resolution


@dataclass(frozen=True)
class AccountDiff:
    """What to do about one CRM record (an account, or the account's contact)."""

    create: bool
    changes: dict[str, str | None] = field(default_factory=dict)
    """Only the fields to write; on create, every mapped field that has a value."""
    conflicts: tuple[Conflict, ...] = ()
    crm_owned_updates: dict[str, str | None] = field(default_factory=dict)
    """CRM-owned fields whose CRM value changed since syncd last saw it: for Connect."""
    new_last: dict[str, str | None] = field(default_factory=dict)
    """What syncd will have written or seen once `changes` are applied: the next `last`."""

    @property
    def needs_write(self) -> bool:
        """Whether the CRM has to be written at all."""
        return self.create or bool(self.changes)

    @property
    def unresolved(self) -> tuple[Conflict, ...]:
        """Conflicts left to an operator."""
        return tuple(c for c in self.conflicts if c.resolution == "manual")


@dataclass(frozen=True)
class Plan:
    """The diff of one account: its CRM record and, when mapped, its contact."""

    key: str
    account: AccountDiff
    contact: AccountDiff | None = None

    @property
    def needs_write(self) -> bool:
        """Whether either record has to be written."""
        return self.account.needs_write or (self.contact is not None and self.contact.needs_write)

    @property
    def has_conflicts(self) -> bool:
        """Whether either record has a conflict, whatever its resolution."""
        contact = self.contact.conflicts if self.contact is not None else ()
        return bool(self.account.conflicts or contact)


def normalise(value: str | None) -> str | None:
    """The form values are compared in: None for blank, CRLF as LF, surrounding space stripped."""
    if value is None:
        return None
    stripped = value.replace("\r\n", "\n").strip()
    return stripped or None


def same(a: str | None, b: str | None) -> bool:
    """Whether two field values are equal under `normalise`."""
    return a == b or normalise(a) == normalise(b)  # most are equal as they are: no copies then


def diff(
    wanted: Fields,
    crm: Fields | None,
    last: Fields | None,
    rules: Mapping[str, FieldRule],
) -> AccountDiff:
    """The three-way diff of one record over the fields named in `rules` (see the module doc).

    `crm` is None when the CRM has no record (then it is created, whatever `last` says: a record
    deleted in the CRM comes back); `last` is None when syncd never wrote this record.
    """
    if crm is None:
        return AccountDiff(
            create=True,
            changes={f: wanted.get(f) for f in rules if normalise(wanted.get(f)) is not None},
            new_last={f: wanted.get(f) for f in rules},
        )
    previous: Fields = last or {}
    changes: dict[str, str | None] = {}
    conflicts: list[Conflict] = []
    crm_updates: dict[str, str | None] = {}
    new_last: dict[str, str | None] = {}
    for name, rule in rules.items():
        want, have, had = wanted.get(name), crm.get(name), previous.get(name)
        if rule.owner == "crm":
            # The CRM's value is the truth; Connect only hears of it when it changed in the CRM.
            if not same(have, had) and not same(have, want):
                crm_updates[name] = have
            new_last[name] = have
        elif same(want, have):
            new_last[name] = want
        elif same(have, had):
            changes[name] = want
            new_last[name] = want
        else:
            policy = rule.effective_policy
            conflicts.append(Conflict(name, want, have, had, _RESOLUTION[policy]))
            if policy == "connect_wins":
                changes[name] = want
                new_last[name] = want
            else:
                new_last[name] = had
    return AccountDiff(
        create=False,
        changes=changes,
        conflicts=tuple(conflicts),
        crm_owned_updates=crm_updates,
        new_last=new_last,
    )
