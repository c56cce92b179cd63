"""Request checks and error answers of HubSpot's batch object endpoints (see `hubspot_objects`)."""

from __future__ import annotations

import json

from syncd.sim.base import Request, Response
from syncd.sim.hubspot_shapes import JsonDict, error, standard_error
from syncd.sim.hubspot_store import OBJECT_NAMES, OBJECT_TYPE_IDS, ObjectStore, SimObject

MAX_BATCH = 100
Plan = tuple[JsonDict, SimObject | None, dict[str, str]]
"""One input, the record it targets (None: to create) and the values to write."""


def read_inputs(request: Request) -> list[JsonDict] | Response:
    try:
        body = request.json()
    except ValueError:
        return error(400, "Invalid input JSON on line 1", "VALIDATION_ERROR")
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        return error(
            400, "Invalid input JSON: `inputs` must be a list of objects", "VALIDATION_ERROR"
        )
    if len(inputs) > MAX_BATCH:
        message = f"Batch input must contain at most {MAX_BATCH} inputs, got {len(inputs)}"
        return error(400, message, "VALIDATION_ERROR")
    return inputs


def check_ids(store: ObjectStore, inputs: list[JsonDict], mode: str) -> Response | None:
    if mode == "create":
        return None
    seen: set[tuple[str, str]] = set()
    duplicates: list[str] = []
    for item in inputs:
        if "id" not in item:
            return error(400, "Each input needs an `id`", "VALIDATION_ERROR")
        id_prop = item.get("idProperty") or "hs_object_id"
        if id_prop != "hs_object_id" and id_prop not in store.identifiers():
            if id_prop not in store.properties:
                return unknown_properties([id_prop])
            return not_unique(store, id_prop)
        key = (id_prop, str(item["id"]).lower() if id_prop == "email" else str(item["id"]))
        if key in seen:
            duplicates.append(str(item["id"]))
        seen.add(key)
    if duplicates:
        message = f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique"
        return error(400, message, "VALIDATION_ERROR")
    return None


def find_clash(store: ObjectStore, plans: list[Plan]) -> tuple[str, str, int] | None:
    """A unique value held by another record, or given twice in this batch."""
    claimed: dict[tuple[str, str], int] = {}
    for _, target, values in plans:
        own = target.id if target else None
        held = store.clash(values, own)
        if held is not None:
            return held
        for prop in store.identifiers():
            value = values.get(prop)
            if not value:
                continue
            key = (prop, value.lower() if prop == "email" else value)
            if key in claimed and claimed[key] != own:
                return prop, value, claimed[key]
            claimed[key] = own if own is not None else -1
    return None


def unknown_type(otype: str) -> Response:
    return error(400, f"Unable to infer object type from: {otype}", "VALIDATION_ERROR")


def not_unique(store: ObjectStore, prop: str) -> Response:
    type_id = OBJECT_TYPE_IDS[store.object_type]
    message = f"Unable to perform update/upsert by non-unique {type_id} property {prop}"
    return error(400, message, "VALIDATION_ERROR")


def unknown_properties(names: list[str]) -> Response:
    results = [
        {"isValid": False, "message": f'Property "{n}" does not exist', "name": n}
        | {"error": "PROPERTY_DOESNT_EXIST"}
        for n in names
    ]
    details = [
        {"message": r["message"], "code": "PROPERTY_DOESNT_EXIST", "context": {"propertyName": [n]}}
        for r, n in zip(results, names, strict=True)
    ]
    message = f"Property values were not valid: {json.dumps(results)}"
    return error(400, message, "VALIDATION_ERROR", errors=details)


def error_context(item: JsonDict) -> dict[str, list[str]]:
    context: dict[str, list[str]] = {}
    if "id" in item:
        context["ids"] = [str(item["id"])]
    if item.get("objectWriteTraceId"):
        context["objectWriteTraceId"] = [str(item["objectWriteTraceId"])]
    return context


def invalid_error(item: JsonDict, invalid: list[JsonDict]) -> JsonDict:
    message = f"Property values were not valid: {json.dumps(invalid)}"
    entry = standard_error("VALIDATION_ERROR", message, error_context(item))
    entry["errors"] = [{"message": r["message"], "code": r["error"]} for r in invalid]
    return entry


def not_found_error(store: ObjectStore, item: JsonDict) -> JsonDict:
    message = f"Could not find {OBJECT_NAMES[store.object_type]} with id {item.get('id')}"
    return standard_error("OBJECT_NOT_FOUND", message, error_context(item))


def conflict_error(store: ObjectStore, prop: str, value: str, holder: int) -> Response:
    if store.object_type == "contacts" and prop == "email":
        message = f"Contact already exists. Existing ID: {holder}"
    else:
        name = OBJECT_NAMES[store.object_type]
        message = f"A {name} with {prop}={value} already exists. Existing ID: {holder}"
    return error(409, message, "CONFLICT")


_CATEGORIES = frozenset({"HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED"})


def check_inline_associations(
    inputs: list[JsonDict], from_type: str, to_type: str, defined: tuple[int, ...]
) -> Response | None:
    """A 400 when a create input's inline association is malformed: each needs `to.id` and
    `types` (PublicAssociationsForObject), and a HUBSPOT_DEFINED type id must be one defined from
    `from_type` to `to_type` (`defined`)."""
    for item in inputs:
        specs = item.get("associations") or []
        if not isinstance(specs, list):
            return error(400, "`associations` must be a list", "VALIDATION_ERROR")
        for spec in specs:
            types = spec.get("types") if isinstance(spec, dict) else None
            target = (spec.get("to") or {}).get("id") if isinstance(spec, dict) else None
            if not target or not isinstance(types, list) or not types:
                message = "Each association needs `to.id` and at least one of `types`"
                return error(400, message, "VALIDATION_ERROR")
            for kind in types:
                category = kind.get("associationCategory") if isinstance(kind, dict) else None
                type_id = kind.get("associationTypeId") if isinstance(kind, dict) else None
                if category not in _CATEGORIES or not isinstance(type_id, int):
                    return error(400, f"Invalid association type {kind}", "VALIDATION_ERROR")
                if category == "HUBSPOT_DEFINED" and type_id not in defined:
                    message = (
                        f"{type_id} is not a valid association type from {from_type} to {to_type}"
                    )
                    return error(400, message, "VALIDATION_ERROR")
    return None
