"""Batch writes to HubSpot with an outcome per input: done, retry, rejected or unknown.

Every write call reaches the crash point `hubspot.after_write` once its answer is in (or lost), so
tests can stop syncd between any two writes and check that a rerun converges.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from syncd import crashpoints
from syncd.crm.hubspot_http import (
    HubSpotHttp,
    LostResponse,
    RetriesExhausted,
    json_body,
    json_object,
)
from syncd.crm.hubspot_records import Written, error_targets, is_retryable, reason_of
from syncd.crm.port import CrmError, Outcome

BATCH = 100
"""Inputs per batch call (HubSpot's limit)."""
LOST = "the answer was lost after sending; read back before writing again"
Entry = tuple[str, str, dict[str, str]]
"""(objectWriteTraceId, id, properties) of one upsert input."""


NewEntry = tuple[str, dict[str, str], list[str]]
"""(objectWriteTraceId, properties, ids of the records to associate) of one create input."""
CONTACT_TO_COMPANY = 279
"""HubSpot-defined association type contact → company (unlabeled: the one the v4 "default"
association creates; HubSpot makes the first company of a contact its primary one as well)."""
COMPANY_TO_CONTACT = 280
"""The same association seen from the company (HubSpot's association type id table)."""
CONFLICT = "a record with this unique value exists already"
ASSOCIATE = "/crm/v4/associations/contacts/companies/batch/associate/default"
ANSWERED = frozenset({200, 207})
"""Statuses of a batch write whose body says what became of each input: 200, the only success
the v3 objects spec documents, and 207 Multi-Status, a partial success (HubSpot's error-handling
guide)."""
CREATED = ANSWERED | {201}
"""The same for `batch/create`, which the live API answers with 201 Created, unlike its spec."""


class BatchWriter:
    """Creates, upserts and associations. A lost answer makes the batch UNKNOWN (never re-sent
    blindly); retries exhausted make it RETRY; a batch refused whole (400/409) is halved until
    the faulty input stands alone and is REJECTED with HubSpot's reason, except a create refused
    with 409, whose inputs come back marked `conflict` for the caller to upsert instead."""

    def __init__(self, http: HubSpotHttp, objects: Callable[[str], str]) -> None:
        self.http = http
        self.objects = objects

    def upsert(self, otype: str, id_property: str, entries: list[Entry]) -> dict[str, Written]:
        """Batch upsert `(trace id, id, properties)` entries; the outcome of each, by trace."""
        inputs = [
            {"idProperty": id_property, "id": ident, "properties": props}
            | {"objectWriteTraceId": trace}
            for trace, ident, props in entries
        ]
        traces = [(trace, ident) for trace, ident, _ in entries]
        return self._write(otype, "upsert", id_property, traces, inputs)

    def create(
        self, otype: str, id_property: str, entries: list[NewEntry], association: int
    ) -> dict[str, Written]:
        """Batch create `(trace id, properties, ids to associate)` entries, each associated with
        the records named in the same call (the v3 create input takes `associations`, unlike
        upsert), with the HubSpot-defined `association` type.

        HubSpot refuses the whole batch with 409 CONFLICT when one unique value (an email, a
        company's key) exists already, and names only the first (hubspot-api-python #51):
        nothing is created, and every input comes back `conflict`."""
        inputs = [
            {
                "properties": props,
                "associations": [
                    {
                        "to": {"id": other},
                        "types": [
                            {
                                "associationCategory": "HUBSPOT_DEFINED",
                                "associationTypeId": association,
                            }
                        ],
                    }
                    for other in dict.fromkeys(linked)
                ],
                "objectWriteTraceId": trace,
            }
            for trace, props, linked in entries
        ]
        traces = [(trace, props.get(id_property, "")) for trace, props, _ in entries]
        return self._write(otype, "create", id_property, traces, inputs)

    def _write(
        self,
        otype: str,
        mode: str,
        id_property: str,
        traces: list[tuple[str, str]],
        inputs: list[dict[str, Any]],
    ) -> dict[str, Written]:
        """POST one batch; `traces` are the (trace id, key value) of `inputs`, in order."""
        path = self.objects(otype) + "/batch/" + mode
        try:
            response = self.http.request("POST", path, "write", json={"inputs": inputs})
        except LostResponse:
            crashpoints.reach("hubspot.after_write")
            return {trace: Written(Outcome.UNKNOWN, reason=LOST) for trace, _ in traces}
        except RetriesExhausted as exc:
            retry = Written(Outcome.RETRY, reason=str(exc), retry_after=exc.retry_after)
            return {trace: retry for trace, _ in traces}
        crashpoints.reach("hubspot.after_write")
        status = response.status_code
        if status in (CREATED if mode == "create" else ANSWERED):
            return self._map_batch(json_body(response), traces, id_property)
        body = json_body(response)
        message = str(body.get("message"))
        if status == 400 and ("PROPERTY_DOESNT_EXIST" in message or "non-unique" in message):
            # The mapping or the account's schema is wrong: no record would ever pass.
            raise CrmError(
                f"HubSpot refused the {otype} batch: {self._reason(body)}; run "
                "`syncd crm setup` or fix the mapping",
                fatal=True,
                status=status,
            )
        if status == 409 and mode == "create":
            clash = Written(Outcome.REJECTED, reason=self._reason(body), conflict=True)
            return {trace: clash for trace, _ in traces}
        if status in (400, 409):
            if len(traces) == 1:
                return {traces[0][0]: Written(Outcome.REJECTED, reason=self._reason(body))}
            # One bad record refuses the whole batch: halve until it stands alone.
            half = len(traces) // 2
            return {
                **self._write(otype, mode, id_property, traces[:half], inputs[:half]),
                **self._write(otype, mode, id_property, traces[half:], inputs[half:]),
            }
        raise CrmError(f"HubSpot POST {path}: HTTP {status}", status=status)

    def _map_batch(
        self, data: dict[str, Any], traces: list[tuple[str, str]], id_property: str
    ) -> dict[str, Written]:
        norm = str.lower if id_property == "email" else str
        trace_of = {norm(ident): trace for trace, ident in traces}
        ours = set(trace_of.values())
        out: dict[str, Written] = {}
        rows, errors, malformed = _entries(data, self.http.redact)
        for row in rows:
            trace = row.get("objectWriteTraceId")
            if not isinstance(trace, str) or trace not in ours:
                props = row.get("properties")
                ident = props.get(id_property) if isinstance(props, dict) else None
                trace = trace_of.get(norm(str(ident))) if ident is not None else None
            if trace is not None and row.get("id") is not None:
                out[trace] = Written(Outcome.DONE, id=str(row["id"]))
        for err in errors:
            outcome = Outcome.RETRY if is_retryable(err) else Outcome.REJECTED
            for trace in error_targets(err, trace_of, norm):
                out.setdefault(trace, Written(outcome, reason=self._reason(err)))
        # Upserts are keyed, so the next cycle's read settles a record this answer leaves out.
        missing = Written(
            Outcome.RETRY,
            reason="HubSpot returned no result for this record" + _malformed(malformed),
        )
        return {trace: out.get(trace, missing) for trace, _ in traces}

    def _reason(self, error: Mapping[str, Any]) -> str:
        """HubSpot's reason for a refusal, without the token: it becomes a record's rejection or
        retry reason, stored in `crm_links` and the ledger, and an answer may echo the token."""
        return self.http.redact(reason_of(error))

    def associate(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], Written]:
        """Link contacts to companies with HubSpot's default association (idempotent)."""
        unique = list(dict.fromkeys(pairs))
        out: dict[tuple[str, str], Written] = {}
        for start in range(0, len(unique), BATCH):
            out.update(self._associate(unique[start : start + BATCH]))
        return out

    def _associate(self, chunk: list[tuple[str, str]]) -> dict[tuple[str, str], Written]:
        """One v4 batch of (contact id, company id) pairs. An answer of another status or shape
        than the spec's (200/201/207, an object whose `results` and `errors` are lists) leaves
        the pairs it does not confirm to RETRY with the reason: the association is idempotent,
        and the next cycle reads the account back and links it again."""
        inputs = [{"from": {"id": c}, "to": {"id": co}} for c, co in chunk]
        try:
            response = self.http.request("POST", ASSOCIATE, "write", json={"inputs": inputs})
        except LostResponse:
            crashpoints.reach("hubspot.after_write")
            return {p: Written(Outcome.UNKNOWN, reason=LOST) for p in chunk}
        except RetriesExhausted as exc:
            retry = Written(Outcome.RETRY, reason=str(exc), retry_after=exc.retry_after)
            return {p: retry for p in chunk}
        crashpoints.reach("hubspot.after_write")
        crashpoints.reach("hubspot.associations_written")
        what = f"HubSpot POST {ASSOCIATE}"
        status = response.status_code
        if status not in (200, 201, 207):
            reason = f"{what}: HTTP {status}: {self._reason(json_body(response))}"
            return {p: Written(Outcome.RETRY, reason=reason) for p in chunk}
        try:
            data = json_object(response, what, self.http.redact)
        except CrmError as exc:
            return {p: Written(Outcome.RETRY, reason=str(exc)) for p in chunk}
        rows, errors, malformed = _entries(data, self.http.redact)
        out: dict[tuple[str, str], Written] = {}
        odd = 0
        for row in rows:
            pair = _linked_pair(row)
            if pair is None:
                odd += 1
            else:
                out[pair] = Written(Outcome.DONE)
        for err in errors:
            context = err.get("context")
            ids = context.get("ids") if isinstance(context, dict) else None
            named = {str(i) for i in ids} if isinstance(ids, list) else set()
            for pair in chunk:
                if set(pair) <= named:
                    out.setdefault(pair, Written(Outcome.RETRY, reason=self._reason(err)))
        if odd:
            malformed.append(f"{odd} `results` entries without `from.id` and `to.id`")
        reason = "HubSpot did not confirm the association" + _malformed(malformed)
        missing = Written(Outcome.RETRY, reason=reason)
        return {p: out.get(p, missing) for p in chunk}


