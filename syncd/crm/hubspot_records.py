"""Small pure helpers of the HubSpot adapter: per-record outcomes and HubSpot's error bodies."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from syncd.crm.port import Outcome, WriteResult

# Error categories of a 207 entry worth another try later; the rest are the record's own fault.
_RETRYABLE_CATEGORIES = frozenset(
    {"RATE_LIMITS", "RATE_LIMIT", "LOCKED", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT"}
)
_RETRYABLE_STATUSES = frozenset({"423", "429", "477", "500", "502", "503", "504", "524"})
_INVALID_VALUES = "Property values were not valid: "


@dataclass(frozen=True)
class Written:
    """What happened to one input of a batch call."""

    outcome: Outcome
    id: str | None = None
    reason: str | None = None
    retry_after: float | None = None
    conflict: bool = False
    """A create refused because the unique value exists already (409): upsert it instead."""

    def result(self, key: str) -> WriteResult:
        return WriteResult(
            key, self.outcome, crm_id=self.id, reason=self.reason, retry_after=self.retry_after
        )


def to_properties(fields: Mapping[str, str | None] | None) -> dict[str, str]:
    """Values to write; None clears a value (HubSpot clears a property given "")."""
    return {k: v or "" for k, v in (fields or {}).items()}


def is_retryable(error: Mapping[str, Any]) -> bool:
    return (
        str(error.get("category")) in _RETRYABLE_CATEGORIES
        or str(error.get("status")) in _RETRYABLE_STATUSES
    )


def error_targets(
    error: Mapping[str, Any], trace_of: Mapping[str, str], norm: Callable[[str], str]
) -> list[str]:
    """The trace ids a 207 error entry is about: by `objectWriteTraceId` in its context, else by
    the ids it names. A context of another shape names none (its records get no result)."""
    context = error.get("context")
    if not isinstance(context, Mapping):
        return []
    traces = set(trace_of.values())
    named = [t for t in _strings(context.get("objectWriteTraceId")) if t in traces]
    if named:
        return named
    return [trace_of[k] for i in _strings(context.get("ids")) if (k := norm(i)) in trace_of]


def _strings(value: Any) -> list[str]:
    """The strings of a list in an error's context (HubSpot sends lists of strings)."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def reason_of(error: Mapping[str, Any]) -> str:
    """HubSpot's reason, readable: the validation results inside "Property values were not
    valid: [...]" become "Email address x is invalid (INVALID_EMAIL)"."""
    message = str(error.get("message") or error.get("category") or "refused by HubSpot")
    if not message.startswith(_INVALID_VALUES):
        return message
    try:
        details = json.loads(message.removeprefix(_INVALID_VALUES))
    except ValueError:
        return message
    parts = [
        f"{d.get('message')} ({d.get('error')})"
        for d in details
        if isinstance(d, dict) and d.get("message")
    ]
    return "; ".join(parts) if parts else message


def pick_contact(rows: list[dict[str, Any]]) -> str | None:
    """The id of the most recently `modified` (epoch ms) row; ties go to the newest record."""

    def rank(row: dict[str, Any]) -> tuple[int, int]:
        ident = str(row["id"])
        return int(row.get("modified") or 0), int(ident) if ident.isdigit() else 0

    best = max(rows, key=rank, default=None)
    return None if best is None else str(best["id"])
