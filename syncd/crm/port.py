"""The one port every CRM adapter implements, and the values that cross it.

An account is one CRM "company" (HubSpot) or "Account" (Salesforce), keyed by the TA id, plus the
account's contact, linked to it. Every write answers per record: done, retry later, rejected (with
the CRM's reason), or unknown (the response was lost; settle it by reading back, never by a blind
create).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

Fields = Mapping[str, str | None]


class Outcome(StrEnum):
    DONE = "done"
    RETRY = "retry"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class CrmRecord:
    """What the CRM holds for one account."""

    key: str
    """The TA id (`connect_account_id` / `Connect_Account_Id__c`)."""
    crm_id: str
    fields: Fields
    contact_id: str | None = None
    contact: Fields = field(default_factory=dict)
    modified_at: datetime | None = None


@dataclass(frozen=True)
class Upsert:
    """The wanted state of one account; only the fields given are written."""

    key: str
    fields: Fields
    contact: Fields | None = None


@dataclass(frozen=True)
class WriteResult:
    key: str
    outcome: Outcome
    crm_id: str | None = None
    contact_id: str | None = None
    reason: str | None = None
    retry_after: float | None = None


class CrmError(Exception):
    """A failure of a whole call that retries could not mend. `fatal` means stop the run
    (credentials, configuration); otherwise the records involved are retried next cycle."""

    def __init__(self, message: str, *, fatal: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.fatal = fatal
        self.status = status


class CrmPort(Protocol):
    name: str
    batch_size: int
    """Records per write call (HubSpot 100, Salesforce 200)."""

    def properties(self) -> set[str]:
        """Names of the account properties the CRM has, for checking the mapping at start."""
        ...

    def contact_properties(self) -> set[str]:
        """Names of the contact properties the CRM has."""
        ...

    def setup(self) -> list[str]:
        """Create what syncd needs in the CRM (custom properties) when missing; say what it did."""
        ...

    def read(self, keys: Sequence[str]) -> dict[str, CrmRecord]:
        """The records for `keys` (TA ids) that exist, in as few calls as the API allows."""
        ...

    def upsert(self, items: Sequence[Upsert]) -> list[WriteResult]:
        """Create or update by key; one result per item, in order."""
        ...

    def changed_since(self, since: datetime) -> Iterator[CrmRecord]:
        """Every account record modified at or after `since`, however many there are."""
        ...
