"""Log lines: bound context on every line, secrets masked wherever they appear, the run summary."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd import logcontext
from syncd.config import load_settings
from syncd.service import logs
from syncd.sync.cycle import brief_counts
from syncd.sync.prefetch import prefetch

logger = logging.getLogger("syncd.test")

PASSWORD = "pg-Pa55w0rd@x/y"
URL = "postgresql+psycopg://syncd:pg-Pa55w0rd%40x%2Fy@db.example:5432/syncd"
API_KEY = "SU-123-456-789:connect-sekrit-0042"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """JSON log lines in a buffer; logging and the secret registry restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer = io.StringIO()
    logs.configure("DEBUG", buffer)
    yield buffer
    root.handlers[:], level = saved
    root.setLevel(level)
    logcontext.clear_secrets()


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


# -- context -----------------------------------------------------------------------------------


def test_every_line_inside_a_bind_carries_its_fields_and_none_after(stream: io.StringIO) -> None:
    with logcontext.bind(run_id=7):
        logger.info("page_fetched", extra={"offset": 100})
    logger.info("after")

    inside, after = lines(stream)
    assert inside["event"] == "page_fetched"
    assert inside["run_id"] == 7
    assert inside["offset"] == 100
    assert "run_id" not in after


def test_nested_binds_add_up_and_a_field_of_the_call_wins(stream: io.StringIO) -> None:
    with logcontext.bind(run_id=7, account_id="TA-1"):
        with logcontext.bind(account_id="TA-2", tar_id="TAR-2"):
            logger.info("tar_accepted", extra={"tar_id": "TAR-given"})
        logger.info("back")

    nested, back = lines(stream)
    assert (nested["run_id"], nested["account_id"], nested["tar_id"]) == (7, "TA-2", "TAR-given")
    assert back["account_id"] == "TA-1"
    assert "tar_id" not in back


def test_the_prefetch_worker_logs_with_the_context_of_its_consumer(stream: io.StringIO) -> None:
    def pages() -> Iterator[int]:
        for page in range(2):
            logger.info("page_checked", extra={"page": page})
            yield page

    with logcontext.bind(run_id=9):
        assert list(prefetch(pages())) == [0, 1]

    assert [(line["page"], line["run_id"]) for line in lines(stream)] == [(0, 9), (1, 9)]


def test_a_plain_thread_does_not_inherit_the_context(stream: io.StringIO) -> None:
    with logcontext.bind(run_id=9):
        thread = threading.Thread(target=lambda: logger.info("elsewhere"))
        thread.start()
        thread.join()

    assert "run_id" not in lines(stream)[0]


def test_on_a_terminal_a_line_clears_the_progress_bar_and_shows_fields_as_text() -> None:
    record = logging.LogRecord("syncd", logging.INFO, "", 0, "batch_pushed", (), None)
    record.accounts = 200
    record.counts = {"created": 1}

    text = logs.ConsoleFormatter(clear_line=True).format(record)

    assert text.startswith("\r\x1b[K")
    assert text.endswith('info    batch_pushed accounts=200 counts={"created":1}')


# -- secrets -----------------------------------------------------------------------------------


def test_secret_values_of_the_settings_include_the_parts_that_are_secrets_alone() -> None:
    settings = load_settings(database_url=URL, connect_api_key=API_KEY, hubspot_token="pat-1234")

    values = logs.secret_values(settings)

    assert {URL, PASSWORD, API_KEY, "connect-sekrit-0042", "pat-1234"} <= set(values)


def test_a_database_url_without_a_password_is_no_secret() -> None:
    settings = load_settings(database_url="postgresql+psycopg://syncd@db.example/syncd")

    assert logs.secret_values(settings) == []


def test_a_registered_secret_is_masked_in_the_message_the_fields_and_the_traceback(
    stream: io.StringIO,
) -> None:
    settings = load_settings(database_url=URL, connect_api_key=API_KEY)
    logcontext.register_secrets(logs.secret_values(settings))

    logger.info(f"connecting to {URL}", extra={"key": API_KEY, "nested": {"url": URL}})
    try:
        raise RuntimeError(f"could not connect to {URL} with password {PASSWORD}")
    except RuntimeError:
        logger.exception("command_failed", extra={"secret_part": "connect-sekrit-0042"})

    text = stream.getvalue()
    for secret in (PASSWORD, "pg-Pa55w0rd%40x%2Fy", API_KEY, "connect-sekrit-0042"):
        assert secret not in text
    first, second = lines(stream)
    assert first["event"] == "connecting to ***"
    assert first["key"] == "***"
    assert "***" in second["exception"]


@given(
    secret=st.text(st.characters(blacklist_characters="*"), max_size=30).filter(
        lambda s: len(s.strip()) >= logcontext.MIN_SECRET
    )
)
def test_no_secret_survives_json_encoding_of_a_line(secret: str) -> None:
    logcontext.clear_secrets()
    logcontext.register_secrets([secret])
    record = logging.LogRecord("syncd", logging.ERROR, "", 0, "failed", (), None)
    record.error = f"the server said: {secret}!"
    try:
        line = logs.JsonFormatter().format(record)
    finally:
        logcontext.clear_secrets()

    assert secret.strip() not in json.loads(line)["error"]


def test_short_values_are_not_taken_for_secrets() -> None:
    logcontext.register_secrets(["abc", "", None])
    try:
        assert logcontext.redact("abc abcd") == "abc abcd"
    finally:
        logcontext.clear_secrets()


def test_a_secret_inside_a_longer_one_is_masked_after_the_longer_one() -> None:
    logcontext.register_secrets(["SU-1:k3y-v4lue", "k3y-v4lue"])
    try:
        assert logcontext.redact("a SU-1:k3y-v4lue b k3y-v4lue") == "a *** b ***"
    finally:
        logcontext.clear_secrets()


# -- the run summary ---------------------------------------------------------------------------


def test_the_summary_keeps_a_few_counts_per_phase_that_ran_and_the_requests_made() -> None:
    counts = {
        "pull": {"pages": 3, "requests_written": 10, "accounts_written": 8, "malformed": 1},
        "push": {"created": 2, "updated": 5, "crm_reads": 4, "crm_writes": 2, "planned": 9},
        "seconds": {"pull": 1.5},
        "connect_requests": 17,
    }

    brief = brief_counts(counts)

    assert brief["pull"] == {
        "pages": 3,
        "requests_written": 10,
        "accounts_written": 8,
        "malformed": 1,
        "drift": 0,
    }
    assert brief["push"]["created"] == 2
    assert "planned" not in brief["push"]
    assert set(brief) == {"pull", "push", "connect_requests", "crm_calls"}
    assert brief["connect_requests"] == 17
    assert brief["crm_calls"] == 6
