"""sObject Collections upsert in the simulator: per-record results in request order.

`PATCH /composite/sobjects/{type}/{externalIdField}` with `{"allOrNone": false, "records": [...]}`:
at most 200 records of the one type named in the URL, each with an `attributes.type`. A malformed
request (too many records, unknown field, wrong type) is refused whole with 400; anything else is
answered per record with `{"id", "success", "errors", "created"}` (Salesforce REST guide,
"Upsert Records Using sObject Collections"). A lookup may name its parent by external id
(`"Account": {"Connect_Account_Id__c": "TA-1"}`), which sets `AccountId`.

`upsert_by_path` is the one-record form, `PATCH /sobjects/{type}/{externalIdField}/{value}`
("Insert or Update (Upsert) a Record Using an External ID"): 201 when it created the record, 200
when it updated it (API 46.0 and later; older versions answered 204), 300 when the value matches
several records, 400 with the error array when the record is refused.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from syncd.sim.salesforce_data import Error, Org, Row, error

MAX_RECORDS = 200
_SCALARS = (str, int, float, bool, type(None))


class RequestError(Exception):
    """The whole request is refused: answer `status` with Salesforce's error array."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


Ref = tuple[str, str, Any]
"""(target type, target external id field, value) of a lookup given by external id."""


def upsert_collection(org: Org, sobject: str, ext_field: str, body: Any) -> list[dict[str, Any]]:
    """Apply one Collections upsert; per-record results in request order."""
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise RequestError(400, "JSON_PARSER_ERROR", "Expected a body with a records array")
    records = body["records"]
    if len(records) > MAX_RECORDS:
        raise RequestError(
            400,
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {MAX_RECORDS} records into this call",
        )
    spec = org.schemas[sobject].get(ext_field)
    if spec is None or not spec.external_id:
        raise RequestError(
            400, "INVALID_FIELD", f"Field {ext_field} is not an External ID field of {sobject}"
        )
    names = _Names(org, sobject)
    parsed = [_parse(names, sobject, record) for record in records]
    seen = Counter(values.get(ext_field) for values, _ in parsed)
    undo: list[tuple[str, Row | None]] = []
    results = [_upsert_one(org, sobject, ext_field, v, r, seen, undo) for v, r in parsed]
    if body.get("allOrNone") and not all(r["success"] for r in results):
        for rid, before in reversed(undo):
            org.restore(sobject, rid, before)
        rolled_back = error(
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "Record rolled back because not all records were valid and the request was using "
            "AllOrNone header",
        )
        results = [r if not r["success"] else _failed([rolled_back]) for r in results]
    return results


class _Names:
    """An object's field names and lookups by relationship name, case-insensitively (SOQL and
    REST names are), worked out once per request."""

    def __init__(self, org: Org, sobject: str) -> None:
        schema = org.schemas[sobject]
        self.by_lower = {name.lower(): name for name in schema}
        self.relationships = {
            spec.relationship_name.lower(): spec
            for spec in schema.values()
            if spec.relationship_name and spec.reference_to
        }


def _parse(names: _Names, sobject: str, record: Any) -> tuple[dict[str, Any], dict[str, Ref]]:
    if not isinstance(record, dict):
        raise RequestError(400, "JSON_PARSER_ERROR", "Each record must be a JSON object")
    attributes = record.get("attributes")
    if not isinstance(attributes, dict) or attributes.get("type") != sobject:
        raise RequestError(
            400, "INVALID_TYPE", f"Each record needs attributes with type {sobject!r}"
        )
    by_lower, relationships = names.by_lower, names.relationships
    values: dict[str, Any] = {}
    refs: dict[str, Ref] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        if key.lower() in relationships and isinstance(value, dict):
            spec = relationships[key.lower()]
            assert spec.reference_to is not None
            pairs = [(k, v) for k, v in value.items() if k != "attributes"]
            if len(pairs) != 1:
                raise RequestError(400, "INVALID_FIELD", f"{key}: name one external id field")
            refs[spec.name] = (spec.reference_to, pairs[0][0], pairs[0][1])
            continue
        if key.lower() not in by_lower:
            raise RequestError(
                400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {sobject}"
            )
        if not isinstance(value, _SCALARS):
            raise RequestError(400, "JSON_PARSER_ERROR", f"{key}: expected a scalar value")
        values[by_lower[key.lower()]] = value
    return values, refs


