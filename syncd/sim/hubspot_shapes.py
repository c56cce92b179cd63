"""The JSON shapes HubSpot answers with: batch envelopes, error bodies, timestamps.

Shapes follow HubSpot's official v3 specs for companies and contacts (`BatchResponse*`,
`SimplePublicObject*`, `Error`, `StandardError`) and its error-handling guide. Field names are
theirs, so the simulator's answers validate against those schemas (see the conformance tests).
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import Any

from syncd.sim.base import Response

JsonDict = dict[str, Any]

RATE_LIMIT_MESSAGES = {
    "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
    "SECONDLY": "You have reached your secondly limit.",
    "DAILY": "You have reached your daily limit.",
}

# Bodies sent with an injected status when the fault gives none.
_STATUS_ERRORS = {
    400: ("VALIDATION_ERROR", "Invalid input."),
    401: (
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
    ),
    403: (
        "MISSING_SCOPES",
        "This app hasn't been granted all required scopes to make this call.",
    ),
    404: ("OBJECT_NOT_FOUND", "resource not found"),
    409: ("CONFLICT", "Conflict."),
    423: ("LOCKED", "The record is locked by another operation; retry in a few seconds."),
    477: ("MIGRATION_IN_PROGRESS", "The account is being migrated; retry later."),
}


@functools.lru_cache(maxsize=65_536)
def iso(ms: int) -> str:
    """Epoch milliseconds as HubSpot writes them: ISO 8601, UTC, millisecond precision."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_time_ms(value: str) -> int | None:
    """A filter value for a date property: epoch milliseconds, an ISO instant or a date."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def correlation_id() -> str:
    return str(uuid.uuid4())


def error_body(
    message: str,
    category: str,
    *,
    errors: list[JsonDict] | None = None,
    context: dict[str, list[str]] | None = None,
    sub_category: str | None = None,
) -> JsonDict:
    """HubSpot's generic error body (the spec's `Error`): every field but these is optional."""
    body: JsonDict = {
        "status": "error",
        "message": message,
        "correlationId": correlation_id(),
        "category": category,
    }
    if sub_category:
        body["subCategory"] = sub_category
    if errors:
        body["errors"] = errors
    if context:
        body["context"] = context
    return body


def error(status: int, message: str, category: str, **extra: Any) -> Response:
    return Response(status, error_body(message, category, **extra))


def status_error(status: int, headers: dict[str, str] | None = None) -> Response:
    """The body HubSpot sends with a bare status (used for injected faults)."""
    if status == 429:
        return Response(429, rate_limit_body("TEN_SECONDLY_ROLLING"), headers or {})
    category, message = _STATUS_ERRORS.get(status, ("INTERNAL_ERROR", "internal error"))
    if status >= 500 and status not in _STATUS_ERRORS:
        message = f"HTTP {status}: the server could not complete the request; retry later."
    return Response(status, error_body(message, category), headers or {})


def rate_limit_body(policy: str) -> JsonDict:
    """The 429 body, as HubSpot's SDK tests show it. `category` is added (some variants carry
    `RATE_LIMITS`) so that the body also satisfies the spec's `Error` schema."""
    return {
        "status": "error",
        "message": RATE_LIMIT_MESSAGES.get(policy, "You have reached your rate limit."),
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(),
        "policyName": policy,
        "category": "RATE_LIMITS",
    }


def standard_error(category: str, message: str, context: dict[str, list[str]]) -> JsonDict:
    """One entry of a 207's `errors[]` (the spec's `StandardError`, all required fields)."""
    return {
        "status": "error",
        "category": category,
        "message": message,
        "context": context,
        "errors": [],
        "links": {},
    }


def batch_response(results: list[JsonDict], errors: list[JsonDict], started_ms: int) -> Response:
    """200 with `status: COMPLETE`, or 207 Multi-Status with `errors` and `numErrors`."""
    body: JsonDict = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso(started_ms),
        "completedAt": iso(started_ms),
    }
    if errors:
        body["errors"] = errors
        body["numErrors"] = len(errors)
        return Response(207, body)
    return Response(200, body)
