"""A local HubSpot CRM: companies, contacts, their association, with HubSpot's quirks and limits.

Serve it with `SimServer(HubSpotSim(token="t")).start()` or `syncd sim hubspot --port N --token T`.
On top of the object endpoints (`hubspot_objects`) it adds bearer-token auth (401 with HubSpot's
body), rate limits (`hubspot_limits`: 429 bodies and `X-HubSpot-RateLimit-*` headers), the v4
contact ↔ company association endpoints, and test hooks that act as a CRM user would (edits,
bulk edits that stamp one millisecond on many records, emails HubSpot refuses).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable
from typing import Any

from syncd.sim.base import Request, Response, SimServer
from syncd.sim.hubspot_checks import check_inline_associations
from syncd.sim.hubspot_limits import RateLimiter, RateLimits
from syncd.sim.hubspot_objects import HubSpotObjects
from syncd.sim.hubspot_shapes import (
    JsonDict,
    batch_response,
    error,
    error_body,
    standard_error,
)
from syncd.sim.hubspot_store import ObjectStore, PropertyDef, SimObject

__all__ = ["HubSpotSim", "RateLimits", "add_arguments", "build", "serve"]

KEY_PROPERTY = "connect_account_id"
TAX_PROPERTY = "connect_tax_id"
AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
V4_OBJECT = r"/crm/v4/objects/(?P<from_type>[\w-]+)/(?P<from_id>\d+)/associations"
V4_BATCH = r"/crm/v4/associations/(?P<from_type>[\w-]+)/(?P<to_type>[\w-]+)/batch"


class HubSpotSim(HubSpotObjects):
    """The simulated portal. `token=None` accepts any bearer token; `limits=None` turns the rate
    limits off; `search_lag` delays when writes become visible to search; `clock` (epoch seconds)
    drives timestamps, rate windows and the lag."""

    def __init__(
        self,
        token: str | None = "test-token",  # noqa: S107 - the simulator's default test token
        *,
        limits: RateLimits | None = RateLimits(),  # noqa: B008 - frozen value
        search_lag: float = 0.0,
        clock: Callable[[], float] = time.time,
        custom_properties: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(search_lag=search_lag, clock=clock, seed=seed)
        self.token = token
        self.limiter = RateLimiter(limits) if limits is not None else None
        self.route("PUT", V4_OBJECT + r"/default/(?P<to_type>[\w-]+)/(?P<to_id>\d+)", self._link)
        self.route("GET", V4_OBJECT + r"/(?P<to_type>[\w-]+)", self._links_of)
        self.route("POST", V4_BATCH + r"/associate/default", self._batch_link)
        self.route("POST", V4_BATCH + r"/read", self._batch_links)
        if custom_properties:
            self.install_custom_properties()

    # --- auth and limits -----------------------------------------------------------------

    def authorize(self, request: Request) -> Response | None:
        scheme, _, token = (request.header("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token or self.token not in (None, token):
            return Response(401, error_body(AUTH_MESSAGE, "INVALID_AUTHENTICATION"))
        if self.limiter is None:
            return None
        with self.lock:
            return self.limiter.admit(_is_search(request), self.clock())

    def dispatch(self, request: Request) -> Response:
        response = super().dispatch(request)
        # Search answers carry no rate-limit headers (HubSpot changelog; crm-apis.md §2.2).
        if self.limiter is not None and response.status != 401 and not _is_search(request):
            with self.lock:
                for name, value in self.limiter.headers(self.clock()).items():
                    response.headers.setdefault(name, value)
        return response

    # --- v4 associations (contact ↔ company) ---------------------------------------------

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

    # --- test hooks ----------------------------------------------------------------------

    @property
    def companies(self) -> ObjectStore:
        return self.stores["companies"]

    @property
    def contacts(self) -> ObjectStore:
        return self.stores["contacts"]

    def install_custom_properties(self) -> None:
        """What `syncd crm setup` creates: the unique TA id and the tax id on companies."""
        now = self.now_ms()
        with self.lock:
            for name, label, unique in (
                (KEY_PROPERTY, "Connect account id", True),
                (TAX_PROPERTY, "Connect tax id", False),
            ):
                if name not in self.companies.properties:
                    prop = PropertyDef(name, label, group="companyinformation", unique=unique)
                    prop.created_ms = now
                    self.companies.add_property(prop)

    def company(self, key: str) -> SimObject | None:
        """The company whose `connect_account_id` is `key`."""
        return self.companies.find(KEY_PROPERTY, key)

    def contact(self, email: str) -> SimObject | None:
        return self.contacts.find("email", email)

    def company_contacts(self, company: SimObject) -> list[SimObject]:
        ids = self.associations.contacts_of(company.id)
        return [self.contacts.records[i] for i in ids]

    def edit_company(self, key: str, **props: str) -> SimObject:
        """A CRM user's edit of the company `key`: writes `props`, bumps the modified date."""
        with self.lock:
            obj = self.company(key)
            if obj is None:
                raise KeyError(key)
            self.companies.update(obj, props, self.now_ms())
            return obj

    def edit_contact(self, email: str, **props: str) -> SimObject:
        with self.lock:
            obj = self.contact(email)
            if obj is None:
                raise KeyError(email)
            self.contacts.update(obj, props, self.now_ms())
            return obj

    def seed_companies(self, keys: Iterable[str], at: int | None = None, **props: str) -> int:
        """Create companies keyed by TA id without HTTP (for volume tests); `at` stamps their
        create and modified dates (epoch ms). Returns how many were created."""
        self.install_custom_properties()
        now = self.now_ms() if at is None else at
        with self.lock:
            count = 0
            for key in keys:
                self.companies.create({KEY_PROPERTY: key, "name": key, **props}, now)
                count += 1
            return count

    def bulk_touch(
        self, n: int | None = None, at: int | None = None, object_type: str = "companies"
    ) -> list[SimObject]:
        """A bulk edit or workflow: stamp the first `n` records (all when None) with one
        modified timestamp `at` (epoch ms, default now), as HubSpot does (supaglue #585)."""
        store = self.stores[object_type]
        now = self.now_ms() if at is None else at
        with self.lock:
            touched = sorted(store, key=lambda o: o.id)[:n]
            for obj in touched:
                store.touch(obj, now)
            return touched

    def fail_email(self, *emails: str) -> None:
        """Make HubSpot refuse these addresses as INVALID_EMAIL (well-formed or not)."""
        with self.lock:
            self.contacts.invalid_emails.update(e.lower() for e in emails)

    def set_search_lag(self, seconds: float) -> None:
        with self.lock:
            for store in self.stores.values():
                store.search_lag = seconds


