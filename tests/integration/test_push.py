"""The plan and push phases over the in-memory CRM, the Connect simulator and a real Postgres."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from syncd import crashpoints
from syncd.connect.client import ConnectClient
from syncd.crm.memory import MemoryCrm
from syncd.crm.port import CrmError
from syncd.domain.mapping import default_mapping, mapping_from_toml
from syncd.sim.connect import ConnectSim
from syncd.store.links import Selection
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
