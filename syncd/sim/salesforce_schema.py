"""The simulated org's metadata: Account and Contact with syncd's custom fields, and record ids.

Field lengths and required fields follow the standard objects (Name and LastName are required on
create; BillingCity is 40 characters). The custom fields are the ones syncd's default mapping uses;
in a real org an admin creates them (Setup > Object Manager), so the simulator offers
`add_field`/`drop_field` test hooks rather than a metadata API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EXTERNAL_ID = "Connect_Account_Id__c"
ID_PREFIXES = {"Account": "001", "Contact": "003"}
_CHECKSUM_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


@dataclass(frozen=True)
class FieldSpec:
    """One field as `describe` reports it, plus what the simulator enforces."""

    name: str
    type: str = "string"
    length: int = 255
    external_id: bool = False
    unique: bool = False
    updateable: bool = True
    required: bool = False
    """Must have a value on create and can't be set to null (Name, LastName)."""
    custom: bool = False
    reference_to: str | None = None
    relationship_name: str | None = None
    child_relationship: str | None = None
    """The lookup's name seen from the parent (`Contacts` for Contact.AccountId), used in a
    parent-to-child subquery."""

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.name.removesuffix("__c").replace("_", " "),
            "type": self.type,
            "length": self.length if self.type in _TEXT_TYPES else 0,
            "externalId": self.external_id,
            "unique": self.unique,
            "idLookup": self.external_id or self.name == "Id",
            "nillable": not self.required and self.updateable,
            "createable": self.updateable,
            "updateable": self.updateable,
            "custom": self.custom,
            "referenceTo": [self.reference_to] if self.reference_to else [],
            "relationshipName": self.relationship_name,
        }


_TEXT_TYPES = {"string", "textarea", "email", "phone"}


def _system() -> list[FieldSpec]:
    return [
        FieldSpec("Id", "id", 18, updateable=False),
        FieldSpec("IsDeleted", "boolean", updateable=False),
        FieldSpec("CreatedDate", "datetime", updateable=False),
        FieldSpec("LastModifiedDate", "datetime", updateable=False),
        FieldSpec("SystemModstamp", "datetime", updateable=False),
    ]


def default_schemas() -> dict[str, dict[str, FieldSpec]]:
    """Account and Contact as syncd expects them: both carry the unique external id."""
    account = [
        *_system(),
        FieldSpec("Name", required=True),
        FieldSpec("BillingStreet", "textarea"),
        FieldSpec("BillingCity", length=40),
        FieldSpec("BillingState", length=80),
        FieldSpec("BillingPostalCode", length=20),
        FieldSpec("BillingCountry", length=80),
        FieldSpec("Phone", "phone", 40),
        FieldSpec("Website", "url"),
        FieldSpec(EXTERNAL_ID, external_id=True, unique=True, custom=True),
        FieldSpec("Connect_Tax_Id__c", custom=True),
    ]
    contact = [
        *_system(),
        FieldSpec("FirstName", length=40),
        FieldSpec("LastName", length=80, required=True),
        FieldSpec("Email", "email", 80),
        FieldSpec("Phone", "phone", 40),
        FieldSpec(
            "AccountId",
            "reference",
            18,
            reference_to="Account",
            relationship_name="Account",
            child_relationship="Contacts",
        ),
        FieldSpec(EXTERNAL_ID, external_id=True, unique=True, custom=True),
    ]
    return {
        "Account": {f.name: f for f in account},
        "Contact": {f.name: f for f in contact},
    }


def record_id(sobject: str, number: int) -> str:
    """An 18-character id: key prefix, a serial number, and Salesforce's case-safe suffix."""
    base = f"{ID_PREFIXES[sobject]}Sm{number:010d}"
    suffix = ""
    for start in range(0, 15, 5):
        chunk = base[start : start + 5]
        bits = sum(1 << i for i, char in enumerate(chunk) if "A" <= char <= "Z")
        suffix += _CHECKSUM_CHARS[bits]
    return base + suffix


def child_relationships(
    schemas: dict[str, dict[str, FieldSpec]], parent: str
) -> dict[str, tuple[str, str]]:
    """`parent`'s child relationships: name -> (child object, lookup field on the child)."""
    return {
        spec.child_relationship: (child, spec.name)
        for child, fields in schemas.items()
        for spec in fields.values()
        if spec.reference_to == parent and spec.child_relationship
    }


def describe(
    sobject: str, fields: dict[str, FieldSpec], children: dict[str, tuple[str, str]] | None = None
) -> dict[str, Any]:
    """The body of `GET /sobjects/{type}/describe` (the parts a client reads)."""
    return {
        "name": sobject,
        "label": sobject,
        "keyPrefix": ID_PREFIXES[sobject],
        "custom": False,
        "createable": True,
        "updateable": True,
        "queryable": True,
        "fields": [spec.describe() for spec in fields.values()],
        "childRelationships": [
            {"childSObject": child, "field": field, "relationshipName": name}
            | {"cascadeDelete": False}
            for name, (child, field) in (children or {}).items()
        ],
        "urls": {"describe": f"/services/data/v62.0/sobjects/{sobject}/describe"},
    }