def _linked_pair(row: Mapping[str, Any]) -> tuple[str, str] | None:
    """(contact id, company id) of one v4 association result, or None when it names no pair."""
    ends = [row.get("from"), row.get("to")]
    ids = [end.get("id") if isinstance(end, dict) else None for end in ends]
    if not all(isinstance(i, str | int) and not isinstance(i, bool) for i in ids):
        return None
    return str(ids[0]), str(ids[1])


def _entries(
    data: Mapping[str, Any], redact: Callable[[str], str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """The `results` and `errors` objects of a batch write answer, and what was malformed in it:
    an entry that is not an object, or a field that is not a list, is left out rather than
    failing the run, so the records it was about get no result. A value quoted goes through
    `redact` before it is cut, as it ends up in the records' reason."""
    kept: list[list[dict[str, Any]]] = []
    odd: list[str] = []
    for name in ("results", "errors"):
        value = data.get(name) or []
        if not isinstance(value, list):
            odd.append(f"`{name}` is not a list: {redact(str(value))[:200]!r}")
            value = []
        entries = [entry for entry in value if isinstance(entry, dict)]
        if len(entries) < len(value):
            odd.append(f"`{name}` holds {len(value) - len(entries)} entries that are not objects")
        kept.append(entries)
    return kept[0], kept[1], odd


def _malformed(odd: list[str]) -> str:
    """The end of a reason naming what was malformed in the answer ("" when nothing was)."""
    return f" (malformed answer: {'; '.join(odd)})" if odd else ""
