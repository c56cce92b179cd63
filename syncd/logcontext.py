"""What every log line carries, and what none may carry.

- Context: `bind(run_id=…)` adds fields to every log line emitted inside the `with` block, in
  this thread and in threads started with a copy of the context (`contextvars.copy_context`).
  Fields given to one call (`extra=`) win over bound ones of the same name.
- Secrets: the entrypoint registers the configured secret values once (`register_secrets`);
  `redact` replaces them, in the forms a text may hold them (as given, JSON-escaped,
  percent-encoded), wherever they appear. The log formatters run every line through it, and the
  cycle its stored error text: a safety net behind the adapters' own care.

Kept apart from `syncd.service.logs` (the handlers and formats) so that the phases can bind
context without importing the service layer, as they reach `syncd.crashpoints`.
"""

from __future__ import annotations

import contextvars
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_SECRET = 4
"""Shorter values are not registered: masking every `abc` in every line would hide more than it
protects (and no real key or password is that short)."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "syncd_log_context", default=_EMPTY
)
_lock = threading.Lock()
_secrets: tuple[str, ...] = ()


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add `fields` to every log line emitted inside the block (nested binds add up)."""
    token = _context.set(MappingProxyType({**_context.get(), **fields}))
    try:
        yield
    finally:
        _context.reset(token)


def bound() -> Mapping[str, Any]:
    """The fields bound in the current context."""
    return _context.get()


def _forms(secret: str) -> set[str]:
    """The ways a text may hold `secret`: as is, inside a JSON string, percent-encoded in a URL."""
    forms = {secret, json.dumps(secret)[1:-1]}
    # Lone surrogates (undecodable bytes in the environment) have no percent-encoded form.
    with suppress(UnicodeEncodeError):
        forms |= {quote(secret, safe=""), quote_plus(secret)}
    return {form for form in forms if len(form) >= MIN_SECRET}


def register_secrets(values: Iterable[str | None]) -> None:
    """Add secret values to those `redact` masks (idempotent; empty and short values ignored)."""
    global _secrets
    with _lock:
        known = set(_secrets)
        for value in values:
            if value and len(value.strip()) >= MIN_SECRET:
                known |= _forms(value.strip()) | _forms(value)
        # Longest first, so a whole key is masked before a part of it is.
        _secrets = tuple(sorted(known, key=len, reverse=True))


def clear_secrets() -> None:
    """Forget every registered secret (tests)."""
    global _secrets
    with _lock:
        _secrets = ()


def redact(text: str) -> str:
    """`text` with every registered secret replaced by `***`."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text
