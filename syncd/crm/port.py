"""The one port every CRM adapter implements, and the values that cross it.

An account is one CRM "company" (HubSpot) or "Account" (Salesforce), keyed by the TA id, plus the
account's contact, linked to it. Every write answers per record: done, retry later, rejected (with
the CRM's reason), or unknown (the response was lost; settle it by reading back, never by a blind
create).

`read` and `upsert` may be called at the same time from two threads (the push phase reads the
next batch while it writes the current one): adapters keep their shared state thread-safe.
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
    contact_read: bool = True
    """False when `read` was told the contact was not needed and did not read it: then
    `contact_id` and `contact` say nothing about the CRM's contact."""


@dataclass(frozen=True)
class Upsert:
    """The wanted state of one account; only the fields given are written."""

    key: str
    fields: Fields
    contact: Fields | None = None
    crm_id: str | None = None
    """The account record's CRM id when a read just found it. With it, an upsert whose `fields`
    hold only the key leaves the account record unwritten. None means the read found none (or
    none was made): an adapter may then create the record, as long as a record that exists
    after all is refused by its key and upserted instead (never created twice)."""
    contact_id: str | None = None
    """The CRM id of the contact a read just found linked to this account, when it is the
    contact being written (same contact key). None means "not known to be linked": the adapter
    then creates and links it, falling back to upsert and link when it exists after all."""


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

    def read(
        self, keys: Sequence[str], skip_contacts: Mapping[str, str] | None = None
    ) -> dict[str, CrmRecord]:
        """The records for `keys` (TA ids) that exist, in as few calls as the API allows.

        `skip_contacts` maps TA ids to the account record id the caller linked last time; for
        those whose record still has that id the caller does not need the contact, and an
        adapter for which the contact costs calls of its own may leave it unread
        (`contact_read=False`)."""
        ...

    def upsert(self, items: Sequence[Upsert]) -> list[WriteResult]:
        """Create or update by key; one result per item, in order."""
        ...

    def changed_since(self, since: datetime) -> Iterator[CrmRecord]:
        """Every account record modified at or after `since`, however many there are."""
        ...
