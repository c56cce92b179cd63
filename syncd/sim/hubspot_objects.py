"""HubSpot's objects and properties endpoints for companies and contacts.

Classic `/crm/v3/objects/{type}` paths and the date-versioned `/crm/objects/2026-03/{type}` ones
reach the same handlers (crm-apis.md §4.1). Batch writes take at most 100 inputs. A record that
fails validation (e.g. INVALID_EMAIL) fails alone and the answer is 207 Multi-Status with
`errors[]`; a request-level problem (unknown property, duplicate ids, non-unique `idProperty`) fails
the batch with 400, and a unique value held by another record fails it with 409, nothing written.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from syncd.sim.base import Request, Response, SimApp
from syncd.sim.hubspot_checks import (
    check_ids,
    conflict_error,
    find_clash,
    invalid_error,
    not_found_error,
    not_unique,
    read_inputs,
    unknown_properties,
    unknown_type,
)
from syncd.sim.hubspot_search import SearchError, key_range, search
from syncd.sim.hubspot_shapes import (
    JsonDict,
    batch_response,
    error,
    iso,
    standard_error,
    status_error,
)
from syncd.sim.hubspot_store import (
    MAX_UNIQUE_PROPERTIES,
    MODIFIED_PROPERTY,
    OBJECT_NAMES,
    Associations,
    ObjectStore,
    PropertyDef,
    SimObject,
)

OBJECTS = r"(?:/crm/v3/objects|/crm/objects/\d{4}-\d{2})/(?P<otype>[\w-]+)"
PROPERTIES = r"(?:/crm/v3/properties|/crm/properties/\d{4}-\d{2})/(?P<otype>[\w-]+)"
_ALIASES = {"company": "companies", "0-2": "companies", "contact": "contacts", "0-1": "contacts"}
_DEFAULT_READ = {
    "companies": ["domain", "name"],
    "contacts": ["email", "firstname", "lastname"],
}


def query_params(request: Request) -> dict[str, list[str]]:
    """Repeated and comma-separated values both count (`properties=a,b&properties=c`)."""
    params: dict[str, list[str]] = {}
    for key, value in parse_qsl(request.query, keep_blank_values=True):
        params.setdefault(key, []).extend(v for v in value.split(",") if v)
    return params


class HubSpotObjects(SimApp):
    """State, object and property routes; `HubSpotAssociations` adds associations, `HubSpotSim`
    auth and limits."""

    name = "hubspot"

    def __init__(
        self, *, search_lag: float = 0.0, clock: Callable[[], float] = time.time, seed: int = 0
    ) -> None:
        super().__init__()
        self.clock = clock
        ids = itertools.count(1001)
        self.stores = {t: ObjectStore(t, ids, search_lag) for t in ("companies", "contacts")}
        self.associations = Associations()
        self.shuffle_ties = False
        """Return records tied on the sort in random order (HubSpot promises none)."""
        self._rng = random.Random(seed)
        for suffix, handler in (
            ("/batch/upsert", self._batch_upsert),
            ("/batch/create", self._batch_create),
            ("/batch/update", self._batch_update),
            ("/batch/read", self._batch_read),
            ("/batch/archive", self._batch_archive),
            ("/search", self._search),
        ):
            self.route("POST", OBJECTS + suffix, handler)
        self.route("GET", OBJECTS, self._list)
        self.route("GET", OBJECTS + r"/(?P<object_id>[^/]+)", self._get)
        self.route("GET", PROPERTIES, self._properties)
        self.route("GET", PROPERTIES + r"/(?P<prop>[\w-]+)", self._property)
        self.route("POST", PROPERTIES, self._create_property)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def error_response(self, status: int, headers: dict[str, str]) -> Response:
        return status_error(status, headers)

    def not_found_error(self, request: Request) -> Response:
        return error(404, f"No route for {request.method} {request.path}", "OBJECT_NOT_FOUND")

    def store(self, otype: str) -> ObjectStore | None:
        return self.stores.get(_ALIASES.get(otype, otype))

    # --- rendering -----------------------------------------------------------------------

    def render(self, store: ObjectStore, obj: SimObject, names: list[str] | None) -> JsonDict:
        """A `SimplePublicObject`: requested properties (null when unset; unknown names are
        ignored) plus the ones HubSpot always returns. `names=None` means a write's answer: the
        stored values, nulls left out."""
        system = ["createdate", MODIFIED_PROPERTY[store.object_type], "hs_object_id"]
        if names is None:
            props: dict[str, str | None] = dict(obj.properties)
        else:
            wanted = names or _DEFAULT_READ[store.object_type]
            props = {n: obj.value(n) for n in wanted if n in store.properties}
        props.update({n: obj.value(n) for n in system})
        return {
            "id": str(obj.id),
            "properties": props,
            "createdAt": iso(obj.created_ms),
            "updatedAt": iso(obj.modified_ms),
            "archived": obj.archived,
        }

    # --- batch writes --------------------------------------------------------------------

    def _batch_upsert(self, request: Request, otype: str) -> Response:
        return self._write(request, otype, "upsert")

    def _batch_create(self, request: Request, otype: str) -> Response:
        return self._write(request, otype, "create")

    def _batch_update(self, request: Request, otype: str) -> Response:
        return self._write(request, otype, "update")

    def _write(self, request: Request, otype: str, mode: str) -> Response:
        store, inputs = self.store(otype), read_inputs(request)
        if store is None:
            return unknown_type(otype)
        if isinstance(inputs, Response):
            return inputs
        now = self.now_ms()
        refusal = check_ids(store, inputs, mode)
        if refusal is None and mode == "create":
            refusal = self.check_associations(store, inputs)
        if refusal is not None:
            return refusal
        plans: list[tuple[JsonDict, SimObject | None, dict[str, str]]] = []
        errors: list[JsonDict] = []
        for item in inputs:
            props = {
                k: "" if v is None else str(v) for k, v in (item.get("properties") or {}).items()
            }
            unknown = store.unknown_properties(props)
            if unknown:
                return unknown_properties(unknown)
            target, values = None, props
            if mode != "create":
                id_prop = item.get("idProperty") or "hs_object_id"
                target = store.find(id_prop, str(item["id"]))
                if target is None and mode == "upsert" and id_prop != "hs_object_id":
                    values = {**props, id_prop: str(item["id"])}
                elif target is None:
                    errors.append(not_found_error(store, item))
                    continue
            invalid = store.invalid_values(values)
            if invalid:
                errors.append(invalid_error(item, invalid))
                continue
            plans.append((item, target, values))
        clash = find_clash(store, plans)
        if clash is not None:
            return conflict_error(store, *clash)
        results = []
        for item, target, values in plans:
            obj = target or store.create(values, now)
            if target is not None:
                store.update(target, values, now)
            if mode == "create":  # only the create input has `associations` (v3 spec)
                self.associate_inputs(store, obj, item.get("associations") or [], now)
            result = self.render(store, obj, None)
            if mode == "upsert":
                result["new"] = target is None
            if item.get("objectWriteTraceId"):
                result["objectWriteTraceId"] = str(item["objectWriteTraceId"])
            results.append(result)
        return batch_response(results, errors, now)

    def check_associations(self, store: ObjectStore, inputs: list[JsonDict]) -> Response | None:
        """A 400 when an inline association of a create input is malformed (in
        `HubSpotAssociations`)."""
        return None

    def associate_inputs(
        self, store: ObjectStore, obj: SimObject, specs: list[Any], now: int
    ) -> None:
        """Associations given inline with a batch create input; `HubSpotAssociations` links them."""

    def _batch_archive(self, request: Request, otype: str) -> Response:
        store, inputs = self.store(otype), read_inputs(request)
        if store is None:
            return unknown_type(otype)
        if isinstance(inputs, Response):
            return inputs
        for item in inputs:
            obj = store.get(str(item.get("id")))
            if obj is not None:
                store.archive(obj)
        return Response(204)

    # --- reads ---------------------------------------------------------------------------

    def _batch_read(self, request: Request, otype: str) -> Response:
        store, inputs = self.store(otype), read_inputs(request)
        if store is None:
            return unknown_type(otype)
        if isinstance(inputs, Response):
            return inputs
        body = request.json()
        id_prop = body.get("idProperty") or "hs_object_id"
        if id_prop != "hs_object_id" and id_prop not in store.identifiers():
            return not_unique(store, id_prop)
        now, results, missing, seen = self.now_ms(), [], [], set()
        for item in inputs:
            obj = store.find(id_prop, str(item.get("id")))
            if obj is None:
                missing.append(str(item.get("id")))
            elif obj.id not in seen:
                seen.add(obj.id)
                results.append(self.render(store, obj, list(body.get("properties") or [])))
        errors = []
        if missing:
            message = (
                f"Could not get some {OBJECT_NAMES[store.object_type]} objects, they may be "
                "deleted or not exist. Check that ids are valid."
            )
            errors.append(standard_error("OBJECT_NOT_FOUND", message, {"ids": missing}))
        return batch_response(results, errors, now)

    def _search(self, request: Request, otype: str) -> Response:
        store = self.store(otype)
        if store is None:
            return unknown_type(otype)
        body = request.json() or {}
        rng = self._rng if self.shuffle_ties else None
        bounds = key_range(body) if store.search_lag <= 0 else None
        candidates = store.in_range(*bounds) if bounds else store.searchable(self.now_ms())
        try:
            page = search(candidates, body, store.properties, rng)
        except SearchError as exc:
            return error(400, str(exc), "VALIDATION_ERROR")
        names = list(body.get("properties") or [])
        answer: JsonDict = {
            "total": page.total,
            "results": [self.render(store, obj, names) for obj in page.results],
        }
        if page.next_after is not None:
            after = str(page.next_after)
            answer["paging"] = {"next": {"after": after, "link": f"?after={after}"}}
        return Response(200, answer)

    def _get(self, request: Request, otype: str, object_id: str) -> Response:
        store = self.store(otype)
        if store is None:
            return unknown_type(otype)
        params = query_params(request)
        id_prop = (params.get("idProperty") or ["hs_object_id"])[0]
        obj = store.find(id_prop, object_id)
        if obj is None:
            return error(404, "resource not found", "OBJECT_NOT_FOUND")
        answer = self.render(store, obj, params.get("properties", []))
        associations = self.associated(store, obj, params.get("associations", []))
        if associations:
            answer["associations"] = associations
        return Response(200, answer)

    def associated(self, store: ObjectStore, obj: SimObject, kinds: list[str]) -> JsonDict:
        """The `associations` member of a single-record GET; `HubSpotAssociations` fills it."""
        return {}

    def _list(self, request: Request, otype: str) -> Response:
        store = self.store(otype)
        if store is None:
            return unknown_type(otype)
        params = query_params(request)
        limit = min(int((params.get("limit") or ["10"])[0]), 100)
        after = int((params.get("after") or ["0"])[0])
        rows = sorted((o for o in store if o.id > after), key=lambda o: o.id)
        page = rows[:limit]
        names = params.get("properties", [])
        answer: JsonDict = {"results": [self.render(store, o, names) for o in page]}
        if len(rows) > limit:
            answer["paging"] = {"next": {"after": str(page[-1].id)}}
        return Response(200, answer)

    # --- properties API ------------------------------------------------------------------

    def _properties(self, request: Request, otype: str) -> Response:
        store = self.store(otype)
        if store is None:
            return unknown_type(otype)
        return Response(200, {"results": [p.to_json() for p in store.properties.values()]})

    def _property(self, request: Request, otype: str, prop: str) -> Response:
        store = self.store(otype)
        found = store.properties.get(prop) if store is not None else None
        if found is None:
            return error(404, f"Unable to find property {prop}", "OBJECT_NOT_FOUND")
        return Response(200, found.to_json())

    def _create_property(self, request: Request, otype: str) -> Response:
        store, body = self.store(otype), request.json() or {}
        if store is None:
            return unknown_type(otype)
        missing = [
            k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)
        ]
        if missing:
            return error(400, f"Missing required fields: {', '.join(missing)}", "VALIDATION_ERROR")
        if body["name"] in store.properties:
            message = f"Property named '{body['name']}' already exists."
            return error(409, message, "OBJECT_ALREADY_EXISTS")
        unique = bool(body.get("hasUniqueValue"))
        if unique and sum(p.unique for p in store.properties.values()) >= MAX_UNIQUE_PROPERTIES:
            message = f"At most {MAX_UNIQUE_PROPERTIES} unique value properties per object."
            return error(400, message, "VALIDATION_ERROR")
        prop = PropertyDef(
            body["name"],
            body["label"],
            body["type"],
            body["fieldType"],
            body["groupName"],
            unique,
            self.now_ms(),
        )
        store.add_property(prop)
        return Response(201, prop.to_json())
