"""The progress of a cycle: what each phase's counts say, and how it is rendered on stderr."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import Engine, create_engine

from syncd import logcontext
from syncd.connect.client import ConnectClient
from syncd.crm.memory import MemoryCrm
from syncd.domain.mapping import default_mapping
from syncd.service import logs
from syncd.service.progress import ProgressReporter
from syncd.service.progress_lines import Snapshot, render_bar, render_line, snapshot
from syncd.sync.flags import FlagPhase
from syncd.sync.pull import PullOptions, PullPhase
from syncd.sync.push import PushOptions, PushPhase
from syncd.sync.writeback import WritebackPhase


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine() -> Iterator[Engine]:
    # Never connected: the phases only keep it until they run.
    made = create_engine("postgresql+psycopg://nobody@localhost/none")
    yield made
    made.dispose()


@pytest.fixture
def client() -> Iterator[ConnectClient]:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request expected: {request.url}")

    with ConnectClient(
        "http://connect.test/public/v1", "SU-1:k", transport=httpx.MockTransport(refuse)
    ) as made:
        yield made


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Log lines as JSON, in a buffer (the root logger is restored afterwards)."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    logs.configure("INFO", stream)
    yield stream
    root.handlers[:], level = saved
    root.setLevel(level)


def events(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def push_phase(engine: Engine, dry_run: bool = False) -> PushPhase:
    mapping = default_mapping("hubspot")
    crm = MemoryCrm({f.target for f in mapping.account}, {f.target for f in mapping.contact})
    return PushPhase(engine, crm, mapping, PushOptions(dry_run=dry_run), run_id=1)


# -- the lines ---------------------------------------------------------------------------------


def test_a_line_says_done_of_total_the_details_and_the_rate() -> None:
    snap = Snapshot("push", 4200, "accounts", "acc", 10_000, ("1,950 created", "2,250 updated"))

    line = render_line("resync", snap, seconds=4200 / 310)

    assert line == "resync: push 4,200/10,000 accounts (1,950 created, 2,250 updated), 310 acc/s"


def test_a_line_without_a_total_counts_what_is_done_and_shows_no_rate_before_any() -> None:
    snap = Snapshot("flags", 0, "accounts looked up", "acc")

    assert render_line("sync", snap, seconds=3.0) == "sync: flags 0 accounts looked up"


def test_the_final_line_says_done_and_how_long_the_phase_took() -> None:
    snap = Snapshot("writeback", 30, "TARs", "TAR", 30, ("28 accepted", "2 ignored"))

    line = render_line("sync", snap, seconds=3.0, final=True)

    assert line == "sync: writeback done 30/30 TARs (28 accepted, 2 ignored), 10 TAR/s in 3.0s"


def test_the_final_line_of_the_pull_counts_records_not_the_last_feed() -> None:
    snap = Snapshot("pull", 1200, "records", "rec", label="accounts 1,000/1,000")

    assert render_line("sync", snap, 2.0).startswith("sync: pull accounts 1,000/1,000,")
    assert render_line("sync", snap, 2.0, final=True).startswith("sync: pull done 1,200 records")


def test_the_bar_fills_with_the_share_done_and_fits_the_terminal() -> None:
    snap = Snapshot("push", 250, "accounts", "acc", 1000)

    bar = render_bar("resync", snap, seconds=0.0, width=200)

    assert bar == "resync: push [#####---------------]  25% 250/1,000 accounts"
    assert len(render_bar("resync", snap, seconds=0.0, width=30)) == 29


def test_the_bar_is_left_out_when_the_total_is_not_known() -> None:
    snap = Snapshot("flags", 5, "accounts looked up", "acc")

    assert "[" not in render_bar("sync", snap, 1.0)


def test_more_done_than_the_total_never_shows_more_than_a_full_bar() -> None:
    assert Snapshot("p", 12, "x", "x", 10).share == 1.0
    assert Snapshot("p", 1, "x", "x", fraction=1.5).share == 1.0
    assert Snapshot("p", 0, "x", "x", 0).share is None


# -- what the phases' counts say ---------------------------------------------------------------


def test_the_push_counts_accounts_planned_of_the_candidates(engine: Engine) -> None:
    phase = push_phase(engine)
    phase.counts.planned, phase.counts.created, phase.counts.updated = 300, 120, 170
    phase.counts.rejected = 4

    snap = snapshot("push", phase, total=1000)

    assert snap is not None
    assert (snap.done, snap.total) == (300, 1000)
    assert snap.details == ("120 created", "170 updated", "4 failed")


def test_a_dry_run_push_counts_what_it_would_create_and_update(engine: Engine) -> None:
    phase = push_phase(engine, dry_run=True)
    phase.counts.planned = 3
    phase.report.creates.extend(["TA-1", "TA-2"])
    phase.report.unchanged = 1

    snap = snapshot("push", phase, total=3)

    assert snap is not None
    assert snap.details == ("2 to create", "0 to update", "1 unchanged")


def test_the_pull_shows_the_feed_it_pages_through_and_its_total(
    engine: Engine, client: ConnectClient
) -> None:
    phase = PullPhase(engine, client, PullOptions(), run_id=1)
    phase.counts.pages, phase.counts.requests_seen, phase.counts.requests_written = 2, 200, 180
    before = snapshot("pull", phase)
    phase.position = ("/tier/account-requests", 200, 800)

    during = snapshot("pull", phase)

    assert before is not None
    assert during is not None
    assert before.label == ""
    assert before.share is None
    assert during.label == "account-requests 200/800"
    assert during.share == 0.25
    assert during.done == 200
    assert during.details == ("2 pages", "180 TARs stored", "0 accounts stored")


def test_the_writeback_counts_every_tar_it_decided(engine: Engine, client: ConnectClient) -> None:
    mapping = default_mapping("hubspot")
    crm = MemoryCrm({f.target for f in mapping.account})
    phase = WritebackPhase(engine, client, crm, mapping, run_id=1, crm_overlap=timedelta(0))
    phase.counts.accepted, phase.counts.ignored, phase.counts.failed = 5, 1, 1
    phase.counts.left_pending["sync_off"] += 3

    snap = snapshot("writeback", phase, total=8)

    assert snap is not None
    assert (snap.done, snap.total) == (10, 10)  # never less in all than done
    assert snap.details == ("5 accepted", "1 ignored", "3 left pending", "1 failed")


def test_the_flags_count_accounts_looked_up_and_say_the_flags_once_decided(
    engine: Engine, client: ConnectClient
) -> None:
    phase = FlagPhase(engine, client, default=False, run_id=1)
    phase.counts.looked_up, phase.counts.asset_pages = 100, 2
    phase.counts.enabled, phase.counts.disabled = 60, 40

    snap = snapshot("flags", phase)

    assert snap is not None
    assert (snap.done, snap.total) == (100, None)
    assert snap.details == ("2 asset pages", "60 on, 40 off")


def test_an_object_that_is_not_a_phase_has_no_progress() -> None:
    assert snapshot("other", object()) is None


# -- the reporter ------------------------------------------------------------------------------


def test_off_a_terminal_progress_is_a_log_event_every_few_seconds_and_one_per_phase(
    engine: Engine, log_lines: io.StringIO
) -> None:
    clock = FakeClock()
    stream = io.StringIO()
    reporter = ProgressReporter(
        "resync", stream, tty=False, every=5.0, clock=clock, totals=lambda phase: 10
    )
    phase = push_phase(engine)
    with logcontext.bind(run_id=42):
        reporter.phase_started("push", phase)
    phase.counts.planned = phase.counts.created = 4

    clock.now += 2
    reporter.tick()  # too soon for a line
    clock.now += 4
    reporter.tick()
    phase.counts.planned = phase.counts.created = 10
    reporter.close()

    assert stream.getvalue() == ""  # nothing but log lines
    lines = events(log_lines)
    assert [line["event"] for line in lines] == ["progress", "phase_finished"]
    assert lines[0]["text"] == "resync: push 4/10 accounts (4 created, 0 updated), 1 acc/s"
    assert lines[1]["text"] == (
        "resync: push done 10/10 accounts (10 created, 0 updated), 2 acc/s in 6.0s"
    )
    assert all(line["run_id"] == 42 for line in lines)  # bound where the phase started
    assert (lines[1]["done"], lines[1]["total"]) == (10, 10)


def test_on_a_terminal_the_line_is_redrawn_in_place_and_each_phase_ends_with_its_own(
    engine: Engine, client: ConnectClient
) -> None:
    clock = FakeClock()
    stream = io.StringIO()
    reporter = ProgressReporter(
        "sync", stream, tty=True, clock=clock, totals=lambda phase: 4, width=lambda: 120
    )
    push = push_phase(engine)
    reporter.phase_started("push", push)
    push.counts.planned = 2
    clock.now += 1
    reporter.tick()
    reporter.tick()
    reporter.phase_started("flags", FlagPhase(engine, client, default=False, run_id=1))
    reporter.close()

    text = stream.getvalue()
    bar = "\rsync: push [##########----------]  50% 2/4 accounts (0 created, 0 updated), 2 acc/s"
    assert text.count(bar + "\x1b[K") == 2
    assert "\rsync: push done 2/4 accounts (0 created, 0 updated), 2 acc/s in 1.0s\x1b[K\n" in text
    assert text.endswith("sync: flags done 0 accounts looked up (0 asset pages) in 0.0s\x1b[K\n")


def test_a_total_that_cannot_be_counted_leaves_the_progress_without_one(
    engine: Engine, log_lines: io.StringIO
) -> None:
    def broken(phase: object) -> int | None:
        raise OSError("database gone")

    reporter = ProgressReporter("sync", io.StringIO(), tty=False, totals=broken)
    reporter.phase_started("push", push_phase(engine))
    reporter.close()

    [line] = events(log_lines)
    assert line["event"] == "phase_finished"
    assert line["total"] is None


def test_the_reporter_thread_stops_when_the_cycle_is_over(engine: Engine) -> None:
    stream = io.StringIO()
    with ProgressReporter("sync", stream, tty=True, interval=0.01, totals=lambda p: 1) as reporter:
        reporter.phase_started("push", push_phase(engine))
        thread = reporter._thread
    assert thread is not None
    assert not thread.is_alive()
    assert stream.getvalue().endswith("\n")
