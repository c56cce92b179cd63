"""The plan and push phases over the in-memory CRM, the Connect simulator and a real Postgres."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select

from syncd import crashpoints
from syncd.connect.client import ConnectClient
from syncd.crm.memory import MemoryCrm
from syncd.crm.port import CrmError, CrmRecord
from syncd.domain.mapping import apply, default_mapping, mapping_from_toml
from syncd.sim.connect import ConnectSim
from syncd.store.links import Selection, save_links
from syncd.store.schema import crm_conflicts, crm_links, sync_ledger
from syncd.sync.cycle import CycleResult, run_cycle
from syncd.sync.pull import PullOptions
from syncd.sync.push import PushOptions

MAPPING = default_mapping("hubspot")


@pytest.fixture
def crm() -> MemoryCrm:
    return MemoryCrm.for_mapping(MAPPING)


def cycle(engine: Engine, client: ConnectClient, crm: MemoryCrm, **push: object) -> CycleResult:
    return run_cycle(
        engine,
        client,
        PullOptions(),
        crm=crm,
        mapping=MAPPING,
        push=PushOptions(**push),  # type: ignore[arg-type]
    )


def writes(crm: MemoryCrm) -> int:
    return sum(1 for call in crm.calls if call.method == "upsert")


def test_every_account_is_created_once_and_the_next_cycle_writes_nothing(
    engine: Engine, sim: ConnectSim, client: ConnectClient, crm: MemoryCrm
) -> None:
    sim.seed(5, accounts=250)

    first = cycle(engine, client, crm)
    assert first.outcome == "success", first.error
    assert crm.keys == set(sim.accounts)
    assert first.counts["push"]["created"] == len(sim.accounts)
    assert writes(crm) == -(-len(sim.accounts) // crm.batch_size)

    calls_before = writes(crm)
    second = cycle(engine, client, crm)
    assert second.counts["push"]["planned"] == 0
    assert writes(crm) == calls_before


def test_a_changed_account_is_updated_with_only_its_changed_fields(
    engine: Engine, sim: ConnectSim, client: ConnectClient, crm: MemoryCrm
) -> None:
    sim.seed(5, accounts=30)
    cycle(engine, client, crm)
    account_id = sorted(sim.accounts)[3]
    sim.change_account(account_id, name="Renamed Holdings")

    result = cycle(engine, client, crm)

    assert result.counts["push"]["updated"] == 1
    last = crm.writes[-1]
    assert last.key == account_id
    assert set(last.fields) == {"name", "connect_account_id"}
    assert crm.get(account_id).fields["name"] == "Renamed Holdings"  # type: ignore[union-attr]


def test_a_changed_contact_key_writes_every_field_of_the_new_contact(
    engine: Engine, sim: ConnectSim, client: ConnectClient, crm: MemoryCrm
) -> None:
    sim.seed(6, accounts=5)
    cycle(engine, client, crm)
    account_id = sorted(sim.accounts)[1]
    sim.change_account(account_id, contact_info={"contact": {"email": "New.Person@Example.com"}})

    result = cycle(engine, client, crm)

    # Another email is another HubSpot contact: only the email changed in Connect, but the new
    # contact needs the name and phone too.
    assert result.counts["push"]["updated"] == 1
    last = crm.writes[-1]
    wanted = apply(MAPPING, sim.account(account_id))[1]
    assert wanted is not None
    assert last.key == account_id
    assert last.contact == {k: v for k, v in wanted.items() if v is not None}
    assert set(last.contact) > {"email"}


def test_a_rejected_record_is_retried_next_cycle_without_blocking_the_others(
    engine: Engine, sim: ConnectSim, client: ConnectClient, crm: MemoryCrm
) -> None:
    sim.seed(5, accounts=100)
    bad = sorted(sim.accounts)[42]
    crm.reject(bad, "INVALID_EMAIL: the email is not valid")

    first = cycle(engine, client, crm)
    assert first.outcome == "partial"
    assert first.exit_code == 3
    assert crm.keys == set(sim.accounts) - {bad}

    second = cycle(engine, client, crm)
    assert second.counts["push"]["planned"] == 1
    assert second.counts["push"]["rejected"] == 1
    with engine.connect() as conn:
        link = conn.execute(select(crm_links).where(crm_links.c.account_id == bad)).one()
        reasons = (
            conn.execute(
                select(sync_ledger.c.message).where(
                    sync_ledger.c.object_id == bad, sync_ledger.c.outcome == "rejected"
                )
            )
            .scalars()
            .all()
        )
    assert link.state == "rejected"
    assert link.attempts == 2
    assert reasons == ["INVALID_EMAIL: the email is not valid"] * 2


def test_a_lost_response_is_settled_by_reading_back_without_a_duplicate(
    engine: Engine, sim: ConnectSim, client: ConnectClient, crm: MemoryCrm
) -> None:
    sim.seed(5, accounts=20)
    crm.lose_next_response()

    first = cycle(engine, client, crm)
    assert first.counts["push"]["unknown"] == 20

    second = cycle(engine, client, crm)
    assert second.counts["push"]["unknown"] == 0
    assert writes(crm) == 1, "the read-back found every record: no write was needed"
    assert len(crm.keys) == 20
    with engine.connect() as conn:
        states = set(conn.execute(select(crm_links.c.state)).scalars())
    assert states == {"synced"}


def test_a_crash_between_the_crm_write_and_the_commit_converges_on_rerun(
    engine: Engine, sim: ConnectSim, client: ConnectClient, crm: MemoryCrm
) -> None:
    sim.seed(5, accounts=150)

    def crash() -> None:
        raise SystemExit("killed after the CRM write")

    crashpoints.install("push.after_crm_write", crash)
    with pytest.raises(SystemExit):
        cycle(engine, client, crm)
    crashpoints.reset()
    created_before = {w.key for w in crm.writes if w.kind == "create"}
    assert created_before

    rerun = cycle(engine, client, crm)

    assert rerun.outcome in ("success", "partial"), rerun.error
    creates = [w.key for w in crm.writes if w.kind == "create"]
    assert len(creates) == len(set(creates)) == len(sim.accounts)
    with engine.connect() as conn:
        synced = conn.execute(select(crm_links.c.account_id)).scalars().all()
    assert set(synced) == set(sim.accounts)


def test_a_batch_refused_as_a_whole_shrinks_around_the_bad_record(
    engine: Engine, sim: ConnectSim, client: ConnectClient
) -> None:
    class PickyCrm(MemoryCrm):
        """Refuses a whole batch when one record in it is bad, as HubSpot does with a 400."""

        bad = ""

        def upsert(self, items):  # type: ignore[no-untyped-def]
            if any(item.key == self.bad for item in items):
                raise CrmError(f"400: bad input in batch of {len(items)}", status=400)
            return super().upsert(items)

    template = MemoryCrm.for_mapping(MAPPING)
    crm = PickyCrm(template.properties(), template.contact_properties())
    sim.seed(5, accounts=64)
    crm.bad = sorted(sim.accounts)[17]

    result = cycle(engine, client, crm)

    assert crm.keys == set(sim.accounts) - {crm.bad}
    assert result.counts["push"]["rejected"] == 1
    assert result.counts["push"]["created"] == 63


def test_a_crm_edit_is_overwritten_on_connect_owned_fields_and_kept_on_crm_owned_ones(
    engine: Engine, sim: ConnectSim, client: ConnectClient
) -> None:
    phone = {"source": "contact_info.contact.phone_number", "transform": "phone", "owner": "crm"}
    mapping = mapping_from_toml("hubspot", {"account": {"phone": phone}})
    crm = MemoryCrm.for_mapping(mapping)
    sim.seed(5, accounts=5)
    run_cycle(engine, client, PullOptions(), crm=crm, mapping=mapping)
    account_id = sorted(sim.accounts)[0]
    crm.edit(account_id, {"city": "Edited In CRM", "phone": "+1 555 0100"})
    sim.change_account(account_id, name="Changed In Connect")

    run_cycle(engine, client, PullOptions(), crm=crm, mapping=mapping)

    held = crm.get(account_id)
    assert held is not None
    assert held.fields["name"] == "Changed In Connect"
    assert held.fields["city"] != "Edited In CRM"
    assert held.fields["phone"] == "+1 555 0100"
    with engine.connect() as conn:
        conflict = conn.execute(select(crm_conflicts)).one()
    assert (conflict.field, conflict.crm_value, conflict.resolution) == (
        "city",
        "Edited In CRM",
        "overwritten",
    )


def test_dry_run_plans_without_writing_to_the_crm(
    engine: Engine, sim: ConnectSim, client: ConnectClient, crm: MemoryCrm
) -> None:
    sim.seed(5, accounts=12)

    result = cycle(engine, client, crm, dry_run=True)

    assert writes(crm) == 0
    assert result.push is not None
    assert len(result.push.report.creates) == 12


def test_a_full_resync_selects_accounts_already_synced(
    engine: Engine, sim: ConnectSim, client: ConnectClient, crm: MemoryCrm
) -> None:
    sim.seed(5, accounts=12)
    cycle(engine, client, crm)

    again = cycle(engine, client, crm, selection=Selection(full=True))

    assert again.counts["push"]["planned"] == 12
    assert again.counts["push"]["unchanged"] == 12


class SkipRecordingCrm(MemoryCrm):
    """Records what each read was told to skip; can fail the nth read (fatally or not)."""

    fail_read: int | None = None
    fail_fatal: bool = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skipped: list[dict[str, str]] = []

    def read(
        self, keys: Sequence[str], skip_contacts: Mapping[str, str] | None = None
    ) -> dict[str, CrmRecord]:
        self.skipped.append(dict(skip_contacts or {}))
        if self.fail_read is not None and len(self.skipped) == self.fail_read:
            if self.fail_fatal:
                raise CrmError("401 from the CRM: the token was revoked", fatal=True, status=401)
            raise CrmError("503 from the CRM, retries spent", status=503)
        return super().read(keys, skip_contacts)


def recording_crm() -> SkipRecordingCrm:
    template = MemoryCrm.for_mapping(MAPPING)
    return SkipRecordingCrm(template.properties(), template.contact_properties())


def test_an_account_changed_only_in_its_own_fields_skips_its_contact_and_keeps_its_link(
    engine: Engine, sim: ConnectSim, client: ConnectClient
) -> None:
    crm = recording_crm()
    sim.seed(5, accounts=10)
    cycle(engine, client, crm)
    assert crm.skipped == [{}]  # nothing synced yet: every contact is needed
    renamed, recontacted = sorted(sim.accounts)[:2]
    sim.change_account(renamed, name="Renamed Holdings")
    sim.change_account(recontacted, contact_info={"contact": {"first_name": "Renata"}})
    with engine.connect() as conn:
        before = dict(conn.execute(select(crm_links.c.account_id, crm_links.c.contact_id)).all())

    result = cycle(engine, client, crm)

    assert result.counts["push"]["updated"] == 2
    held = crm.get(renamed)
    assert held is not None
    assert crm.skipped[-1] == {renamed: held.crm_id}
    assert crm.get(recontacted).contact["firstname"] == "Renata"  # type: ignore[union-attr]
    with engine.connect() as conn:
        after = dict(conn.execute(select(crm_links.c.account_id, crm_links.c.contact_id)).all())
        synced = conn.execute(
            select(crm_links.c.synced_contact).where(crm_links.c.account_id == renamed)
        ).scalar_one()
    assert after == before
    assert synced["email"] == crm.get(renamed).contact["email"]  # type: ignore[union-attr]


def test_a_full_resync_reads_every_contact(
    engine: Engine, sim: ConnectSim, client: ConnectClient
) -> None:
    crm = recording_crm()
    sim.seed(5, accounts=10)
    cycle(engine, client, crm)

    cycle(engine, client, crm, selection=Selection(full=True))

    assert crm.skipped[-1] == {}


def test_a_read_failing_fatally_for_a_later_batch_fails_the_run_after_committing_the_earlier_ones(
    engine: Engine, sim: ConnectSim, client: ConnectClient
) -> None:
    crm = recording_crm()
    crm.fail_read = 3  # planned in the worker while the second batch is written
    crm.fail_fatal = True
    sim.seed(5, accounts=450)

    result = cycle(engine, client, crm)

    assert result.outcome == "failed"
    assert "401" in (result.error or "")
    with engine.connect() as conn:
        synced = conn.execute(select(crm_links.c.account_id)).scalars().all()
    assert len(synced) == 2 * crm.batch_size
    assert set(synced) == set(sorted(sim.accounts)[: 2 * crm.batch_size])
    assert crm.keys == set(synced)


def test_a_read_failing_for_one_batch_leaves_its_accounts_to_retry_and_the_others_land(
    engine: Engine, sim: ConnectSim, client: ConnectClient
) -> None:
    crm = recording_crm()
    crm.fail_read = 2
    sim.seed(5, accounts=250)
    accounts = sorted(sim.accounts)
    unread = set(accounts[crm.batch_size : 2 * crm.batch_size])

    result = cycle(engine, client, crm)

    assert result.outcome == "partial", result.error
    assert result.counts["push"]["retry"] == len(unread)
    with engine.connect() as conn:
        links = {r.account_id: r for r in conn.execute(select(crm_links))}
        ledger = conn.execute(
            select(sync_ledger).where(
                sync_ledger.c.run_id == result.run_id, sync_ledger.c.outcome == "retry"
            )
        ).all()
    assert {a for a, r in links.items() if r.state == "retry"} == unread
    assert {a for a, r in links.items() if r.state == "synced"} == set(accounts) - unread
    assert all("503" in (links[a].last_error or "") for a in unread)
    assert all(links[a].next_attempt_at is not None for a in unread)
    assert {r.object_id for r in ledger} == unread
    assert {r.error_kind for r in ledger} == {"crm_retry"}
    assert crm.keys == set(accounts) - unread, "nothing written for the batch that was not read"

    again = cycle(engine, client, crm)

    assert again.outcome == "success", again.error
    assert crm.keys == set(accounts)


def test_without_the_pipeline_the_same_accounts_are_written(
    engine: Engine, sim: ConnectSim, client: ConnectClient, crm: MemoryCrm
) -> None:
    sim.seed(5, accounts=250)

    result = cycle(engine, client, crm, pipeline=False)

    assert result.outcome == "success", result.error
    assert result.counts["push"]["created"] == len(sim.accounts) == len(crm.keys)


def test_saved_links_keep_json_timestamps_and_nulls_and_a_later_row_wins(engine: Engine) -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    full = {
        "account_id": "TA-1",
        "crm": "hubspot",
        "state": "synced",
        "crm_id": "101",
        "contact_id": None,
        "synced_version": 3,
        "synced_fields": {"name": 'Ærø "quoted" \\ Oy', "city": None},
        "synced_contact": {},
        "synced_at": at,
        "next_attempt_at": None,
    }
    with engine.begin() as conn:
        save_links(conn, [full, {**full, "account_id": "TA-2"}, {**full, "synced_version": 4}])
    with engine.begin() as conn:  # a retry sets fewer columns; the others stay
        save_links(
            conn,
            [
                {
                    "account_id": "TA-2",
                    "crm": "hubspot",
                    "state": "retry",
                    "attempts": 2,
                    "next_attempt_at": at,
                    "last_error": "429",
                }
            ],
        )
    with engine.connect() as conn:
        rows = {r.account_id: r for r in conn.execute(select(crm_links))}

    one, two = rows["TA-1"], rows["TA-2"]
    assert (one.synced_version, one.crm_id, one.contact_id) == (4, "101", None)
    assert one.synced_fields == {"name": 'Ærø "quoted" \\ Oy', "city": None}
    assert one.synced_at == at
    assert one.next_attempt_at is None
    assert (two.state, two.attempts, two.next_attempt_at, two.last_error) == ("retry", 2, at, "429")
    assert (two.synced_version, two.synced_fields["name"]) == (3, 'Ærø "quoted" \\ Oy')


def test_a_fatal_write_error_fails_the_run_and_stops_the_planning_worker(
    engine: Engine, sim: ConnectSim, client: ConnectClient
) -> None:
    class RevokedCrm(MemoryCrm):
        def upsert(self, items):  # type: ignore[no-untyped-def]
            raise CrmError("401: the token was revoked", fatal=True, status=401)

    template = MemoryCrm.for_mapping(MAPPING)
    crm = RevokedCrm(template.properties(), template.contact_properties())
    sim.seed(5, accounts=450)

    result = cycle(engine, client, crm)

    assert result.outcome == "failed"
    assert "revoked" in (result.error or "")
    assert not [t for t in threading.enumerate() if t.name == "prefetch"]
    reads = [c for c in crm.calls if c.method == "read"]
    # The worker is at most one batch queued and one in hand ahead of the writer.
    assert 1 <= len(reads) <= 3
