"""Writing the accounts' contacts to HubSpot, before their companies, in one call as a rule.

The adapter writes a batch's contacts first, so that a new company can be created with the
association to its contact inline (`hubspot_accounts`). Which call a contact takes:

- `batch/upsert` by its key (email), with no association of its own, when one of its accounts
  has a company still to create (the company's create links it), when the read found it linked
  already (`Upsert.contact_id`), or when it is known to exist (written or seen by this adapter
  before: a contact shared with an account of an earlier batch). Upsert is right whether the
  contact exists or not, so a shared contact costs nothing extra: the last fields win, and its
  company is linked by the create (or by the v4 association when the company exists).
- `batch/create` with the association to the company inline, when every account of the contact
  has a company the read found and the contact is new to this adapter (an account's email
  changed): one call for contact and link.
- HubSpot refuses a whole create batch with 409 when one email exists already (a contact made by
  hand, or by another process) and names only the first (hubspot-api-python #51). The emails of
  that batch are then read back (`batch/read` by email: consistent, unlike search), the ones that
  exist join the upserts, and the rest is created again; a second 409 (a contact created
  meanwhile) sends the rest to the upserts too.

The memory of existing keys is only a guess of which call to make, never a reason to skip one.
The caller links what is not linked yet (`ContactsWritten.linked` says which accounts are).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from syncd.crm.hubspot_reads import Reader
from syncd.crm.hubspot_records import Written, to_properties
from syncd.crm.hubspot_writes import CONTACT_TO_COMPANY, BatchWriter
from syncd.crm.port import CrmError, Outcome, Upsert

Groups = dict[str, list[Upsert]]
"""Normalised contact key -> the accounts whose contact it is."""
REMEMBERED = 500_000
"""Contact keys remembered as existing, at most (then the memory starts afresh)."""


@dataclass(frozen=True)
class ContactsWritten:
    contacts: dict[str, Written]
    """The outcome of each contact, by normalised contact key."""
    linked: frozenset[str]
    """Accounts (TA ids) whose company is now associated with their contact: created with the
    link inline, or found linked by the read."""


class ContactWriter:
    """Creates or upserts the contacts of a batch of accounts."""

    def __init__(self, writer: BatchWriter, reader: Reader, contact_key: str) -> None:
        self.writer = writer
        self.reader = reader
        self.contact_key = contact_key
        self._existing_keys: set[str] = set()

    def norm(self, value: str) -> str:
        """A contact key as HubSpot compares it (emails ignore case and surrounding blanks)."""
        value = value.strip()
        return value.lower() if self.contact_key == "email" else value

    def write(self, groups: Groups, company_ids: Mapping[str, str]) -> ContactsWritten:
        """Write the contacts of `groups`; `company_ids` holds the company id of each account
        whose company exists (the read found it), by TA id."""
        upserts: Groups = {}
        creates: Groups = {}
        for key, group in groups.items():
            known = key in self._existing_keys or any(i.contact_id for i in group)
            if known or any(i.key not in company_ids for i in group):
                upserts[key] = group
            else:
                creates[key] = group
        written: dict[str, Written] = {}
        linked: set[str] = set()
        if creates:
            created = self._create(creates, company_ids)
            for key, one in created.items():
                if one.conflict:
                    upserts[key] = creates[key]
                    continue
                written[key] = one
                self._remember(key, one)
                if one.outcome is Outcome.DONE:
                    linked.update(i.key for i in creates[key])
        if upserts:
            entries = [(k, k, to_properties(group[-1].contact)) for k, group in upserts.items()]
            for key, one in self.writer.upsert("contacts", self.contact_key, entries).items():
                written[key] = one
                self._remember(key, one)
                if one.outcome is Outcome.DONE:
                    linked.update(i.key for i in upserts[key] if i.contact_id == one.id)
        return ContactsWritten(written, frozenset(linked))

    def _create(self, groups: Groups, company_ids: Mapping[str, str]) -> dict[str, Written]:
        """Create with the link inline; what exists already comes back marked `conflict`."""
        created = self._create_once(groups, company_ids)
        clashes = [k for k, w in created.items() if w.conflict]
        if clashes:
            existing = self._existing(clashes)
            again = self._create_once(
                {k: groups[k] for k in clashes if k not in existing}, company_ids
            )
            created.update(again)  # the existing ones stay marked `conflict`: upserted
        return created

    def _create_once(self, groups: Groups, company_ids: Mapping[str, str]) -> dict[str, Written]:
        if not groups:
            return {}
        entries = [
            (key, to_properties(group[-1].contact), [company_ids[i.key] for i in group])
            for key, group in groups.items()
        ]
        return self.writer.create("contacts", self.contact_key, entries, CONTACT_TO_COMPANY)

    def _existing(self, keys: list[str]) -> set[str]:
        """Which of these contact keys HubSpot holds. When the read fails, all of them: an
        upsert and a link are right for contacts that exist and for those that do not."""
        try:
            found = self.reader.batch_read("contacts", keys, self.contact_key)
        except CrmError as exc:
            if exc.fatal:
                raise
            return set(keys)
        return {self.norm(str(f.properties.get(self.contact_key) or "")) for f in found}

    def _remember(self, contact_key: str, written: Written) -> None:
        if written.outcome is Outcome.DONE:
            if len(self._existing_keys) >= REMEMBERED:
                self._existing_keys.clear()
            self._existing_keys.add(contact_key)
