"""Reading accounts out of HubSpot: companies, their associated contact, as `CrmRecord`s.

Batch reads take 100 ids (HubSpot's limit, also for v4 association reads since January 2024:
airbyte #48834). A key that matches nothing comes back as a 207 `OBJECT_NOT_FOUND` error entry,
which simply means "not there". A company with several contacts is represented by the most recently
modified one: when an account's email changes, syncd upserts the new contact and links it, and
that write makes it the newest.

Every part of an answer used here is checked for its shape first (`hubspot_answers`): an answer
that cannot be read fails the read with a non-fatal `CrmError` naming the place and quoting the
body, so that the push leaves that batch to retry; it never reads as "no record".
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from syncd.crm import hubspot_answers as answers
from syncd.crm.hubspot_answers import Answer, Mismatch
from syncd.crm.hubspot_http import HubSpotHttp
from syncd.crm.hubspot_records import pick_contact
from syncd.crm.hubspot_scan import PAGE, to_ms
from syncd.crm.port import CrmError, CrmRecord
from syncd.crm.values import storable

BATCH = 100
COMPANY_MODIFIED = "hs_lastmodifieddate"
CONTACT_MODIFIED = "lastmodifieddate"
MODIFIED = {"companies": COMPANY_MODIFIED, "contacts": CONTACT_MODIFIED}


@dataclass(frozen=True)
class Found:
    """One record as HubSpot returned it: id, requested properties, modified time (epoch ms)."""

    id: str
    properties: dict[str, str | None]
    modified_ms: int | None


class Reader:
    """Reads companies (with `company_fields`, the key property among them) and contacts."""

    def __init__(
        self,
        http: HubSpotHttp,
        objects: Callable[[str], str],
        company_fields: Sequence[str],
        contact_fields: Sequence[str],
        key_property: str,
    ) -> None:
        self.http = http
        self.objects = objects
        self.fields = {"companies": tuple(company_fields), "contacts": tuple(contact_fields)}
        self.key_property = key_property

    def _wanted(self, otype: str) -> list[str]:
        return [*self.fields[otype], MODIFIED[otype]]

    def found(self, otype: str, raw: Any) -> Found:
        """A record of a search page as `search` returned it (its shape checked there); one of
        another shape is a non-fatal CrmError all the same."""
        try:
            return self._found(otype, raw, "record")
        except Mismatch as exc:
            raise CrmError(f"HubSpot {otype} record: malformed: {exc}") from None

    def _found(self, otype: str, row: Any, where: str, key: str | None = None) -> Found:
        """`row` (at `where` in its answer) as a `Found`; `Mismatch` when it is not a record
        carrying `key` (the property it was read by)."""
        ident, props = answers.record(row, where, self._wanted(otype), key)
        return Found(ident, props, to_ms(props.get(MODIFIED[otype])))

    def post_ok(self, path: str, kind: str, body: dict[str, Any]) -> Answer:
        """POST a read; its answer, a JSON object. Any other status than 200 or 207 (a batch
        read with inputs not found) or body is a non-fatal CrmError."""
        response = self.http.request("POST", path, kind, json=body)
        what = f"HubSpot POST {path}"
        if response.status_code not in (200, 207):
            status = response.status_code
            raise CrmError(f"{what}: HTTP {status}", status=status)
        # An unreadable answer fails the call: read as {} it would say "no record exists", and
        # the push would then rewrite every field over the CRM's edits.
        return Answer.of(response, what, self.http.redact)

    def batch_read(
        self, otype: str, ids: Sequence[str], id_property: str | None = None
    ) -> list[Found]:
        """The records with these ids (or values of `id_property`) that exist."""
        out: list[Found] = []
        path = self.objects(otype) + "/batch/read"
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), BATCH):
            body: dict[str, Any] = {
                "inputs": [{"id": i} for i in unique[start : start + BATCH]],
                "properties": self._wanted(otype),
                "propertiesWithHistory": [],
            }
            if id_property:
                body["idProperty"] = id_property
            answer = self.post_ok(path, "read", body)
            out += answer.each(lambda row, where: self._found(otype, row, where, id_property))
        return out

    def search(self, otype: str, filters: list[dict[str, str]], sort: str) -> list[dict[str, Any]]:
        """The first page (200) of a search sorted ascending by `sort`: records, each with an id
        and its modified date (the scan pages by both)."""
        body = {
            "filterGroups": [{"filters": filters}],
            # The guide's object form; the v3 spec types `sorts` as strings, HubSpot takes both.
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
            "properties": self._wanted(otype),
            "limit": PAGE,
            "after": "0",
        }
        path = self.objects(otype) + "/search"
        modified = MODIFIED[otype]

        def dated(row: Any, where: str) -> dict[str, Any]:
            if self._found(otype, row, where).modified_ms is None:
                came = row["properties"].get(modified, answers.MISSING)
                raise Mismatch(f"{where}.properties.{modified}", "a date", came)
            return dict(row)

        return self.post_ok(path, "search", body).each(dated)

    def linked(self, from_type: str, to_type: str, ids: Sequence[str]) -> dict[str, list[str]]:
        """v4 associations: id -> ids of the associated records of `to_type`."""
        links: dict[str, list[str]] = {}
        path = f"/crm/v4/associations/{from_type}/{to_type}/batch/read"
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), BATCH):
            inputs = [{"id": i} for i in unique[start : start + BATCH]]
            # Records with no association come back as 207 errors (NO_ASSOCIATIONS_FOUND).
            links.update(self.post_ok(path, "read", {"inputs": inputs}).each(answers.links))
        return links

    def contacts_of(self, company_ids: Sequence[str]) -> dict[str, Found]:
        """company id -> its most recently modified contact."""
        links = self.linked("companies", "contacts", company_ids)
        ids = [i for targets in links.values() for i in targets]
        contacts = {c.id: c for c in self.batch_read("contacts", ids)}
        chosen: dict[str, Found] = {}
        for company_id, targets in links.items():
            rows = [contacts[i] for i in targets if i in contacts]
            best = pick_contact([{"id": r.id, "modified": r.modified_ms} for r in rows])
            if best is not None:
                chosen[company_id] = contacts[best]
        return chosen

    def records(
        self,
        companies: list[Found],
        with_contacts: bool = True,
        skip: Collection[str] = frozenset(),
    ) -> list[CrmRecord]:
        """`CrmRecord`s of the companies holding a key (others are not syncd's), with their
        contact unless `with_contacts` is off or the company id is in `skip`."""
        ours = [c for c in companies if c.properties.get(self.key_property)]
        wanted = [c.id for c in ours if with_contacts and c.id not in skip]
        contacts = self.contacts_of(wanted) if wanted else {}
        return [
            self._record(c, contacts.get(c.id), with_contacts and c.id not in skip) for c in ours
        ]

    def _record(self, company: Found, contact: Found | None, contact_read: bool) -> CrmRecord:
        stamps = [r.modified_ms for r in (company, contact) if r and r.modified_ms]
        return CrmRecord(
            key=str(company.properties[self.key_property]),
            crm_id=company.id,
            fields={f: storable(company.properties.get(f)) for f in self.fields["companies"]},
            contact_id=contact.id if contact else None,
            contact={f: storable(contact.properties.get(f)) for f in self.fields["contacts"]}
            if contact
            else {},
            modified_at=datetime.fromtimestamp(max(stamps) / 1000, UTC) if stamps else None,
            contact_read=contact_read,
        )