def _label(type_id: int) -> str | None:
    return "Primary" if type_id < 100 else None


def _suffix(type_id: int) -> str:
    return "" if type_id < 100 else "_unlabeled"


def _is_search(request: Request) -> bool:
    return request.method == "POST" and request.path.endswith("/search")


# --- command line: `syncd sim hubspot` --------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `syncd sim hubspot`."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082, help="0 picks a free port")
    parser.add_argument("--token", default=None, help="bearer token to require (default: any)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random faults")
    parser.add_argument(
        "--search-lag", type=float, default=0.0, help="seconds before search sees a write"
    )
    parser.add_argument("--burst-limit", type=int, default=100, help="requests per 10 s; 0: off")
    parser.add_argument("--daily-limit", type=int, default=250_000, help="requests per day; 0: off")
    parser.add_argument("--search-rate", type=int, default=5, help="searches per second; 0: off")
    parser.add_argument(
        "--setup", action="store_true", help="pre-create connect_account_id and connect_tax_id"
    )


def build(args: argparse.Namespace) -> SimServer:
    """The server `serve` runs, not yet started."""
    limits = RateLimits(
        burst=args.burst_limit or None,
        daily=args.daily_limit or None,
        search_per_second=args.search_rate or None,
    )
    app = HubSpotSim(
        args.token,
        limits=limits,
        search_lag=args.search_lag,
        custom_properties=args.setup,
        seed=args.seed,
    )
    return SimServer(app, port=args.port, host=args.host, seed=args.seed)


def serve(args: argparse.Namespace) -> int:
    """Run the simulator in the foreground until interrupted."""
    server = build(args)
    auth = "the given token" if args.token else "any bearer token"
    print(f"HubSpot simulator on {server.url} (accepts {auth})", flush=True)
    return server.serve_forever()
