"""Salesforce writes: sObject Collections upserts by `Connect_Account_Id__c`, 200 records a call.

The Accounts of a batch are upserted first, then their Contacts by the same external id, each
naming its Account by external id (`"Account": {"Connect_Account_Id__c": …}`): no Account Id
lookup, and no race with the Account's creation. So 2 write calls per 200 accounts, and a retry
never creates a duplicate. An Account the read found (`Upsert.crm_id`) with nothing to change but
its key is not written again: a change to the contact alone costs one call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from syncd.crm.port import CrmError, Outcome, Upsert, WriteResult
from syncd.crm.salesforce_http import ResponseLost, SalesforceHttp

EXTERNAL_ID = "Connect_Account_Id__c"
BATCH_SIZE = 200
RAW_CUT = 500
"""Characters kept of an error entry of unknown shape, as its reason."""
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


class CollectionsWriter:
    """Upserts accounts (and their contacts) through one `SalesforceHttp`."""

    def __init__(self, http: SalesforceHttp) -> None:
        self._http = http

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
        for batch in batches(items):
            written = self._upsert_batch([item for _, item in batch])
            for (index, _), result in zip(batch, written, strict=True):
                results[index] = result
        return [r for r in results if r is not None]

    def _upsert_batch(self, items: Sequence[Upsert]) -> list[WriteResult]:
        # An Account the read found, with nothing to change but its key, is not written again.
        results = [
            WriteResult(item.key, Outcome.DONE, item.crm_id)
            if item.crm_id and set(item.fields) <= {EXTERNAL_ID}
            else WriteResult(item.key, Outcome.UNKNOWN)
            for item in items
        ]
        todo = [i for i, r in enumerate(results) if r.crm_id is None]
        if todo:
            try:
                answers = self._collections("Account", [_account_record(items[i]) for i in todo])
            except ResponseLost:
                reason = "the answer to the Account upsert was lost; read back to settle"
                for i in todo:
                    results[i] = WriteResult(items[i].key, Outcome.UNKNOWN, reason=reason)
            else:
                for i, answer in zip(todo, answers, strict=True):
                    results[i] = _result(items[i].key, answer, None, self._http.redact)
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
            results[i] = _result(items[i].key, answer, results[i].crm_id, self._http.redact)
        return results


def batches(items: Sequence[Upsert]) -> Iterator[list[tuple[int, Upsert]]]:
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


def _result(
    key: str, answer: Any, account_id: str | None, redact: Callable[[str], str]
) -> WriteResult:
    """One Collections result as a WriteResult. `account_id` is set when `answer` is the
    Contact's (the Account was written already). Salesforce's messages go through `redact`:
    they become the record's reason, stored in `crm_links` and the ledger, and a message (an
    Apex trigger's, a validation rule's) may quote a token."""
    prefix = "" if account_id is None else "Contact: "
    if not isinstance(answer, dict):
        return WriteResult(key, Outcome.UNKNOWN, account_id, reason=f"{prefix}no result")
    if answer.get("success"):
        if account_id is None:
            return WriteResult(key, Outcome.DONE, answer.get("id"))
        return WriteResult(key, Outcome.DONE, account_id, contact_id=answer.get("id"))
    raw = answer.get("errors") or []
    errors: list[Any] = raw if isinstance(raw, list) else [raw]
    codes = {str(e.get("statusCode", "")) for e in errors if isinstance(e, dict)}
    reason = prefix + "; ".join(_error_text(e, redact) for e in errors)
    outcome = Outcome.RETRY if codes & RETRYABLE_CODES else Outcome.REJECTED
    return WriteResult(key, outcome, account_id, reason=reason or f"{prefix}rejected")


def _error_text(error: Any, redact: Callable[[str], str]) -> str:
    """One error entry as a reason: `CODE: message`, or the entry as received (cut) when it has
    neither, so that the reason still says what Salesforce answered. Redacted before the cut,
    so that a token straddling it leaves no piece behind."""
    if isinstance(error, dict) and (error.get("statusCode") or error.get("message")):
        return redact(f"{error.get('statusCode', 'ERROR')}: {error.get('message', '')}")
    text = redact(json.dumps(error, ensure_ascii=False, default=str))
    return "unexpected error entry: " + (text if len(text) <= RAW_CUT else text[:RAW_CUT] + "…")
