"""The Salesforce adapter: Accounts and their Contacts, keyed by the TA id, over the REST API.

- `upsert` (`salesforce_writes`): sObject Collections upsert (≤200 records a call, results in
  request order) of the Accounts by `Connect_Account_Id__c`, then of their Contacts by the same
  external id, each Contact naming its Account by external id. So 2 write calls per 200
  accounts, and a retry never creates a duplicate.
- `read`: one SOQL per chunk of keys (chunked to keep URLs short: 200 TA ids fit in one), the
  Accounts `WHERE Connect_Account_Id__c IN (…)` with their Contacts in a parent-to-child
  relationship subquery, `(SELECT … FROM Contacts WHERE Connect_Account_Id__c != null)`: one
  call per batch instead of an Account query and a Contact query. The account's contact is the
  child carrying the account's TA id. A Contact re-parented away by a user is then not found,
  and the next write puts it back under its Account (upsert by external id, never a new one).
- `changed_since`: SOQL on `SystemModstamp >= …` (indexed, bumped by every write, ours too: the
  getUpdated API and Heroku Connect key on it), following `nextRecordsUrl`.

Custom fields are created by an admin in Salesforce (Setup > Object Manager), so `setup` checks
that they exist with the right flags and says what is missing rather than creating anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx

from syncd.crm.port import CrmError, CrmRecord, Upsert, WriteResult
from syncd.crm.salesforce_http import ApiUsage, RefreshFlow, SalesforceHttp, json_object
from syncd.crm.salesforce_soql import (
    chunk_for_url,
    datetime_literal,
    encoded_length,
    field_list,
    identifier,
    in_list,
    parse_datetime,
)
from syncd.crm.salesforce_writes import BATCH_SIZE, EXTERNAL_ID, CollectionsWriter
from syncd.crm.values import storable
from syncd.retry import RetryPolicy

TAX_ID = "Connect_Tax_Id__c"
ACCOUNT_FIELDS = (
    "Name",
    "BillingStreet",
    "BillingCity",
    "BillingState",
    "BillingPostalCode",
    "BillingCountry",
    "Phone",
    TAX_ID,
)
CONTACT_FIELDS = ("FirstName", "LastName", "Email", "Phone", "AccountId")


class SalesforceAdapter:
    """`CrmPort` for Salesforce. Build it once; `close()` it (or use `with`) at the end."""

    name = "salesforce"
    batch_size = BATCH_SIZE

    def __init__(
        self,
        instance_url: str,
        token: str,
        *,
        api_version: str = "62.0",
        account_fields: Sequence[str] = ACCOUNT_FIELDS,
        contact_fields: Sequence[str] = CONTACT_FIELDS,
        refresh_token: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_url: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | httpx.Timeout = 30.0,
        transport: httpx.BaseTransport | None = None,
        max_url_length: int = 8000,
    ) -> None:
        if not re.fullmatch(r"\d+\.\d+", api_version):
            raise ValueError(f"not a Salesforce API version: {api_version!r} (e.g. 62.0)")
        refresh = None
        if refresh_token:
            if not client_id:
                raise ValueError("a Salesforce refresh_token needs a client_id")
            refresh = RefreshFlow(
                token_url or instance_url.rstrip("/") + "/services/oauth2/token",
                client_id,
                client_secret,
                refresh_token,
            )
        if not isinstance(timeout, httpx.Timeout):
            timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        self.account_fields = tuple(identifier(f) for f in account_fields if f != EXTERNAL_ID)
        self.contact_fields = tuple(identifier(f) for f in contact_fields if f != EXTERNAL_ID)
        self.max_url_length = max_url_length
        self._http = SalesforceHttp(
            instance_url,
            token,
            api_version=api_version,
            refresh=refresh,
            retry=retry or RetryPolicy(),
            timeout=timeout,
            transport=transport,
        )
        self._writer = CollectionsWriter(self._http)

    def __repr__(self) -> str:
        return f"SalesforceAdapter(instance_url={self._http.base_url!r})"

    def __enter__(self) -> SalesforceAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def quota(self) -> ApiUsage | None:
        """The last `Sforce-Limit-Info` seen: the org's rolling 24 h usage."""
        return self._http.quota

    @property
    def stats(self) -> dict[str, int]:
        """Requests made, by `"<kind> <status>"` (kinds: query, upsert, describe, token)."""
        return dict(self._http.stats)

    @property
    def httpx_client(self) -> httpx.Client:
        """The underlying client, for instrumentation (metrics hooks)."""
        return self._http.client

    # -- metadata ----------------------------------------------------------------------------

    def _describe(self, sobject: str) -> dict[str, dict[str, Any]]:
        path = self._http.api_path(f"/sobjects/{sobject}/describe")
        body = json_object(self._http.send("describe", "GET", path), f"describe of {sobject}")
        fields = body.get("fields")
        if not isinstance(fields, list):
            raise CrmError(f"Salesforce describe of {sobject}: `fields` is not a list")
        return {f["name"]: f for f in fields if isinstance(f, dict) and "name" in f}

    def properties(self) -> set[str]:
        """Names of the Account fields."""
        return set(self._describe("Account"))

    def contact_properties(self) -> set[str]:
        """Names of the Contact fields."""
        return set(self._describe("Contact"))

    def check_setup(self) -> list[str]:
        """What the org lacks for syncd: missing or mis-flagged external ids, mapped fields."""
        problems = []
        wanted = {"Account": (*self.account_fields, TAX_ID), "Contact": self.contact_fields}
        for sobject, mapped in wanted.items():
            fields = self._describe(sobject)
            ext = fields.get(EXTERNAL_ID)
            if ext is None:
                problems.append(
                    f"{sobject}.{EXTERNAL_ID} is missing: create a Text(255) field "
                    "marked External ID and Unique"
                )
            else:
                for flag, label in (("externalId", "External ID"), ("unique", "Unique")):
                    if not ext.get(flag):
                        problems.append(f"{sobject}.{EXTERNAL_ID} is not marked {label}")
            for name in dict.fromkeys(mapped):
                if name not in fields:
                    problems.append(f"{sobject}.{name} is missing (it is in the mapping)")
        return problems

    def setup(self) -> list[str]:
        """Check the org (nothing is created: custom fields are an admin's job in Salesforce);
        CrmError(fatal) listing everything missing, else what was checked."""
        problems = self.check_setup()
        if problems:
            raise CrmError(
                "The Salesforce org is not ready for syncd; an admin must fix, in Setup > "
                "Object Manager: " + "; ".join(problems),
                fatal=True,
            )
        return [
            f"Account.{EXTERNAL_ID}: external id, unique: present",
            f"Contact.{EXTERNAL_ID}: external id, unique: present",
            f"Account.{TAX_ID} and every mapped field: present",
        ]

    # -- reads -------------------------------------------------------------------------------

    def _pages(self, soql: str) -> Iterator[list[dict[str, Any]]]:
        response = self._http.send(
            "query", "GET", self._http.api_path("/query"), params={"q": soql}
        )
        body = json_object(response, "query")
        yield _records(body)
        while not body.get("done", True) and body.get("nextRecordsUrl"):
            response = self._http.send("query", "GET", str(body["nextRecordsUrl"]))
            body = json_object(response, "query")
            yield _records(body)

    def _fields(self, sobject: str) -> str:
        fields = self.account_fields if sobject == "Account" else self.contact_fields
        return field_list(["Id", EXTERNAL_ID, "SystemModstamp", *fields])

    def _select(self, sobject: str) -> str:
        return f"SELECT {self._fields(sobject)} FROM {sobject}"

    def _by_keys(
        self, sobject: str, keys: Sequence[str], select: str | None = None
    ) -> dict[str, dict[str, Any]]:
        """Rows of `sobject` whose external id is in `keys`, in URL-sized chunks."""
        head = f"{select or self._select(sobject)} WHERE {EXTERNAL_ID} IN "
        fixed = len(self._http.base_url) + len(self._http.api_path("/query?q=")) + 10
        fixed += encoded_length(head + "()")
        rows: dict[str, dict[str, Any]] = {}
        for chunk in chunk_for_url(list(dict.fromkeys(keys)), fixed, self.max_url_length):
            for page in self._pages(head + in_list(chunk)):
                rows.update((row[EXTERNAL_ID], row) for row in page if row.get(EXTERNAL_ID))
        return rows

    def read(
        self, keys: Sequence[str], skip_contacts: Mapping[str, str] | None = None
    ) -> dict[str, CrmRecord]:
        """The Accounts (with their Contacts) whose `Connect_Account_Id__c` is in `keys`.

        The Contacts come in the same query, so `skip_contacts` saves nothing and is ignored."""
        if not keys:
            return {}
        contacts = f"SELECT {self._fields('Contact')} FROM Contacts WHERE {EXTERNAL_ID} != null"
        select = f"SELECT {self._fields('Account')}, ({contacts}) FROM Account"
        accounts = self._by_keys("Account", keys, select)
        return {
            key: self._record(row, _own_contact(row.get("Contacts"), key))
            for key, row in accounts.items()
        }

    def changed_since(self, since: datetime) -> Iterator[CrmRecord]:
        """Accounts whose Account or Contact `SystemModstamp` is at or after `since`.

        Our own writes come back too (they bump `SystemModstamp`): telling them apart is the
        diff's job, by comparing with what was last written.
        """
        where = f"WHERE SystemModstamp >= {datetime_literal(since)} AND {EXTERNAL_ID} != null"
        order = "ORDER BY SystemModstamp, Id"
        seen: set[str] = set()
        for page in self._pages(f"{self._select('Account')} {where} {order}"):
            keys = [row[EXTERNAL_ID] for row in page]
            contacts = self._by_keys("Contact", keys) if keys else {}
            for row in page:
                seen.add(row[EXTERNAL_ID])
                yield self._record(row, contacts.get(row[EXTERNAL_ID]))
        # Contacts edited on their own: their Accounts did not show up above.
        for page in self._pages(f"{self._select('Contact')} {where} {order}"):
            rows = {row[EXTERNAL_ID]: row for row in page if row[EXTERNAL_ID] not in seen}
            accounts = self._by_keys("Account", list(rows)) if rows else {}
            for key, contact in rows.items():
                if key in accounts:
                    seen.add(key)
                    yield self._record(accounts[key], contact)

    def _record(self, account: dict[str, Any], contact: dict[str, Any] | None) -> CrmRecord:
        stamps = [parse_datetime(r["SystemModstamp"]) for r in (account, contact) if r]
        return CrmRecord(
            key=account[EXTERNAL_ID],
            crm_id=account["Id"],
            # The external id is held too, as the other adapters do: a diff over the mapping
            # then sees it as unchanged rather than missing.
            fields={
                EXTERNAL_ID: account[EXTERNAL_ID],
                **{name: _text(account.get(name)) for name in self.account_fields},
            },
            contact_id=contact["Id"] if contact else None,
            contact={
                EXTERNAL_ID: contact.get(EXTERNAL_ID),
                **{n: _text(contact.get(n)) for n in self.contact_fields},
            }
            if contact
            else {},
            modified_at=max(stamps) if stamps else None,
        )

    # -- writes ------------------------------------------------------------------------------

    def upsert(self, items: Sequence[Upsert]) -> list[WriteResult]:
        """Create or update by TA id, 200 per call; one result per item, in order."""
        return self._writer.upsert(items)


def _records(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The `records` of a query answer; a CrmError when they are not a list of objects (an
    unreadable answer must not be taken for "no such record")."""
    rows = body.get("records", [])
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise CrmError("Salesforce query: malformed answer: `records` is not a list of objects")
    return rows


def _own_contact(children: Any, key: str) -> dict[str, Any] | None:
    """The account's contact among the children of a subquery result: the one with its key."""
    if not isinstance(children, dict):
        return None  # Salesforce answers null when an Account has no such child
    rows = [r for r in children.get("records") or [] if isinstance(r, dict)]
    return next((r for r in rows if r.get(EXTERNAL_ID) == key), None)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return storable(str(value))
