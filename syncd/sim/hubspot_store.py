"""The simulated portal's state: records, property definitions, unique indexes, associations.

Facts reproduced (crm-apis.md §4.1): record ids are numbers shared across object types;
`hs_object_id`, `createdate` and the modified date are system properties; every write bumps the
modified date (`hs_lastmodifieddate` on companies, `lastmodifieddate` on contacts, which also carry
`hs_lastmodifieddate`), ours included: the echo trap. Emails are stored lower-cased and are unique
per contact. New or changed records reach search only after an optional lag (eventual consistency).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from syncd.sim.hubspot_shapes import iso

OBJECT_TYPE_IDS = {"contacts": "0-1", "companies": "0-2"}
OBJECT_NAMES = {"contacts": "CONTACT", "companies": "COMPANY"}
MODIFIED_PROPERTY = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate"}
MAX_UNIQUE_PROPERTIES = 10
"""Unique-value properties per object (HubSpot properties guide)."""

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_DATES = {"createdate", "hs_lastmodifieddate", "lastmodifieddate"}
_SYSTEM = _DATES | {"hs_object_id", "num_associated_contacts"}


@dataclass
class PropertyDef:
    name: str
    label: str
    type: str = "string"
    field_type: str = "text"
    group: str = "companyinformation"
    unique: bool = False
    created_ms: int = 0

    @property
    def read_only(self) -> bool:
        return self.name in _SYSTEM

    def to_json(self) -> dict[str, Any]:
        """The properties API shape (GET/POST /crm/v3/properties/{objectType})."""
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "description": "",
            "groupName": self.group,
            "options": [],
            "displayOrder": -1,
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": self.unique,
            "hidden": False,
            "formField": not self.read_only,
            "modificationMetadata": {
                "archivable": not self.read_only,
                "readOnlyDefinition": self.read_only,
                "readOnlyValue": self.read_only,
            },
            "createdAt": iso(self.created_ms),
            "updatedAt": iso(self.created_ms),
            "archived": False,
        }


def default_properties(object_type: str) -> list[PropertyDef]:
    if object_type == "companies":
        group = "companyinformation"
        names = ["name", "domain", "address", "address2", "city", "state", "zip", "country"]
        names += ["phone", "industry", "description"]
        system = [
            PropertyDef(
                "num_associated_contacts", "Associated Contacts", "number", "number", group
            ),
            PropertyDef("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", group),
        ]
    else:
        group = "contactinformation"
        names = ["email", "firstname", "lastname", "phone", "mobilephone", "company", "jobtitle"]
        system = [
            PropertyDef("lastmodifieddate", "Last Modified Date", "datetime", "date", group),
            PropertyDef("hs_lastmodifieddate", "Object last modified", "datetime", "date", group),
        ]
    plain = [PropertyDef(name, name.replace("_", " ").title(), group=group) for name in names]
    return [
        *plain,
        *system,
        PropertyDef("hs_object_id", "Record ID", "number", "number", group),
        PropertyDef("createdate", "Create Date", "datetime", "date", group),
    ]


@dataclass(eq=False)
class SimObject:
    id: int
    properties: dict[str, str]
    created_ms: int
    modified_ms: int
    archived: bool = False
    indexed: SimObject | None = field(default=None, repr=False)
    """What search sees when a lag is set."""
    pending: list[tuple[int, SimObject]] = field(default_factory=list, repr=False)

    def value(self, name: str) -> str | None:
        if name == "hs_object_id":
            return str(self.id)
        if name == "createdate":
            return iso(self.created_ms)
        if name in ("hs_lastmodifieddate", "lastmodifieddate"):
            return iso(self.modified_ms)
        return self.properties.get(name)

    def number(self, name: str) -> float | None:
        """The value as a number, for sorting and range filters on ids and dates."""
        if name == "hs_object_id":
            return float(self.id)
        if name == "createdate":
            return float(self.created_ms)
        if name in ("hs_lastmodifieddate", "lastmodifieddate"):
            return float(self.modified_ms)
        raw = self.properties.get(name)
        try:
            return None if raw is None else float(raw)
        except ValueError:
            return None

    def snapshot(self) -> SimObject:
        return SimObject(self.id, dict(self.properties), self.created_ms, self.modified_ms)


class ObjectStore:
    """The records of one object type (`companies` or `contacts`)."""

    def __init__(self, object_type: str, ids: Iterator[int], search_lag: float = 0.0) -> None:
        self.object_type = object_type
        self.records: dict[int, SimObject] = {}
        self.properties = {p.name: p for p in default_properties(object_type)}
        self.search_lag = search_lag
        self.invalid_emails: set[str] = set()
        self._ids = ids
        self._unique: dict[str, dict[str, int]] = {}
        self._by_modified: list[tuple[int, int]] | None = None
        """(modified ms, id) of live records, sorted; rebuilt after a write."""
        self._reindex_all()

    # --- lookups -------------------------------------------------------------------------

    def __len__(self) -> int:
        return sum(1 for o in self.records.values() if not o.archived)

    def __iter__(self) -> Iterator[SimObject]:
        return (o for o in self.records.values() if not o.archived)

    def get(self, object_id: int | str) -> SimObject | None:
        try:
            obj = self.records.get(int(object_id))
        except ValueError:
            return None
        return obj if obj is not None and not obj.archived else None

    def identifiers(self) -> set[str]:
        """Properties an `idProperty` may name: the unique ones, plus email on contacts (HubSpot
        upserts contacts by email though the property is not flagged unique)."""
        names = {name for name, p in self.properties.items() if p.unique}
        return names | ({"email"} if self.object_type == "contacts" else set())

    def find(self, prop: str, value: str) -> SimObject | None:
        if prop == "hs_object_id":
            return self.get(value)
        index = self._unique.get(prop)
        if index is not None:
            found = index.get(self._norm(prop, value))
            return self.get(found) if found is not None else None
        return next((o for o in self if o.properties.get(prop) == value), None)

    def unknown_properties(self, props: dict[str, str]) -> list[str]:
        return [name for name in props if name not in self.properties]

    def invalid_values(self, props: dict[str, str]) -> list[dict[str, Any]]:
        """HubSpot's per-record validation results (e.g. INVALID_EMAIL) for these values."""
        email = props.get("email")
        if self.object_type != "contacts" or not email:
            return []
        if _EMAIL.match(email) and email.lower() not in self.invalid_emails:
            return []
        message = f"Email address {email} is invalid"
        return [{"isValid": False, "message": message, "error": "INVALID_EMAIL", "name": "email"}]

    def clash(self, props: dict[str, str], own_id: int | None) -> tuple[str, str, int] | None:
        """A unique value already held by another record: (property, value, holder id)."""
        for prop, index in self._unique.items():
            value = props.get(prop)
            if value:
                holder = index.get(self._norm(prop, value))
                if holder is not None and holder != own_id:
                    return prop, value, holder
        return None

    # --- writes --------------------------------------------------------------------------

    def create(self, props: dict[str, str], now_ms: int) -> SimObject:
        obj = SimObject(next(self._ids), {}, now_ms, now_ms)
        self.records[obj.id] = obj
        self.update(obj, props, now_ms)
        return obj

    def update(self, obj: SimObject, props: dict[str, str], now_ms: int) -> None:
        """Write values ("" clears one) and bump the modified date, even when nothing changed."""
        for name, value in props.items():
            if name in _SYSTEM:
                continue
            self._unindex(obj, name)
            if value in ("", None):
                obj.properties.pop(name, None)
            else:
                obj.properties[name] = value.lower() if name == "email" else value
                self._index(obj, name)
        self.touch(obj, now_ms)

    def touch(self, obj: SimObject, now_ms: int) -> None:
        obj.modified_ms = now_ms
        self._by_modified = None
        if self.search_lag > 0:
            obj.pending.append((now_ms + int(self.search_lag * 1000), obj.snapshot()))

    def archive(self, obj: SimObject) -> None:
        for name in list(obj.properties):
            self._unindex(obj, name)
        obj.archived = True
        self._by_modified = None

    def add_property(self, prop: PropertyDef) -> None:
        self.properties[prop.name] = prop
        self._reindex_all()

    def in_range(self, low: tuple[int, int], high: tuple[int, int]) -> list[SimObject]:
        """Live records whose (modified ms, id) lies in [low, high], from a sorted index."""
        if self._by_modified is None:
            self._by_modified = sorted((o.modified_ms, o.id) for o in self)
        start = bisect.bisect_left(self._by_modified, low)
        stop = bisect.bisect_right(self._by_modified, high)
        return [self.records[i] for _, i in self._by_modified[start:stop]]

    def searchable(self, now_ms: int) -> Iterator[SimObject]:
        """The records as search sees them `search_lag` seconds after each write."""
        for obj in self.records.values():
            if obj.archived:
                continue
            if self.search_lag <= 0:
                yield obj
                continue
            while obj.pending and obj.pending[0][0] <= now_ms:
                obj.indexed = obj.pending.pop(0)[1]
            if obj.indexed is not None:
                yield obj.indexed

    # --- unique indexes ------------------------------------------------------------------

    def _norm(self, prop: str, value: str) -> str:
        return value.lower() if prop == "email" else value

    def _index(self, obj: SimObject, prop: str) -> None:
        index = self._unique.get(prop)
        value = obj.properties.get(prop)
        if index is not None and value:
            index[self._norm(prop, value)] = obj.id

    def _unindex(self, obj: SimObject, prop: str) -> None:
        index = self._unique.get(prop)
        value = obj.properties.get(prop)
        if index is not None and value:
            index.pop(self._norm(prop, value), None)

    def _reindex_all(self) -> None:
        self._unique = {name: {} for name in self.identifiers()}
        for obj in self:
            for prop in self._unique:
                self._index(obj, prop)


