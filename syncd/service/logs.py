"""Log setup: events with fields, as JSON lines when stderr is not a terminal.

Code logs an event name as the message and its fields as `extra`:
`logger.info("page_fetched", extra={"offset": 100})`. Every line also carries the fields bound
with `bind` (`run_id` for a cycle, `account_id` while a record is processed), and every line,
fields and exception text included, goes through the secret filter (`syncd.logcontext.redact`)
before it is written: the settings' secret values are registered by `configure`.

A JSON line holds `at` (UTC, milliseconds), `level`, `logger`, `event`, the bound fields, the
event's own fields and, when there was one, `exception` (the traceback as text).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy.engine import make_url

from syncd.config import SECRET_FIELDS, Settings
from syncd.logcontext import bind, bound, redact, register_secrets

__all__ = [
    "ConsoleFormatter",
    "ContextFilter",
    "JsonFormatter",
    "bind",
    "configure",
    "secret_values",
]

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_CLEAR_LINE = "\r\x1b[K"
"""Return to the start of the line and clear it: a log line replaces a progress bar drawn there."""


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class ContextFilter(logging.Filter):
    """Copies the bound context into each record (a field the call gave itself wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in bound().items():
            if key not in record.__dict__:
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; secret values masked in the finished line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(line, default=str))


class ConsoleFormatter(logging.Formatter):
    """`HH:MM:SS level event key=value …`, for a terminal; secret values masked."""

    def __init__(self, clear_line: bool = False) -> None:
        super().__init__()
        self.prefix = _CLEAR_LINE if clear_line else ""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={_show(v)}" for k, v in _fields(record).items())
        moment = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        text = f"{moment} {record.levelname.lower():7} {record.getMessage()} {fields}".rstrip()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return self.prefix + redact(text)


def _show(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, separators=(",", ":"))
    return str(value)


def secret_values(settings: Settings) -> list[str]:
    """Every secret value of `settings`, with the parts that are secrets on their own: the
    database password (and the URL, when it holds one), the Connect key's secret after `SU-…:`."""
    values: list[str] = []
    for name in SECRET_FIELDS:
        secret = getattr(settings, name, None)
        if secret is None:
            continue
        value = secret.get_secret_value()
        if name == "database_url":
            # The URL is a secret for its password only: without one it stays readable.
            try:
                password = make_url(value).password
            except Exception:  # noqa: BLE001 - the settings validated it; never fail logging setup
                password = value
            if password:
                values += [value, str(password)]
            continue
        values.append(value)
        if name == "connect_api_key":
            # "ApiKey SU-…:secret" or "SU-…:secret": the part after the colon is the secret.
            values.append(value.removeprefix("ApiKey ").strip())
            values.append(value.rpartition(":")[2].strip())
    return [v for v in values if v]


def configure(
    level: str = "INFO",
    stream: TextIO | None = None,
    *,
    secrets: Iterable[str] = (),
) -> None:
    """Send log lines to `stream` (stderr): for a terminal as text, else as JSON lines, with the
    bound context, and with `secrets` (and any registered before) masked."""
    register_secrets(secrets)
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    tty = stream.isatty()
    handler.setFormatter(ConsoleFormatter(clear_line=True) if tty else JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
