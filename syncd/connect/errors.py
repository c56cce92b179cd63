"""Connect errors, each classified once by what the caller should do about it.

* `RetriableError` (`kind == "retriable"`): 408, 429, 5xx, timeouts, dropped connections. Try again
  later; the client has already retried within its budget. `OutcomeUnknown` is the write whose
  answer was lost: read the record back before doing anything else.
* `FatalError` (`kind == "fatal"`): 401, 403, or a configuration that cannot work (unknown host
  name, certificate refused, unsupported URL). Stop the run; retrying cannot help.
* `RecordError` (`kind == "record"`): any other 4xx. Connect refused the request about one record
  (e.g. 400 `VAL_001` on accepting a TAR that is no longer pending, 404); carry on with the rest.
* `MalformedResponse` (`kind == "retriable"`): a 2xx whose body is not JSON, not the expected shape,
  or a `Content-Range` that contradicts the body. `body` keeps what came, for the record.

Connect's error body is `{"error_code": "VAL_001", "errors": ["status: ..."], ...}` (SPEC
`dp.create_400`; OAC `exceptions.py`); messages read `POST /path: 400 VAL_001 - status: ...`.
Messages, `errors` and `body` never hold the API key: the client passes every text it puts in an
error through `Redactor`.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Literal

Kind = Literal["retriable", "fatal", "record"]
BODY_EXCERPT = 2000
"""Characters of a response body kept on an error."""
MALFORMED_EXCERPT = 100_000
"""Characters kept of a 2xx body that cannot be used (a page whose records are then kept as
received in the ledger): as many as a ledger payload holds (`syncd.store.runs.PAYLOAD_MAX`)."""
_SUMMARY = 200


class ConnectError(Exception):
    """A failed Connect request. `str()` is the message; `kind` says how to react."""

    kind: ClassVar[Kind] = "retriable"

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        error_code: str | None = None,
        errors: Sequence[str] = (),
        body: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.path = path
        self.status = status
        """HTTP status, or None when no response came."""
        self.error_code = error_code
        self.errors: list[str] = list(errors)
        self.body = body
        """Up to `BODY_EXCERPT` characters of the response body, as received (key redacted)."""
        self.retry_after = retry_after
        """Seconds the server asked to wait (`Retry-After`), when it did."""


class RetriableError(ConnectError):
    """Transient: 408, 429, 5xx, timeouts, connection errors. The retry budget is spent."""

    kind: ClassVar[Kind] = "retriable"


class OutcomeUnknown(RetriableError):
    """A POST/PUT was sent (or may have been) but its answer was lost. It was not repeated:
    read the record back to learn whether it took effect."""


class FatalError(ConnectError):
    """401, 403 or a configuration that cannot work: stop, retrying cannot help."""

    kind: ClassVar[Kind] = "fatal"


class RecordError(ConnectError):
    """Connect refused this request about one record (a 4xx other than 401/403/408/429)."""

    kind: ClassVar[Kind] = "record"


class MalformedResponse(ConnectError):
    """A successful status with a body that is not what the API promises."""

    kind: ClassVar[Kind] = "retriable"


def error_class(status: int) -> type[ConnectError]:
    """The class an HTTP error status maps to (never called for 2xx)."""
    if status in (401, 403):
        return FatalError
    if status in (408, 429) or status >= 500:
        return RetriableError
    if 400 <= status < 500:
        return RecordError
    return MalformedResponse  # 1xx/3xx left after redirects: not an answer we can use


class Redactor:
    """Replaces the API key, and its secret part, wherever it appears in a text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first so the full key is replaced before a part of it.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        return "Redactor(***)"


def body_excerpt(body: bytes, redact: Redactor, limit: int = BODY_EXCERPT) -> str:
    """The first `limit` characters of `body`, undecodable bytes replaced, key redacted.

    Redaction runs on a wider window than is kept, so a key straddling the cut is still caught.
    """
    window = body[: limit * 4 + 4096].decode("utf-8", errors="replace")
    return redact(window)[:limit]


def parse_error_body(body: bytes) -> tuple[str | None, list[str]] | None:
    """`(error_code, errors)` from a Connect error body, or None if it is not one."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not ({"error_code", "errors"} & data.keys()):
        return None
    code = data.get("error_code")
    raw = data.get("errors")
    if isinstance(raw, list):
        errors = [e if isinstance(e, str) else json.dumps(e) for e in raw]
    elif raw is None:
        errors = []
    else:
        errors = [raw if isinstance(raw, str) else json.dumps(raw)]
    return (str(code) if code is not None else None), errors


_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.DOTALL | re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def summarize_text(text: str) -> str:
    """A one-line summary of a non-JSON body, such as an HTML error page from a proxy."""
    plain = _SPACE.sub(" ", html.unescape(_TAG.sub(" ", text))).strip()
    return plain if len(plain) <= _SUMMARY else plain[: _SUMMARY - 1] + "…"


def http_error(
    method: str,
    path: str,
    status: int,
    reason: str,
    body: bytes,
    redact: Redactor,
    *,
    retry_after: float | None = None,
    cls: type[ConnectError] | None = None,
) -> ConnectError:
    """The classified error for an HTTP error response, with a message naming the request."""
    cls = cls or error_class(status)
    text = body_excerpt(body, redact)
    parsed = parse_error_body(body)
    code: str | None = None
    errors: list[str] = []
    head = f"{method} {path}: {status}"
    if parsed is not None:
        code, errors = parsed
        code = redact(code) if code else None
        errors = [redact(e) for e in errors]
        message = f"{head} {code or reason}".rstrip()
        if errors:
            message += " - " + "; ".join(errors)
    else:
        summary = summarize_text(text)
        message = f"{head} {reason}".rstrip() + (f" - {summary}" if summary else "")
    return cls(
        message,
        method=method,
        path=path,
        status=status,
        error_code=code,
        errors=errors,
        body=text,
        retry_after=retry_after,
    )
