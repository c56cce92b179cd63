"""The mapping's value types: one `FieldMap` per CRM property, grouped in a `Mapping`.

They check themselves when built, so a mapping that exists is one syncd can run: known transforms,
source paths that a tier account can have, one source per property, the upsert keys mapped.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Final, get_args

from syncd.domain.diff import FieldRule, Owner, Policy
from syncd.domain.transforms import JOINS, TRANSFORMS, Transform


class MappingError(ValueError):
    """A mapping syncd cannot run with; the message names the property at fault."""


_OPEN: Final = "*"
"""A shape whose inner paths are not checked."""

_PHONE: Final = {"country_code": None, "area_code": None, "phone_number": None, "extension": None}
_REFERENCE: Final = {"id": None, "name": None, "external_id": None, "icon": None}

TA_SHAPE: Final[dict[str, object]] = {
    # The tier account's fields (v37 spec, `dp.TierAccountDetail`, plus the legacy `marketplace`),
    # so that a typo in a source path stops syncd at start instead of mapping None for ever.
    "id": None,
    "version": None,
    "name": None,
    "type": None,
    "db": None,
    "external_id": None,
    "external_uid": None,
    "environment": None,
    "tax_id": None,
    "scopes": None,
    "parent": _REFERENCE,
    "owner": _REFERENCE,
    "hub": _REFERENCE,
    "marketplace": _REFERENCE,
    "events": _OPEN,
    "contact_info": {
        "address_line1": None,
        "address_line2": None,
        "city": None,
        "state": None,
        "postal_code": None,
        "country": None,
        "contact": {"first_name": None, "last_name": None, "email": None, "phone_number": _PHONE},
    },
}


def check_path(path: str) -> None:
    """Raise MappingError unless `path` (dotted) is a place a tier account can hold a value."""
    shape: object = TA_SHAPE
    for depth, segment in enumerate(path.split(".")):
        if shape == _OPEN:
            return
        if not isinstance(shape, dict) or segment not in shape:
            known = ", ".join(sorted(shape)) if isinstance(shape, dict) else "nothing"
            where = ".".join(path.split(".")[:depth]) or "a tier account"
            raise MappingError(f"no field {segment!r} in {where} (it has: {known})")
        shape = shape[segment]


@dataclass(frozen=True)
class FieldMap:
    """One CRM property, filled from one source path of the TA (several for the join transforms).

    `owner` says which side's edits win: "connect" fields are written to the CRM; "crm" fields are
    only seeded when the record is created, and their CRM edits go back to Connect. `policy` settles
    a CRM edit to a connect-owned field (None: `connect_wins`).
    """

    source: str | tuple[str, ...]
    target: str
    transform: str | None = None
    owner: Owner = "connect"
    policy: Policy | None = None

    def __post_init__(self) -> None:
        if not self.target.strip():
            raise MappingError("a property name is empty")
        if self.transform not in TRANSFORMS:
            known = ", ".join(sorted(t for t in TRANSFORMS if t))
            raise MappingError(f"{self.target}: unknown transform {self.transform!r} ({known})")
        if self.owner not in get_args(Owner):
            raise MappingError(f"{self.target}: owner must be connect or crm, not {self.owner!r}")
        if self.policy is not None and self.policy not in get_args(Policy):
            raise MappingError(f"{self.target}: unknown policy {self.policy!r}")
        if self.owner == "crm" and self.policy not in (None, "crm_wins"):
            raise MappingError(f"{self.target}: a crm-owned field cannot have policy {self.policy}")
        if not self.paths:
            raise MappingError(f"{self.target}: no source path")
        if len(self.paths) > 1 and self.transform not in JOINS:
            raise MappingError(f"{self.target}: several sources need join_lines or join_comma")
        for path in self.paths:
            try:
                check_path(path)
            except MappingError as exc:
                raise MappingError(f"{self.target}: source {path!r}: {exc}") from None

    @property
    def paths(self) -> tuple[str, ...]:
        """The source paths, in order."""
        return (self.source,) if isinstance(self.source, str) else self.source

    @cached_property
    def segments(self) -> tuple[tuple[str, ...], ...]:
        """Each source path split at its dots; computed once, as `apply` runs for every account."""
        return tuple(tuple(path.split(".")) for path in self.paths)

    @cached_property
    def convert(self) -> Transform:
        """The transform's function."""
        return TRANSFORMS[self.transform]

    @property
    def rule(self) -> FieldRule:
        """Owner and policy, as the diff takes them."""
        return FieldRule(self.owner, self.policy)


@dataclass(frozen=True)
class Mapping:
    """How one CRM's account record and contact record are filled from a TA.

    `key_property` is the account property holding the TA id (the upsert key); it must be mapped
    from `id`, owned by Connect. `contact_key_property` is the contact's upsert key (HubSpot:
    `email`; Salesforce: the TA id again); it must be mapped when any contact field is.
    """

    crm: str
    account: tuple[FieldMap, ...]
    contact: tuple[FieldMap, ...]
    key_property: str
    contact_key_property: str

    def __post_init__(self) -> None:
        _check_fields("account", self.account, self.key_property)
        if self.contact:
            _check_fields("contact", self.contact, self.contact_key_property)
        key = next(f for f in self.account if f.target == self.key_property)
        if key.paths != ("id",) or key.transform is not None:
            raise MappingError(f"account.{self.key_property}: the upsert key must be the TA id")

    def account_rules(self) -> dict[str, FieldRule]:
        """Owner and policy of every account property, for the diff."""
        return {f.target: f.rule for f in self.account}

    def contact_rules(self) -> dict[str, FieldRule]:
        """Owner and policy of every contact property, for the diff."""
        return {f.target: f.rule for f in self.contact}


def _check_fields(record: str, fields: tuple[FieldMap, ...], key: str) -> None:
    seen: set[str] = set()
    for fieldmap in fields:
        if fieldmap.target in seen:
            raise MappingError(f"{record}.{fieldmap.target}: mapped twice")
        seen.add(fieldmap.target)
    key_field = next((f for f in fields if f.target == key), None)
    if key_field is None:
        raise MappingError(f"{record}.{key}: the upsert key property is not mapped")
    if key_field.owner != "connect":
        raise MappingError(f"{record}.{key}: the upsert key must be owned by connect")
