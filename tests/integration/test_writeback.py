"""Write-back of TAR decisions to the Connect simulator, with the in-memory CRM and a real Postgres.

State is prepared by a real cycle (pull + push); the sync flag, which another part of syncd
computes, is set with SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from syncd import crashpoints
from syncd.connect.client import ConnectClient
from syncd.crm.memory import MemoryCrm
from syncd.domain.mapping import default_mapping
from syncd.domain.tar_decision import FLAG_OFF_REASON
from syncd.sim.base import Fault, SimServer
from syncd.sim.connect import ConnectSim
from syncd.store.schema import connect_outbox, sync_ledger, tier_account_requests
from syncd.sync.cycle import run_cycle
from syncd.sync.pull import PullOptions
from syncd.sync.writeback import WritebackPhase
from syncd.sync.writeback_send import SETTLE_EVERY

MAPPING = default_mapping("hubspot")


@pytest.fixture
def crm() -> MemoryCrm:
    return MemoryCrm.for_mapping(MAPPING)


def accounts_with_pending_tars(sim: ConnectSim, count: int, *, updates: bool = True) -> list[str]:
    """`count` accounts of a product, each changed once: one TAR each, pending when the
    product's Tier Accounts Sync is on (`updates`), else unsupported."""
    product = sim.add_product(updates=updates)["id"]
    ids = []
    for n in range(count):
        account = sim.add_account()["id"]
        sim.link(account, product)
        sim.change_account(account, name=f"Renamed {n}")
        ids.append(account)
    return sorted(ids)


def tar_of(sim: ConnectSim, account_id: str) -> str:
    (tar,) = sim.tars_of(account_id)
    return str(tar["id"])


def prepare(engine: Engine, client: ConnectClient, crm: MemoryCrm) -> None:
    run_cycle(engine, client, PullOptions(), crm=crm, mapping=MAPPING)


def set_flag(engine: Engine, ids: Sequence[str], value: bool | None) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE tier_accounts SET sync_enabled = :v WHERE id = ANY(:ids)"),
            {"v": value, "ids": list(ids)},
        )


def writeback(
    engine: Engine, client: ConnectClient, crm: MemoryCrm, **options: Any
) -> WritebackPhase:
    phase = WritebackPhase(engine, client, crm, MAPPING, run_id=None, **options)
    phase.run()
    return phase


def posts(server: SimServer, tar_id: str | None = None) -> list[str]:
    """Paths of the accept and ignore requests received (for one TAR when given)."""
    return [
        r.path
        for r in server.requests
        if r.method == "POST"
        and r.path.endswith(("/accept", "/ignore"))
        and (tar_id is None or f"/{tar_id}/" in r.path)
    ]


def mirrored_status(engine: Engine, tar_id: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                select(tier_account_requests.c.status).where(tier_account_requests.c.id == tar_id)
            ).scalar_one()
        )


def outbox_rows(engine: Engine) -> list[tuple[str, str, str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                connect_outbox.c.object_id,
                connect_outbox.c.kind,
                connect_outbox.c.state,
                connect_outbox.c.outcome,
            ).order_by(connect_outbox.c.object_id)
        )
        return [(r.object_id, r.kind, r.state, r.outcome) for r in rows]


def test_pending_tars_of_synced_accounts_are_accepted_once_and_a_second_run_acts_on_nothing(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient, crm: MemoryCrm
) -> None:
    ids = accounts_with_pending_tars(sim, 5)
    prepare(engine, client, crm)
    set_flag(engine, ids, True)
    tars = [tar_of(sim, a) for a in ids]

    first = writeback(engine, client, crm)

    assert first.counts.accepted == 5
    assert sorted(posts(server)) == sorted(
        f"/public/v1/tier/account-requests/{t}/accept" for t in tars
    )
    assert all(sim.tar(t)["status"] == "accepted" for t in tars)
    assert all(mirrored_status(engine, t) == "accepted" for t in tars)
    assert outbox_rows(engine) == [(t, "accept", "done", "accepted") for t in sorted(tars)]

    second = writeback(engine, client, crm)
    again = run_cycle(engine, client, PullOptions(), crm=crm, mapping=MAPPING)

    assert len(posts(server)) == 5
    assert second.counts.accepted == 0
    assert sum(second.counts.left_pending.values()) == 0
    assert again.counts["push"]["planned"] == 0


def test_a_tar_the_crm_refused_is_ignored_with_the_crms_message_cut_to_255(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient, crm: MemoryCrm
) -> None:
    good, bad = accounts_with_pending_tars(sim, 2)
    message = "FIELD_CUSTOM_VALIDATION_EXCEPTION: " + "the postal code is not valid. " * 12
    crm.reject(bad, message)
    prepare(engine, client, crm)
    set_flag(engine, [good, bad], True)

    phase = writeback(engine, client, crm)

    refused = sim.tar(tar_of(sim, bad))
    assert (refused["status"], refused["reason"]) == ("ignored", message.strip()[:255])
    assert sim.tar(tar_of(sim, good))["status"] == "accepted"
    assert (phase.counts.accepted, phase.counts.ignored) == (1, 1)
    assert mirrored_status(engine, tar_of(sim, bad)) == "ignored"


