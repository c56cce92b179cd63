"""Writing the accounts' contacts to HubSpot, in as few calls as what the read found allows.

- A contact the read found linked to its company (`Upsert.contact_id`) is upserted by its key
  (email), with no association call: the link is there already.
- Any other contact is created with its association inline (`batch/create` takes `associations`;
  `batch/upsert` does not), so a new account costs one call for its contact, not an upsert and
  an association call. Crash safety holds: a contact created before a crash comes back from the
  next read linked to its company, and is then upserted, never created twice.
- A contact this adapter has written or seen already (a contact key shared by accounts of
  different batches: one person running several accounts) is upserted and linked with the v4
  default association rather than created: creating it would be refused. This memory is only a
  guess of which call to make, never a reason to skip one: an upsert and a link are right whether
  the contact still exists or not.
- HubSpot refuses a whole create batch with 409 when one email exists already (a contact made by
  hand, or by another process) and names only the first (hubspot-api-python #51). The emails of
  that batch are then read back (`batch/read` by email: consistent, unlike search), the ones that
  exist are upserted and linked, and the rest is created again. A second 409 (a contact created
  meanwhile) sends the rest to upsert and link too.

Accounts sharing one contact key share one HubSpot contact (the last fields win), linked to each
of their companies.
"""

from __future__ import annotations

from dataclasses import replace

from syncd.crm.hubspot_reads import Reader
from syncd.crm.hubspot_records import Written, to_properties
from syncd.crm.hubspot_writes import BatchWriter
from syncd.crm.port import CrmError, Outcome, Upsert, WriteResult

Groups = dict[str, list[Upsert]]
"""Normalised contact key -> the accounts (already written) whose contact it is."""
REMEMBERED = 500_000
"""Contact keys remembered as existing, at most (then the memory starts afresh)."""


class ContactWriter:
    """Creates or upserts the contacts of accounts whose companies are written."""

    def __init__(self, writer: BatchWriter, reader: Reader, contact_key: str) -> None:
        self.writer = writer
        self.reader = reader
        self.contact_key = contact_key
        self._existing_keys: set[str] = set()

    def write(self, groups: Groups, companies: dict[str, Written]) -> dict[str, WriteResult]:
        """One result per account of `groups`; `companies` holds each account's company."""
        linked = {
            k: g
            for k, g in groups.items()
            if k in self._existing_keys or any(i.contact_id for i in g)
        }
        new = {k: g for k, g in groups.items() if k not in linked}
        results: dict[str, WriteResult] = {}
        if new:
            created = self._create(new, companies)
            clashes = [k for k, w in created.items() if w.conflict]
            if clashes:
                existing = self._existing(clashes)
                linked.update({k: new[k] for k in clashes if k in existing})
                again = self._create({k: new[k] for k in clashes if k not in existing}, companies)
                linked.update({k: new[k] for k, w in again.items() if w.conflict})
                created.update(again)
            for contact_key, written in created.items():
                if not written.conflict:
                    results.update(self._settled(new[contact_key], written, companies))
                    self._remember(contact_key, written)
        if linked:
            results.update(self._upsert_and_link(linked, companies))
        return results

    def _remember(self, contact_key: str, written: Written) -> None:
        if written.outcome is Outcome.DONE:
            if len(self._existing_keys) >= REMEMBERED:
                self._existing_keys.clear()
            self._existing_keys.add(contact_key)

    def _create(self, groups: Groups, companies: dict[str, Written]) -> dict[str, Written]:
        if not groups:
            return {}
        entries = [
            (key, to_properties(group[-1].contact), [companies[i.key].id or "" for i in group])
            for key, group in groups.items()
        ]
        return self.writer.create("contacts", self.contact_key, entries)

    def _existing(self, keys: list[str]) -> set[str]:
        """Which of these contact keys HubSpot holds. When the read fails, all of them: an
        upsert and a link are right for contacts that exist and for those that do not."""
        try:
            found = self.reader.batch_read("contacts", keys, self.contact_key)
        except CrmError as exc:
            if exc.fatal:
                raise
            return set(keys)
        return {self._norm(str(f.properties.get(self.contact_key) or "")) for f in found}

    def _norm(self, value: str) -> str:
        value = value.strip()
        return value.lower() if self.contact_key == "email" else value

    def _settled(
        self, group: list[Upsert], written: Written, companies: dict[str, Written]
    ) -> dict[str, WriteResult]:
        out = {}
        for item in group:
            company_id = companies[item.key].id
            result = replace(written.result(item.key), crm_id=company_id)
            if written.outcome is Outcome.DONE:
                result = replace(result, contact_id=written.id)
            out[item.key] = result
        return out

    def _upsert_and_link(
        self, groups: Groups, companies: dict[str, Written]
    ) -> dict[str, WriteResult]:
        entries = [(k, k, to_properties(group[-1].contact)) for k, group in groups.items()]
        contacts = self.writer.upsert("contacts", self.contact_key, entries)
        results: dict[str, WriteResult] = {}
        pairs: dict[str, tuple[str, str]] = {}
        for contact_key, group in groups.items():
            contact = contacts[contact_key]
            self._remember(contact_key, contact)
            for item in group:
                company_id = companies[item.key].id or ""
                if contact.outcome is not Outcome.DONE:
                    results[item.key] = replace(contact.result(item.key), crm_id=company_id)
                elif item.contact_id is not None and item.contact_id == contact.id:
                    # The read found this very contact linked to the company: nothing to link.
                    results[item.key] = WriteResult(
                        item.key, Outcome.DONE, company_id, contact_id=contact.id
                    )
                else:
                    pairs[item.key] = (contact.id or "", company_id)
        links = self.writer.associate(list(pairs.values())) if pairs else {}
        for key, pair in pairs.items():
            link = links[pair].result(key)
            results[key] = replace(link, crm_id=pair[1], contact_id=pair[0])
        return results
