"""HubSpot's v4 contact ↔ company associations, on top of the object endpoints (`hubspot_objects`).

`PUT /crm/v4/objects/{from}/{id}/associations/default/{to}/{to_id}` links one pair and
`POST /crm/v4/associations/{from}/{to}/batch/associate/default` up to 100; `GET …/associations/{to}`
and `…/batch/read` list the links with their association types. Inline associations of batch
creates and the `associations` member of a single-record GET go through the same links.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from syncd.sim.base import Request, Response
from syncd.sim.hubspot_checks import check_inline_associations
from syncd.sim.hubspot_objects import HubSpotObjects
from syncd.sim.hubspot_shapes import JsonDict, batch_response, error, standard_error
from syncd.sim.hubspot_store import ObjectStore, SimObject

V4_OBJECT = r"/crm/v4/objects/(?P<from_type>[\w-]+)/(?P<from_id>\d+)/associations"
V4_BATCH = r"/crm/v4/associations/(?P<from_type>[\w-]+)/(?P<to_type>[\w-]+)/batch"


class HubSpotAssociations(HubSpotObjects):
    """The object routes plus the v4 association routes. `HubSpotSim` adds auth and limits."""

    def __init__(
        self, *, search_lag: float = 0.0, clock: Callable[[], float] = time.time, seed: int = 0
    ) -> None:
        super().__init__(search_lag=search_lag, clock=clock, seed=seed)
        self.route("PUT", V4_OBJECT + r"/default/(?P<to_type>[\w-]+)/(?P<to_id>\d+)", self._link)
        self.route("GET", V4_OBJECT + r"/(?P<to_type>[\w-]+)", self._links_of)
        self.route("POST", V4_BATCH + r"/associate/default", self._batch_link)
        self.route("POST", V4_BATCH + r"/read", self._batch_links)

    @property
    def companies(self) -> ObjectStore:
        return self.stores["companies"]

    @property
    def contacts(self) -> ObjectStore:
        return self.stores["contacts"]

    def _pair(self, from_type: str, from_id: str, to_type: str, to_id: str) -> tuple[int, int]:
        """(contact id, company id), or ValueError when either is unknown."""
        ends = {self._kind(from_type): from_id, self._kind(to_type): to_id}
        contact = self.contacts.get(ends.get("contacts", ""))
        company = self.companies.get(ends.get("companies", ""))
        if contact is None or company is None:
            raise ValueError(f"no such {from_type} {from_id} or {to_type} {to_id}")
        return contact.id, company.id

    def _kind(self, otype: str) -> str:
        store = self.store(otype)
        return store.object_type if store is not None else otype

    def link(self, contact_id: int, company_id: int, now: int | None = None) -> None:
        """Associate a contact with a company. A new link bumps both modified dates (the
        company's associated-contacts count changes), as in HubSpot."""
        if not self.associations.add(contact_id, company_id):
            return
        now = self.now_ms() if now is None else now
        company = self.companies.records[company_id]
        count = len(self.associations.contacts_of(company_id))
        company.properties["num_associated_contacts"] = str(count)
        self.companies.touch(company, now)
        self.contacts.touch(self.contacts.records[contact_id], now)

    def _spec(self, contact_id: int, company_id: int, from_type: str) -> JsonDict:
        from_contact = self._kind(from_type) == "contacts"
        ends = (str(contact_id), str(company_id))
        source, target = ends if from_contact else ends[::-1]
        type_id = self.associations.type_ids(contact_id, company_id, from_contact)[-1]
        spec = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}
        return {"from": {"id": source}, "to": {"id": target}, "associationSpec": spec}

    def _link(
        self, request: Request, from_type: str, from_id: str, to_type: str, to_id: str
    ) -> Response:
        try:
            contact_id, company_id = self._pair(from_type, from_id, to_type, to_id)
        except ValueError as exc:
            return error(400, str(exc), "VALIDATION_ERROR")
        self.link(contact_id, company_id)
        spec = self._spec(contact_id, company_id, from_type)
        return batch_response([spec], [], self.now_ms())

    def _batch_link(self, request: Request, from_type: str, to_type: str) -> Response:
        inputs = (request.json() or {}).get("inputs")
        if not isinstance(inputs, list) or len(inputs) > 100:
            return error(400, "`inputs` must be a list of at most 100 pairs", "VALIDATION_ERROR")
        now, results, errors = self.now_ms(), [], []
        for item in inputs:
            ids = str(item.get("from", {}).get("id")), str(item.get("to", {}).get("id"))
            try:
                contact_id, company_id = self._pair(from_type, ids[0], to_type, ids[1])
            except ValueError as exc:
                errors.append(standard_error("OBJECT_NOT_FOUND", str(exc), {"ids": list(ids)}))
                continue
            self.link(contact_id, company_id, now)
            results.append(self._spec(contact_id, company_id, from_type))
        return batch_response(results, errors, now)

    def _targets(self, from_type: str, object_id: int, to_type: str) -> list[JsonDict]:
        from_contact = self._kind(from_type) == "contacts"
        if from_contact:
            pairs = [(object_id, c) for c in self.associations.companies_of(object_id)]
        else:
            pairs = [(c, object_id) for c in self.associations.contacts_of(object_id)]
        return [
            {
                "toObjectId": pair[1] if from_contact else pair[0],
                "associationTypes": [
                    {"category": "HUBSPOT_DEFINED", "typeId": t, "label": _label(t)}
                    for t in self.associations.type_ids(*pair, from_contact)
                ],
            }
            for pair in pairs
        ]

    def _links_of(self, request: Request, from_type: str, from_id: str, to_type: str) -> Response:
        store = self.store(from_type)
        obj = store.get(from_id) if store is not None else None
        if obj is None or {self._kind(from_type), self._kind(to_type)} != set(self.stores):
            return error(404, f"No {from_type} with id {from_id}", "OBJECT_NOT_FOUND")
        return Response(200, {"results": self._targets(from_type, obj.id, to_type)})

    def _batch_links(self, request: Request, from_type: str, to_type: str) -> Response:
        inputs = (request.json() or {}).get("inputs")
        store = self.store(from_type)
        if store is None or not isinstance(inputs, list) or len(inputs) > 100:
            return error(400, "`inputs` must be a list of at most 100 ids", "VALIDATION_ERROR")
        now, results, errors = self.now_ms(), [], []
        for item in inputs:
            obj = store.get(str(item.get("id")))
            targets = self._targets(from_type, obj.id, to_type) if obj else []
            if targets:
                results.append({"from": {"id": str(item.get("id"))}, "to": targets})
                continue
            message = f"No {to_type} is associated with {from_type} {item.get('id')}."
            entry = standard_error(
                "OBJECT_NOT_FOUND", message, {"fromObjectId": [str(item.get("id"))]}
            )
            entry["subCategory"] = {"code": "crm.associations.NO_ASSOCIATIONS_FOUND"}
            errors.append(entry)
        return batch_response(results, errors, now)

    def check_associations(self, store: ObjectStore, inputs: list[JsonDict]) -> Response | None:
        other = "companies" if store.object_type == "contacts" else "contacts"
        defined = self.associations.defined_types(store.object_type, other)
        return check_inline_associations(inputs, store.object_type, other, defined)

    def associate_inputs(
        self, store: ObjectStore, obj: SimObject, specs: list[Any], now: int
    ) -> None:
        for spec in specs:
            target = str((spec.get("to") or {}).get("id")) if isinstance(spec, dict) else ""
            other = "companies" if store.object_type == "contacts" else "contacts"
            try:
                contact_id, company_id = self._pair(store.object_type, str(obj.id), other, target)
            except ValueError:
                continue  # HubSpot ignores an inline association to a record that does not exist
            self.link(contact_id, company_id, now)

    def associated(self, store: ObjectStore, obj: SimObject, kinds: list[str]) -> JsonDict:
        answer: JsonDict = {}
        for kind in kinds:
            other = self.store(kind)
            if other is None or other is store:
                continue
            prefix = "contact_to" if store.object_type == "contacts" else "company_to"
            prefix += "_company" if store.object_type == "contacts" else "_contact"
            rows = [
                {"id": str(t["toObjectId"]), "type": prefix + _suffix(typ["typeId"])}
                for t in self._targets(store.object_type, obj.id, kind)
                for typ in t["associationTypes"]
            ]
            answer[other.object_type] = {"results": rows}
        return answer


def _label(type_id: int) -> str | None:
    return "Primary" if type_id < 100 else None


def _suffix(type_id: int) -> str:
    return "" if type_id < 100 else "_unlabeled"