def test_tars_stay_pending_while_the_crm_must_retry_the_flag_is_off_or_a_conflict_is_open(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient, crm: MemoryCrm
) -> None:
    retry, unknown, off, undecided, conflict, fine = accounts_with_pending_tars(sim, 6)
    crm.fail_retry(retry, times=5)
    crm.lose_next_response([unknown], applied=False)
    prepare(engine, client, crm)
    set_flag(engine, [retry, unknown, conflict, fine], True)
    set_flag(engine, [off], False)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO crm_conflicts (account_id, object, field, connect_value, crm_value, "
                "resolution) VALUES (:a, 'account', 'city', 'Oslo', 'Bergen', 'manual')"
            ),
            {"a": conflict},
        )

    phase = writeback(engine, client, crm)

    assert posts(server) == [f"/public/v1/tier/account-requests/{tar_of(sim, fine)}/accept"]
    for account in (retry, unknown, off, undecided, conflict):
        assert sim.tar(tar_of(sim, account))["status"] == "pending"
    assert dict(phase.counts.left_pending) == {
        "crm_pending": 2,
        "flag_off": 1,
        "flag_undecided": 1,
        "manual_conflict": 1,
    }
    assert [row[0] for row in outbox_rows(engine)] == [tar_of(sim, fine)]


def test_with_the_ignore_policy_a_tar_of_an_account_whose_sync_is_off_is_ignored(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient, crm: MemoryCrm
) -> None:
    off, undecided = accounts_with_pending_tars(sim, 2)
    prepare(engine, client, crm)
    set_flag(engine, [off], False)

    writeback(engine, client, crm, disabled_tar_policy="ignore")

    ignored = sim.tar(tar_of(sim, off))
    assert (ignored["status"], ignored["reason"]) == ("ignored", FLAG_OFF_REASON)
    assert sim.tar(tar_of(sim, undecided))["status"] == "pending"


def test_unsupported_tars_are_never_touched(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient, crm: MemoryCrm
) -> None:
    ids = accounts_with_pending_tars(sim, 3, updates=False)
    prepare(engine, client, crm)
    set_flag(engine, ids, True)

    writeback(engine, client, crm, disabled_tar_policy="ignore")

    assert posts(server) == []
    assert outbox_rows(engine) == []
    assert all(sim.tar(tar_of(sim, a))["status"] == "unsupported" for a in ids)


def test_a_lost_accept_answer_is_settled_by_reading_back_without_a_second_accept(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient, crm: MemoryCrm
) -> None:
    ids = accounts_with_pending_tars(sim, 3)
    prepare(engine, client, crm)
    set_flag(engine, ids, True)
    lost = tar_of(sim, ids[1])
    server.faults.inject(Fault(drop_response=True, match=f"POST .*/{lost}/accept"))

    phase = writeback(engine, client, crm)

    assert server.faults.pending() == 0
    assert len(posts(server, lost)) == 1
    assert [r.path for r in server.requests if r.method == "GET" and r.path.endswith(lost)] == [
        f"/public/v1/tier/account-requests/{lost}"
    ]
    assert (phase.counts.accepted, phase.counts.read_back) == (3, 1)
    assert (lost, "accept", "done", "accepted") in outbox_rows(engine)
    assert mirrored_status(engine, lost) == "accepted"

    writeback(engine, client, crm)
    assert len(posts(server)) == 3


def test_an_accept_refused_because_the_tar_is_no_longer_pending_records_its_real_status(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient, crm: MemoryCrm
) -> None:
    (account,) = accounts_with_pending_tars(sim, 1)
    prepare(engine, client, crm)
    set_flag(engine, [account], True)
    tar_id = tar_of(sim, account)
    with sim.lock:  # settled in Connect by someone else after the pull
        sim.settle(sim.tars[tar_id], "ignored", "handled by hand", sim.hub_user)

    phase = writeback(engine, client, crm)

    refused = [r for r in server.requests if r.method == "POST"]
    assert [r.status for r in refused] == [400]
    assert outbox_rows(engine) == [(tar_id, "accept", "done", "ignored")]
    assert mirrored_status(engine, tar_id) == "ignored"
    assert (phase.counts.accepted, phase.counts.read_back, phase.counts.failed) == (0, 1, 0)
    writeback(engine, client, crm)
    assert len(posts(server)) == 1


