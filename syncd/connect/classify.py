"""Which failures the client may repeat, and the error each one becomes.

A request that never left (no connection, pool timeout) is safe to repeat whatever its method. A
request that may have reached Connect and lost its answer (read timeout, connection reset, server
closed without answering, a gateway error) is safe to repeat only when it is idempotent: GET. For a
POST/PUT it becomes `OutcomeUnknown`, and the caller settles it by reading the record back (a blind
repeat of `…/accept` would answer 400 "not pending" even when the first one worked).
"""

from __future__ import annotations

import socket
import ssl

import httpx

from syncd.connect.errors import (
    ConnectError,
    FatalError,
    OutcomeUnknown,
    Redactor,
    RetriableError,
)

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})

# Raised before any byte of the request was written.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

# Statuses that say the request was not processed: too many requests, not ready, too slow to
# arrive. Other 5xx (500, 502, 504) may come after the work was done.
_NOT_PROCESSED = frozenset({408, 429, 503})

# getaddrinfo errors that mean "this name does not exist", as opposed to EAI_AGAIN (try again).
_UNKNOWN_NAME = frozenset(
    code for code in (getattr(socket, n, None) for n in ("EAI_NONAME", "EAI_NODATA")) if code
)


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def is_misconfiguration(exc: httpx.RequestError) -> bool:
    """True when repeating cannot help: a host name that does not resolve, a certificate that is
    refused, a URL scheme httpx cannot speak, a request httpx refuses to write."""
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return True
    for cause in _causes(exc):
        if isinstance(cause, socket.gaierror) and cause.errno in _UNKNOWN_NAME:
            return True
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
    return False


def may_repeat_status(method: str, status: int) -> bool:
    """True when a retriable status may be answered by sending the request again."""
    return method in IDEMPOTENT or status in _NOT_PROCESSED


def transport_error(
    method: str, path: str, exc: httpx.RequestError, redact: Redactor
) -> tuple[ConnectError, bool]:
    """The error for a request that got no response, and whether repeating it is allowed."""
    detail = f"{type(exc).__name__}: {redact(str(exc)).rstrip('.') or 'no detail'}"
    head = f"{method} {path}"
    if is_misconfiguration(exc):
        return FatalError(f"{head}: {detail}", method=method, path=path), False
    if method in IDEMPOTENT or isinstance(exc, _NOT_SENT):
        return RetriableError(f"{head}: {detail}", method=method, path=path), True
    message = f"{head}: outcome unknown after {detail}; not repeated, read the record back"
    return OutcomeUnknown(message, method=method, path=path), False
