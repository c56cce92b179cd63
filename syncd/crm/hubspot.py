"""The HubSpot adapter of the CRM port: an account is a company plus its associated contact.

Writes, 100 inputs per call (the batch limit), in the order `hubspot_accounts` explains: the
contacts first (upserted by `email`, HubSpot's contact key; created with the link inline only for
a new email of an existing company: `hubspot_contacts`), then the new companies created with the
association to their contact inline and the changed ones upserted by the unique custom property
`connect_account_id` (the TA id), then v4 associations for what is still unlinked (rare). So a
batch of new accounts costs two write calls, contacts shared between accounts included, and a
batch of changed ones one or two (companies, and contacts whose fields changed).
- A lost answer (timeout, reset after sending) makes every record of that call UNKNOWN; it is not
  re-sent blindly. Upserts by a unique key are idempotent and a create of a key or email that
  exists is refused (409), so the caller's read-back and retry can never create a duplicate.
- 207 Multi-Status answers are mapped record by record through `objectWriteTraceId`: validation
  errors are REJECTED with HubSpot's message, rate limits and server errors are RETRY. A whole
  batch refused with 400/409 is split in halves until the faulty record stands alone.

Reads: companies by the key property in one `batch/read`; their contacts take two calls more (the
v4 association read, then a contacts `batch/read`: no v3 read returns a record with its
associations' properties). So `read` skips them for the accounts the caller says it does not need
them for (`skip_contacts`: Connect wants the contact syncd last wrote), and a cycle that changed
company fields alone costs one read per 100 accounts. Search could find contacts by company in one
call, but it lags writes by seconds and is limited to 5 requests a second: not for this.

`changed_since` walks HubSpot search with a sliding window (`hubspot_scan`), so neither the 10,000
result cap nor a bulk edit stamping one millisecond on many records hides anything.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from syncd.crm.hubspot_accounts import AccountWriter
from syncd.crm.hubspot_contacts import ContactWriter
from syncd.crm.hubspot_http import HubSpotHttp, RequestStats, excerpt, json_object
from syncd.crm.hubspot_reads import COMPANY_MODIFIED, CONTACT_MODIFIED, Reader
from syncd.crm.hubspot_scan import Search, scan_modified
from syncd.crm.hubspot_writes import BatchWriter
from syncd.crm.port import CrmError, CrmRecord, Upsert, WriteResult
from syncd.domain import mapping as fieldmaps
from syncd.retry import RetryPolicy

KEY_PROPERTY = "connect_account_id"
TAX_PROPERTY = "connect_tax_id"
DEFAULT_COMPANY_FIELDS: tuple[str, ...] = ("name", "address", "address2", "city", "state", "zip")
DEFAULT_COMPANY_FIELDS += ("country", "phone", KEY_PROPERTY, TAX_PROPERTY)
DEFAULT_CONTACT_FIELDS = ("email", "firstname", "lastname", "phone")


class HubSpotAdapter:
    """`CrmPort` over HubSpot's CRM API. `transport` is injectable (tests); `retry` bounds the
    retries (pass one with a recording `sleep` to make them instant). `api_version` "v3" uses
    `/crm/v3/objects/...`; a date such as "2026-03" uses `/crm/objects/2026-03/...`."""

    name = "hubspot"
    batch_size = 100

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        company_fields: Sequence[str] = DEFAULT_COMPANY_FIELDS,
        contact_fields: Sequence[str] = DEFAULT_CONTACT_FIELDS,
        key_property: str = KEY_PROPERTY,
        contact_key: str = "email",
        contacts_in_changes: bool = True,
        api_version: str = "v3",
        search_rate: float | None = 5.0,
    ) -> None:
        self._http = HubSpotHttp(
            base_url,
            token,
            transport=transport,
            timeout=timeout,
            retry=retry,
            search_rate=search_rate,
        )
        self.key_property = key_property
        self.contact_key = contact_key
        self.contacts_in_changes = contacts_in_changes
        """Fill contacts in `changed_since`, and report accounts whose contact alone changed."""
        self._version = api_version
        companies = tuple(dict.fromkeys((*company_fields, key_property)))
        contacts = tuple(dict.fromkeys((contact_key, *contact_fields)))
        self._reader = Reader(self._http, self._objects, companies, contacts, key_property)
        self._writer = BatchWriter(self._http, self._objects)
        self._accounts = AccountWriter(
            self._writer, ContactWriter(self._writer, self._reader, contact_key), key_property
        )

    @classmethod
    def for_mapping(
        cls, base_url: str, token: str, mapping: fieldmaps.Mapping, **options: Any
    ) -> HubSpotAdapter:
        """An adapter reading and writing the properties `mapping` names."""
        return cls(
            base_url,
            token,
            company_fields=[f.target for f in mapping.account],
            contact_fields=[f.target for f in mapping.contact],
            key_property=mapping.key_property,
            contact_key=mapping.contact_key_property,
            **options,
        )

    def __repr__(self) -> str:
        return f"HubSpotAdapter({self._http!r})"

    def __enter__(self) -> HubSpotAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def quota(self) -> dict[str, str]:
        """Latest `X-HubSpot-RateLimit-*` header values seen, by header name."""
        return self._http.quota

    @property
    def stats(self) -> RequestStats:
        """Requests sent, by kind (read/write/search) and status."""
        return self._http.stats

    @property
    def httpx_client(self) -> httpx.Client:
        """The underlying client, for instrumentation (metrics hooks)."""
        return self._http.client

    def _objects(self, otype: str) -> str:
        if self._version == "v3":
            return f"/crm/v3/objects/{otype}"
        return f"/crm/objects/{self._version}/{otype}"

    def _properties_path(self, otype: str) -> str:
        if self._version == "v3":
            return f"/crm/v3/properties/{otype}"
        return f"/crm/properties/{self._version}/{otype}"

    # --- schema --------------------------------------------------------------------------

    def _property_defs(self, otype: str) -> list[dict[str, Any]]:
        """The property definitions of `otype`: the spec's `{"results": [Property, ...]}`.
        Any other answer (a proxy's HTML page with status 200, `results` missing or not a list
        of objects with a `name`) is a non-fatal CrmError saying what came: read as "no
        properties", it would make `syncd check` report every mapped property missing and
        `setup` create properties that exist."""
        path = self._properties_path(otype)
        response = self._http.request("GET", path, "read")
        if response.status_code != 200:
            raise CrmError(f"HubSpot properties of {otype}: HTTP {response.status_code}")
        what = f"HubSpot properties of {otype} (GET {path})"
        data = json_object(response, what, self._http.redact)
        rows = data.get("results")
        if not isinstance(rows, list) or not all(
            isinstance(row, dict) and isinstance(row.get("name"), str) for row in rows
        ):
            came = excerpt(response, self._http.redact)
            raise CrmError(
                f"{what}: malformed answer: expected `results`, a list of property definitions "
                f"(objects with a `name`), got {came}"
            )
        return rows

    def properties(self) -> set[str]:
        """Names of the company properties of the account."""
        return {str(p.get("name")) for p in self._property_defs("companies")}

    def contact_properties(self) -> set[str]:
        """Names of the contact properties of the account."""
        return {str(p.get("name")) for p in self._property_defs("contacts")}

    def setup(self) -> list[str]:
        """Create the unique key property (`connect_account_id`) and `connect_tax_id` on
        companies when missing; say what was done. HubSpot cannot make an existing property
        unique, so a non-unique key property stops with a fatal error."""
        existing = {str(p.get("name")): p for p in self._property_defs("companies")}
        done: list[str] = []
        for name, label, unique in (
            (self.key_property, "Connect account id", True),
            (TAX_PROPERTY, "Connect tax id", False),
        ):
            if name in existing:
                if unique and not existing[name].get("hasUniqueValue"):
                    raise CrmError(
                        f"company property {name} exists but is not unique; HubSpot cannot change "
                        "that: delete it or configure another key property",
                        fatal=True,
                    )
                continue
            body = {
                "name": name,
                "label": label,
                "type": "string",
                "fieldType": "text",
                "groupName": "companyinformation",
                "hasUniqueValue": unique,
                "description": "Written by syncd (CloudBlue Connect tier account).",
            }
            path = self._properties_path("companies")
            response = self._http.request("POST", path, "write", json=body)
            if response.status_code not in (200, 201, 409):
                raise CrmError(f"creating property {name}: HTTP {response.status_code}")
            if response.status_code != 409:  # 409: created meanwhile by someone else
                done.append(f"created company property {name}" + (" (unique)" if unique else ""))
        return done

    # --- reads ---------------------------------------------------------------------------

    def read(
        self, keys: Sequence[str], skip_contacts: Mapping[str, str] | None = None
    ) -> dict[str, CrmRecord]:
        """The accounts of these TA ids that exist: companies read by the key property (100 per
        call), then the contacts of those not in `skip_contacts` with their company id through
        the v4 associations (one call) and a contacts batch read (one more)."""
        companies = self._reader.batch_read("companies", keys, self.key_property)
        skip = skip_contacts or {}
        unread = {
            c.id for c in companies if skip.get(str(c.properties.get(self.key_property))) == c.id
        }
        return {r.key: r for r in self._reader.records(companies, skip=unread)}

    def changed_since(self, since: datetime) -> Iterator[CrmRecord]:
        """Every account whose company (or, with `contacts_in_changes`, contact) was modified at
        or after `since`. Our own writes come back too: HubSpot bumps the modified date on every
        write, and telling them apart is the diff's job. Search lags writes by a few moments."""
        if since.tzinfo is None:  # a naive moment is taken as UTC, not as local time
            since = since.replace(tzinfo=UTC)
        since_ms = int(since.timestamp() * 1000)
        with_contacts = self.contacts_in_changes
        seen: set[str] = set()
        has_key = [{"propertyName": self.key_property, "operator": "HAS_PROPERTY"}]
        for page in scan_modified(self._searcher("companies"), COMPANY_MODIFIED, since_ms, has_key):
            companies = [self._reader.found("companies", raw) for raw in page]
            seen.update(c.id for c in companies)
            yield from self._reader.records(companies, with_contacts)
        if not with_contacts:
            return
        # Contacts edited on their own: their companies did not show up above.
        for page in scan_modified(self._searcher("contacts"), CONTACT_MODIFIED, since_ms):
            links = self._reader.linked("contacts", "companies", [str(r["id"]) for r in page])
            ids = [i for targets in links.values() for i in targets if i not in seen]
            companies = self._reader.batch_read("companies", ids)
            seen.update(c.id for c in companies)
            yield from self._reader.records(companies)

    def _searcher(self, otype: str) -> Search:
        return lambda filters, sort: self._reader.search(otype, filters, sort)

    # --- writes --------------------------------------------------------------------------

    def upsert(self, items: Sequence[Upsert]) -> list[WriteResult]:
        """Create or update each account (its contact, its company, their link); one result per
        item, in order. An item's `crm_id` None means "not found by a read": its company is
        created (upserted if it exists after all). A key repeated in `items` goes to a later
        batch."""
        results: list[WriteResult | None] = [None] * len(items)
        pending = list(range(len(items)))
        while pending:
            batch: list[int] = []
            keys: set[str] = set()
            later: list[int] = []
            for index in pending:
                if len(batch) < self.batch_size and items[index].key not in keys:
                    batch.append(index)
                    keys.add(items[index].key)
                else:
                    later.append(index)
            written = self._accounts.write([items[i] for i in batch])
            for index, result in zip(batch, written, strict=True):
                results[index] = result
            pending = later
        return [r for r in results if r is not None]
