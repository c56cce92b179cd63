"""One batch of accounts written to HubSpot: contacts first, then companies, then missing links.

The order is what makes a batch of new accounts cost two calls whatever contacts they share:

1. Contacts (`hubspot_contacts`): one `batch/upsert` by email as a rule. A contact shared with an
   account of an earlier batch is just upserted again (the last fields win).
2. Companies: the new ones (the read found none: `Upsert.crm_id` is None) in one `batch/create`
   carrying the association to their contact inline (the v3 create input takes `associations`;
   upsert does not), the changed existing ones in one `batch/upsert` by the key property. A
   company the read found with nothing to change but its key is not written.
3. Links: only accounts whose company and contact exist without being associated yet (a contact
   made elsewhere for an existing company, a company whose create fell back to upsert) take the
   v4 default association, one call for all of them.

Nothing is doubled: a company create of a key that exists after all (created meanwhile, or a
caller that did not read) is refused whole with 409, and the batch's new companies are then
upserted by key and linked in step 3; contacts are upserted by email or created only when the
create would be refused for an existing email. A crash between two of these calls leaves records
that the next cycle's read finds (a contact not yet linked, a company without its contact) and
writes again by key; the account is recorded as synced only once every call for it succeeded.
The price: a company HubSpot refuses (a validation error) leaves its contact written, unlinked
until the company is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from syncd import crashpoints
from syncd.crm.hubspot_contacts import ContactWriter, Groups
from syncd.crm.hubspot_records import Written, to_properties
from syncd.crm.hubspot_writes import COMPANY_TO_CONTACT, BatchWriter
from syncd.crm.port import Outcome, Upsert, WriteResult


class AccountWriter:
    """Writes batches (at most 100 accounts, keys unique) of companies and their contacts."""

    def __init__(self, writer: BatchWriter, contacts: ContactWriter, key_property: str) -> None:
        self.writer = writer
        self.contacts = contacts
        self.key_property = key_property

    def write(self, items: Sequence[Upsert]) -> list[WriteResult]:
        """One result per item, in order."""
        refused: dict[str, WriteResult] = {}
        groups: Groups = {}
        for item in items:
            if item.contact is None:
                continue
            contact_key = self.contacts.norm(item.contact.get(self.contacts.contact_key) or "")
            if contact_key:
                groups.setdefault(contact_key, []).append(item)
            else:
                reason = (
                    f"the account's contact has no {self.contacts.contact_key}, its key in HubSpot"
                )
                refused[item.key] = WriteResult(item.key, Outcome.REJECTED, reason=reason)
        company_ids = {i.key: i.crm_id for i in items if i.crm_id}
        written = self.contacts.write(groups, company_ids)
        crashpoints.reach("hubspot.contacts_written")
        contact_of = {i.key: written.contacts[k] for k, group in groups.items() for i in group}
        companies, inline = self._companies(items, contact_of)
        crashpoints.reach("hubspot.companies_written")
        linked = written.linked | inline
        pairs = {
            item.key: (contact.id or "", companies[item.key].id or "")
            for item in items
            if item.key not in linked
            and (contact := contact_of.get(item.key)) is not None
            and contact.outcome is Outcome.DONE
            and companies[item.key].outcome is Outcome.DONE
        }
        links = self.writer.associate(list(pairs.values())) if pairs else {}
        results = []
        for item in items:
            company = companies[item.key]
            contact = contact_of.get(item.key)
            if company.outcome is not Outcome.DONE:
                result = company.result(item.key)
            elif item.key in refused:
                result = replace(refused[item.key], crm_id=company.id)
            elif contact is None:
                result = company.result(item.key)
            elif contact.outcome is not Outcome.DONE:
                result = replace(contact.result(item.key), crm_id=company.id)
            else:
                link = links[pairs[item.key]] if item.key in pairs else Written(Outcome.DONE)
                result = replace(link.result(item.key), crm_id=company.id, contact_id=contact.id)
            results.append(result)
        return results

    def _companies(
        self, items: Sequence[Upsert], contact_of: dict[str, Written]
    ) -> tuple[dict[str, Written], set[str]]:
        """Each account's company, and the accounts linked inline by their company's create."""
        companies = {
            i.key: Written(Outcome.DONE, id=i.crm_id)
            for i in items
            if i.crm_id and set(i.fields) <= {self.key_property}
        }
        new = [i for i in items if not i.crm_id]
        inline: set[str] = set()
        if new:
            contact_ids = {i.key: _done_id(contact_of.get(i.key)) for i in new}
            entries = [
                (i.key, to_properties(i.fields), [c] if (c := contact_ids[i.key]) else [])
                for i in new
            ]
            created = self.writer.create(
                "companies", self.key_property, entries, COMPANY_TO_CONTACT
            )
            companies.update(created)
            inline = {
                key
                for key, one in created.items()
                if contact_ids[key] and one.outcome is Outcome.DONE and not one.conflict
            }
            clashes = [
                (i.key, i.key, e[1])
                for i, e in zip(new, entries, strict=True)
                if created[i.key].conflict
            ]
            if clashes:
                # Created meanwhile, or the caller did not read: upsert by key; linked in step 3.
                companies.update(self.writer.upsert("companies", self.key_property, clashes))
        changed = [
            (i.key, i.key, to_properties(i.fields))
            for i in items
            if i.crm_id and i.key not in companies
        ]
        if changed:
            companies.update(self.writer.upsert("companies", self.key_property, changed))
        return companies, inline


def _done_id(written: Written | None) -> str | None:
    """The record id of a write that succeeded, else None."""
    if written is None or written.outcome is not Outcome.DONE:
        return None
    return written.id
