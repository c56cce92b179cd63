"""The Salesforce adapter: Accounts and their Contacts, keyed by the TA id, over the REST API.

- `upsert`: sObject Collections upsert (≤200 records a call, results in request order) of the
  Accounts by `Connect_Account_Id__c`, then of their Contacts by the same external id, each
  Contact naming its Account by external id. So 2 write calls per 200 accounts, and a retry
  never creates a duplicate.
- `read`: SOQL `WHERE Connect_Account_Id__c IN (…)`, chunked to keep URLs short.
- `changed_since`: SOQL on `SystemModstamp >= …` (indexed, bumped by every write, ours too: the
  getUpdated API and Heroku Connect key on it), following `nextRecordsUrl`.

Custom fields are created by an admin in Salesforce (Setup > Object Manager), so `setup` checks
that they exist with the right flags and says what is missing rather than creating anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import httpx

from syncd.crm.port import CrmError, CrmRecord, Outcome, Upsert, WriteResult
from syncd.crm.salesforce_http import ApiUsage, RefreshFlow, ResponseLost, SalesforceHttp
from syncd.crm.salesforce_soql import (
    chunk_for_url,
    datetime_literal,
    encoded_length,
    field_list,
    identifier,
    in_list,
    parse_datetime,
)
from syncd.retry import RetryPolicy

EXTERNAL_ID = "Connect_Account_Id__c"
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
BATCH_SIZE = 200
# Per-record codes worth another try later; every other code is a permanent rejection.
RETRYABLE_CODES = frozenset(
    {
        "UNABLE_TO_LOCK_ROW",  # record-lock contention (Census advises smaller batches)
        "SERVER_UNAVAILABLE",
        "REQUEST_LIMIT_EXCEEDED",
        "UNKNOWN_EXCEPTION",
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    }
)


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

    # -- metadata ----------------------------------------------------------------------------

    def _describe(self, sobject: str) -> dict[str, dict[str, Any]]:
        path = self._http.api_path(f"/sobjects/{sobject}/describe")
        body = self._http.send("describe", "GET", path).json()
        return {f["name"]: f for f in body.get("fields", []) if isinstance(f, dict)}

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
        body = self._http.send(
            "query", "GET", self._http.api_path("/query"), params={"q": soql}
        ).json()
        yield list(body.get("records", []))
        while not body.get("done", True) and body.get("nextRecordsUrl"):
            body = self._http.send("query", "GET", body["nextRecordsUrl"]).json()
            yield list(body.get("records", []))

    def _select(self, sobject: str) -> str:
        fields = self.account_fields if sobject == "Account" else self.contact_fields
        return f"SELECT {field_list(['Id', EXTERNAL_ID, 'SystemModstamp', *fields])} FROM {sobject}"

    def _by_keys(self, sobject: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Rows of `sobject` whose external id is in `keys`, in URL-sized chunks."""
        head = f"{self._select(sobject)} WHERE {EXTERNAL_ID} IN "
        fixed = len(self._http.base_url) + len(self._http.api_path("/query?q=")) + 10
        fixed += encoded_length(head + "()")
        rows: dict[str, dict[str, Any]] = {}
        for chunk in chunk_for_url(list(dict.fromkeys(keys)), fixed, self.max_url_length):
            for page in self._pages(head + in_list(chunk)):
                rows.update((row[EXTERNAL_ID], row) for row in page if row.get(EXTERNAL_ID))
        return rows

    def read(self, keys: Sequence[str]) -> dict[str, CrmRecord]:
        """The Accounts (with their Contacts) whose `Connect_Account_Id__c` is in `keys`."""
        if not keys:
            return {}
        accounts = self._by_keys("Account", keys)
        contacts = self._by_keys("Contact", list(accounts)) if accounts else {}
        return {key: self._record(row, contacts.get(key)) for key, row in accounts.items()}

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

    def _collections(self, sobject: str, records: list[dict[str, Any]]) -> list[Any]:
        path = self._http.api_path(f"/composite/sobjects/{sobject}/{EXTERNAL_ID}")
        body = {"allOrNone": False, "records": records}
        response = self._http.send("upsert", "PATCH", path, body=body, write=True)
        try:
            answers = response.json()
        except ValueError:
            answers = None
        if not isinstance(answers, list) or len(answers) != len(records):
            # Applied or not, we cannot tell which record got which result.
            raise ResponseLost(f"{sobject} upsert: unreadable answer")
        return answers

    def upsert(self, items: Sequence[Upsert]) -> list[WriteResult]:
        """Create or update by TA id, 200 per call; one result per item, in order."""
        results: list[WriteResult | None] = [None] * len(items)
        for batch in _batches(items):
            written = self._upsert_batch([item for _, item in batch])
            for (index, _), result in zip(batch, written, strict=True):
                results[index] = result
        return [r for r in results if r is not None]

    def _upsert_batch(self, items: Sequence[Upsert]) -> list[WriteResult]:
        records = [_account_record(item) for item in items]
        try:
            answers = self._collections("Account", records)
        except ResponseLost:
            reason = "the answer to the Account upsert was lost; read back to settle"
            return [WriteResult(item.key, Outcome.UNKNOWN, reason=reason) for item in items]
        results = [
            _result(item.key, answer, None) for item, answer in zip(items, answers, strict=True)
        ]
        todo = [
            i
            for i, (item, r) in enumerate(zip(items, results, strict=True))
            if item.contact is not None and r.outcome is Outcome.DONE
        ]
        if not todo:
            return results
        contacts = [_contact_record(items[i]) for i in todo]
        try:
            contact_answers: list[Any] = self._collections("Contact", contacts)
        except ResponseLost:
            reason = "the answer to the Contact upsert was lost; read back to settle"
            for i in todo:
                results[i] = WriteResult(
                    items[i].key, Outcome.UNKNOWN, results[i].crm_id, reason=reason
                )
            return results
        except CrmError as exc:
            if exc.fatal:
                raise
            # The Accounts are written; their Contacts wait for the next cycle.
            for i in todo:
                results[i] = WriteResult(
                    items[i].key, Outcome.RETRY, results[i].crm_id, reason=f"Contact: {exc}"
                )
            return results
        for i, answer in zip(todo, contact_answers, strict=True):
            results[i] = _result(items[i].key, answer, results[i].crm_id)
        return results