def test_an_unsent_action_whose_tar_was_settled_elsewhere_is_closed_without_a_call(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient, crm: MemoryCrm
) -> None:
    (account,) = accounts_with_pending_tars(sim, 1)
    prepare(engine, client, crm)
    tar_id = tar_of(sim, account)
    with engine.begin() as conn:  # a row written just before a crash, never claimed
        conn.execute(
            text("INSERT INTO connect_outbox (kind, object_id) VALUES ('accept', :t)"),
            {"t": tar_id},
        )
    with sim.lock:
        sim.settle(sim.tars[tar_id], "accepted", None, sim.hub_user)
    run_cycle(engine, client, PullOptions(), crm=crm, mapping=MAPPING)  # mirrors the new status

    writeback(engine, client, crm)

    assert posts(server) == []
    assert outbox_rows(engine) == [(tar_id, "accept", "done", "accepted")]


@pytest.mark.parametrize("point", ["writeback.after_send", "writeback.before_send"])
def test_after_a_crash_around_the_accept_a_rerun_accepts_each_tar_exactly_once(
    engine: Engine,
    sim: ConnectSim,
    server: SimServer,
    client: ConnectClient,
    crm: MemoryCrm,
    point: str,
) -> None:
    ids = accounts_with_pending_tars(sim, 4)
    prepare(engine, client, crm)
    set_flag(engine, ids, True)

    def killed() -> None:
        if crashpoints.times_reached(point) == 2:
            raise SystemExit(f"killed at {point}")

    crashpoints.install(point, killed)
    with pytest.raises(SystemExit):
        writeback(engine, client, crm)
    crashpoints.reset()
    states = [row[2] for row in outbox_rows(engine)]
    assert states.count("sent") == 1

    rerun = writeback(engine, client, crm)

    tars = [tar_of(sim, a) for a in ids]
    assert all(len(posts(server, t)) == 1 for t in tars)
    assert all(sim.tar(t)["status"] == "accepted" for t in tars)
    assert {row[2:] for row in outbox_rows(engine)} == {("done", "accepted")}
    if point == "writeback.after_send":
        assert rerun.counts.read_back == 1
    else:
        assert rerun.counts.released == 1


def test_when_connect_stays_unavailable_the_phase_stops_and_the_next_run_sends_the_rest(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient, crm: MemoryCrm
) -> None:
    ids = accounts_with_pending_tars(sim, 3)
    prepare(engine, client, crm)
    set_flag(engine, ids, True)
    server.faults.inject(Fault(status=503, headers={"Retry-After": "0"}, match="POST"), times=99)

    stopped = writeback(engine, client, crm)
    server.faults.clear()

    # Each accept tried within its retry budget (4 attempts), none more.
    assert len(server.requests_matching("POST")) <= 3 * client.retry.attempts
    assert stopped.counts.failed_parts == ["tars"]
    assert stopped.counts.accepted == 0
    assert [row[2] for row in outbox_rows(engine)] == ["pending"] * 3
    with engine.connect() as conn:
        kinds = conn.execute(
            select(sync_ledger.c.error_kind).where(sync_ledger.c.phase == "writeback")
        ).scalars()
        assert list(kinds) == ["connect_unavailable"]

    resumed = writeback(engine, client, crm)

    assert resumed.counts.accepted == 3
    assert all(sim.tar(tar_of(sim, a))["status"] == "accepted" for a in ids)


def test_a_dry_run_reports_its_decisions_and_writes_nothing(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient, crm: MemoryCrm
) -> None:
    good, bad = accounts_with_pending_tars(sim, 2)
    crm.reject(bad, "INVALID_EMAIL")
    prepare(engine, client, crm)
    set_flag(engine, [good, bad], True)

    phase = writeback(engine, client, crm, dry_run=True)

    assert posts(server) == []
    assert outbox_rows(engine) == []
    assert sorted((p["tar"], p["action"]) for p in phase.planned) == sorted(
        [(tar_of(sim, good), "accept"), (tar_of(sim, bad), "ignore")]
    )


def test_rows_claimed_ahead_of_their_answer_stay_bounded_by_the_concurrency(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient, crm: MemoryCrm
) -> None:
    ids = accounts_with_pending_tars(sim, 100)
    prepare(engine, client, crm)
    set_flag(engine, ids, True)
    server.faults.latency = 0.01
    claimed: list[int] = []

    def count_claimed() -> None:
        with engine.connect() as conn:
            claimed.append(
                conn.execute(
                    text("SELECT count(*) FROM connect_outbox WHERE state = 'sent'")
                ).scalar_one()
            )

    crashpoints.install("writeback.before_send", count_claimed)
    phase = writeback(engine, client, crm, concurrency=2)

    assert phase.counts.accepted == 100
    assert len(posts(server)) == 100
    # Two requests in flight, two more claimed, and answers waiting to be settled in a batch.
    assert 1 < max(claimed) <= 2 * 2 + SETTLE_EVERY