def _failed(errors: list[Error]) -> dict[str, Any]:
    return {"success": False, "errors": errors}


def _upsert_one(
    org: Org,
    sobject: str,
    ext_field: str,
    values: dict[str, Any],
    refs: dict[str, Ref],
    seen: Counter[Any],
    undo: list[tuple[str, Row | None]],
) -> dict[str, Any]:
    key = values.get(ext_field)
    if key in (None, ""):
        return _failed([error("MISSING_ARGUMENT", f"{ext_field} not specified", [ext_field])])
    if seen[key] > 1:
        return _failed([error("DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {key}")])
    ids = org.find(sobject, ext_field, key)
    if len(ids) > 1:
        # The external id field is not unique and matches several records: nothing is written.
        message = f"{ext_field}: more than one record found for external id field: {ids}"
        return _failed([error("DUPLICATE_EXTERNAL_ID", message, [ext_field])])
    rid = ids[0] if ids else None
    if org.locks.get((sobject, str(key)), 0) > 0:
        org.locks[(sobject, str(key))] -= 1
        message = f"unable to obtain exclusive access to this record or 1 records: {rid or ''}"
        return _failed([error("UNABLE_TO_LOCK_ROW", message)])
    for field, (target, target_field, target_value) in refs.items():
        parent = org.by_external_id(target, target_field, target_value)
        if parent is None:
            message = (
                f"Foreign key external ID: {target_value} not found for field {target_field} "
                f"in entity {target}"
            )
            return _failed([error("INVALID_FIELD", message, [field])])
        values[field] = parent["Id"]
    for field, value in values.items():
        reference_to = org.schemas[sobject][field].reference_to
        if reference_to and value is not None and value not in org.records[reference_to]:
            message = f"invalid cross reference id: {value}"
            return _failed([error("INVALID_CROSS_REFERENCE_KEY", message, [field])])
    errors = org.check(sobject, rid, values)
    if errors:
        return _failed(errors)
    before = dict(org.records[sobject][rid]) if rid else None
    rid, created = org.write(sobject, rid, values)
    undo.append((rid, before))
    return {"id": rid, "success": True, "errors": [], "created": created}


def upsert_by_path(
    org: Org, sobject: str, ext_field: str, value: str, body: Any, version: str = "62.0"
) -> tuple[int, Any]:
    """Apply one single-record upsert; (HTTP status, answer body)."""
    if not isinstance(body, dict):
        raise RequestError(400, "JSON_PARSER_ERROR", "Expected a JSON object of fields")
    spec = org.schemas[sobject].get(ext_field)
    matches = org.find(sobject, ext_field, value) if spec is not None else []
    if len(matches) > 1:
        # Nothing is written; the answer lists the records the value matches.
        return 300, [f"/services/data/v{version}/sobjects/{sobject}/{rid}" for rid in matches]
    # The value in the URL is the one written, whatever the body says.
    fields = {k: v for k, v in body.items() if k.lower() != ext_field.lower()}
    record = {**fields, "attributes": {"type": sobject}, ext_field: value}
    answer = upsert_collection(org, sobject, ext_field, {"allOrNone": True, "records": [record]})
    if not answer[0]["success"]:
        errors = answer[0]["errors"]
        return 400, [
            {"message": e["message"], "errorCode": e["statusCode"], "fields": e["fields"]}
            for e in errors
        ]
    return (201 if answer[0]["created"] else 200), answer[0]