class Associations:
    """Contact ↔ company links. A contact's first company is its primary one."""

    CONTACT_TO_COMPANY = 279
    CONTACT_TO_COMPANY_PRIMARY = 1
    COMPANY_TO_CONTACT = 280
    COMPANY_TO_CONTACT_PRIMARY = 2

    def __init__(self) -> None:
        self._companies: dict[int, list[int]] = {}
        self._contacts: dict[int, list[int]] = {}

    def add(self, contact_id: int, company_id: int) -> bool:
        """Link them; False when they already were."""
        companies = self._companies.setdefault(contact_id, [])
        if company_id in companies:
            return False
        companies.append(company_id)
        self._contacts.setdefault(company_id, []).append(contact_id)
        return True

    def companies_of(self, contact_id: int) -> list[int]:
        return list(self._companies.get(contact_id, []))

    def contacts_of(self, company_id: int) -> list[int]:
        return list(self._contacts.get(company_id, []))

    def defined_types(self, from_type: str, to_type: str) -> tuple[int, ...]:
        """The HubSpot-defined type ids from one object type to the other (primary first)."""
        if (from_type, to_type) == ("contacts", "companies"):
            return (self.CONTACT_TO_COMPANY_PRIMARY, self.CONTACT_TO_COMPANY)
        if (from_type, to_type) == ("companies", "contacts"):
            return (self.COMPANY_TO_CONTACT_PRIMARY, self.COMPANY_TO_CONTACT)
        return ()

    def type_ids(self, contact_id: int, company_id: int, from_contact: bool) -> list[int]:
        primary = self._companies.get(contact_id, [None])[0] == company_id
        if from_contact:
            ids = [self.CONTACT_TO_COMPANY]
            return [self.CONTACT_TO_COMPANY_PRIMARY, *ids] if primary else ids
        ids = [self.COMPANY_TO_CONTACT]
        return [self.COMPANY_TO_CONTACT_PRIMARY, *ids] if primary else ids