def _batches(items: Sequence[Upsert]) -> Iterator[list[tuple[int, Upsert]]]:
    """Items with their positions, ≤200 a batch and each key at most once in a batch:
    Salesforce refuses both copies of a key repeated in one call (DUPLICATE_EXTERNAL_ID),
    while in separate calls the later one simply wins."""
    batch: list[tuple[int, Upsert]] = []
    keys: set[str] = set()
    for index, item in enumerate(items):
        if len(batch) == BATCH_SIZE or item.key in keys:
            yield batch
            batch, keys = [], set()
        batch.append((index, item))
        keys.add(item.key)
    if batch:
        yield batch


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _account_record(item: Upsert) -> dict[str, Any]:
    fields = {k: v for k, v in item.fields.items() if k != EXTERNAL_ID}
    return {"attributes": {"type": "Account"}, **fields, EXTERNAL_ID: item.key}


def _contact_record(item: Upsert) -> dict[str, Any]:
    contact = item.contact or {}
    fields = {k: v for k, v in contact.items() if k not in {EXTERNAL_ID, "AccountId"}}
    return {
        "attributes": {"type": "Contact"},
        **fields,
        EXTERNAL_ID: item.key,
        # The parent by external id: no Account Id lookup needed, and no race with its creation.
        "Account": {EXTERNAL_ID: item.key},
    }


def _result(key: str, answer: Any, account_id: str | None) -> WriteResult:
    """One Collections result as a WriteResult. `account_id` is set when `answer` is the
    Contact's (the Account was written already)."""
    prefix = "" if account_id is None else "Contact: "
    if not isinstance(answer, dict):
        return WriteResult(key, Outcome.UNKNOWN, account_id, reason=f"{prefix}no result")
    if answer.get("success"):
        if account_id is None:
            return WriteResult(key, Outcome.DONE, answer.get("id"))
        return WriteResult(key, Outcome.DONE, account_id, contact_id=answer.get("id"))
    errors = [e for e in answer.get("errors") or [] if isinstance(e, dict)]
    codes = {str(e.get("statusCode", "")) for e in errors}
    reason = prefix + "; ".join(
        f"{e.get('statusCode', 'ERROR')}: {e.get('message', '')}" for e in errors
    )
    outcome = Outcome.RETRY if codes & RETRYABLE_CODES else Outcome.REJECTED
    return WriteResult(key, outcome, account_id, reason=reason or f"{prefix}rejected")
