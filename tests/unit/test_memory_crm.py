"""The in-memory CRM: upserts by key, the modified clock and its echo, failures on demand."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from syncd.crm.memory import EPOCH, Call, MemoryCrm
from syncd.crm.port import CrmError, CrmPort, Outcome, Upsert
from syncd.domain.mapping import check_against, default_mapping

PROPS = {"name", "city", "connect_account_id", "description"}
CONTACT_PROPS = {"email", "firstname"}


def _crm(batch_size: int = 100, clock: Callable[[], datetime] | None = None) -> MemoryCrm:
    return MemoryCrm(PROPS, CONTACT_PROPS, batch_size=batch_size, clock=clock)


def test_it_implements_the_crm_port() -> None:
    port: CrmPort = _crm()

    assert port.properties() == PROPS
    assert port.contact_properties() == CONTACT_PROPS
    assert port.batch_size == 100


def test_upserting_a_key_twice_updates_one_record() -> None:
    crm = _crm()

    [created] = crm.upsert([Upsert("TA-1", {"name": "Acme"})])
    [updated] = crm.upsert([Upsert("TA-1", {"name": "Acme AS", "city": "Oslo"})])

    assert created.outcome == updated.outcome == Outcome.DONE
    assert created.crm_id == updated.crm_id is not None
    assert crm.keys == {"TA-1"}
    record = crm.read(["TA-1"])["TA-1"]
    assert record.fields == {"connect_account_id": "TA-1", "name": "Acme AS", "city": "Oslo"}
    assert [w.kind for w in crm.writes] == ["create", "update"]


def test_an_upsert_writes_only_the_fields_given_and_none_clears_one() -> None:
    crm = _crm()
    crm.upsert([Upsert("TA-1", {"name": "Acme", "city": "Oslo"})])
    crm.edit("TA-1", {"description": "key account"})

    crm.upsert([Upsert("TA-1", {"city": None})])

    record = crm.get("TA-1")
    assert record is not None
    assert record.fields == {
        "connect_account_id": "TA-1",
        "name": "Acme",
        "description": "key account",
    }


def test_read_returns_only_existing_records_and_copies_of_them() -> None:
    crm = _crm()
    crm.upsert([Upsert("TA-1", {"name": "Acme"})])

    found = crm.read(["TA-1", "TA-2"])
    found["TA-1"].fields["name"] = "changed by the caller"  # type: ignore[index]

    assert set(found) == {"TA-1"}
    record = crm.get("TA-1")
    assert record is not None
    assert record.fields["name"] == "Acme"


def test_the_contact_gets_a_stable_id_and_is_left_alone_when_not_given() -> None:
    crm = _crm()

    [first] = crm.upsert([Upsert("TA-1", {"name": "A"}, {"email": "a@x.example"})])
    [second] = crm.upsert([Upsert("TA-1", {"name": "B"})])
    [third] = crm.upsert([Upsert("TA-1", {}, {"firstname": "Ana"})])

    assert first.contact_id is not None
    assert third.contact_id == first.contact_id
    assert second.contact_id == first.contact_id
    record = crm.get("TA-1")
    assert record is not None
    assert record.contact == {"email": "a@x.example", "firstname": "Ana"}


def test_every_write_ours_included_bumps_the_modified_time() -> None:
    crm = _crm()
    crm.upsert([Upsert("TA-1", {"name": "A"}), Upsert("TA-2", {"name": "B"})])
    mark = crm.now()

    crm.upsert([Upsert("TA-1", {"name": "A"})])  # the same value: still a write, still an echo
    crm.edit("TA-2", {"city": "Oslo"})

    changed = list(crm.changed_since(mark))
    assert [r.key for r in changed] == ["TA-1", "TA-2"]
    assert all(r.modified_at is not None and r.modified_at > mark for r in changed)
    assert list(crm.changed_since(crm.now().replace(year=2100))) == []


def test_changed_since_is_inclusive_and_ordered_by_time() -> None:
    crm = _crm()
    crm.upsert([Upsert("TA-2", {"name": "B"})])
    crm.upsert([Upsert("TA-1", {"name": "A"})])
    first = crm.get("TA-2")
    assert first is not None
    assert first.modified_at is not None

    keys = [r.key for r in crm.changed_since(first.modified_at)]

    assert keys == ["TA-2", "TA-1"]


def test_the_clock_can_be_injected() -> None:
    fixed = datetime(2030, 5, 1, tzinfo=UTC)
    crm = _crm(clock=lambda: fixed)

    crm.upsert([Upsert("TA-1", {"name": "A"}), Upsert("TA-2", {"name": "B"})])

    # Equal timestamps (a bulk edit) are all returned, ordered by key.
    assert [r.key for r in crm.changed_since(fixed)] == ["TA-1", "TA-2"]


def test_a_rejected_key_is_refused_with_its_reason_and_the_rest_of_the_batch_goes_on() -> None:
    crm = _crm()
    crm.reject("TA-2", "FIELD_CUSTOM_VALIDATION_EXCEPTION: VAT id required")

    results = crm.upsert([Upsert(k, {"name": k}) for k in ("TA-1", "TA-2", "TA-3")])

    assert [(r.key, r.outcome) for r in results] == [
        ("TA-1", Outcome.DONE),
        ("TA-2", Outcome.REJECTED),
        ("TA-3", Outcome.DONE),
    ]
    assert results[1].reason == "FIELD_CUSTOM_VALIDATION_EXCEPTION: VAT id required"
    assert crm.keys == {"TA-1", "TA-3"}
    [again] = crm.upsert([Upsert("TA-2", {"name": "x"})])
    assert again.outcome == Outcome.REJECTED


def test_a_retry_failure_lasts_the_given_number_of_calls() -> None:
    crm = _crm()
    crm.fail_retry("TA-1", times=2, retry_after=2.0)

    outcomes = [crm.upsert([Upsert("TA-1", {"name": "A"})])[0] for _ in range(3)]

    assert [r.outcome for r in outcomes] == [Outcome.RETRY, Outcome.RETRY, Outcome.DONE]
    assert outcomes[0].retry_after == 2.0
    assert outcomes[0].reason == "UNABLE_TO_LOCK_ROW"
    assert crm.keys == {"TA-1"}


def test_a_lost_response_is_unknown_but_the_write_applied() -> None:
    crm = _crm()
    crm.lose_next_response(["TA-1"])

    results = crm.upsert([Upsert("TA-1", {"name": "A"}), Upsert("TA-2", {"name": "B"})])
    [after] = crm.upsert([Upsert("TA-1", {"name": "A2"})])

    assert [r.outcome for r in results] == [Outcome.UNKNOWN, Outcome.DONE]
    assert results[0].crm_id is None
    assert crm.keys == {"TA-1", "TA-2"}  # settled by reading back
    assert after.outcome == Outcome.DONE  # only the next call loses its response
    assert [w.kind for w in crm.writes if w.key == "TA-1"] == ["create", "update"]


def test_a_response_lost_before_the_write_leaves_nothing_written() -> None:
    crm = _crm()
    crm.lose_next_response(applied=False)

    [result] = crm.upsert([Upsert("TA-1", {"name": "A"})])

    assert result.outcome == Outcome.UNKNOWN
    assert crm.keys == set()
    assert crm.writes == []


def test_a_call_can_be_made_to_raise_once_writing_nothing() -> None:
    crm = _crm()
    crm.raise_next(CrmError("503 SERVER_UNAVAILABLE", status=503))

    with pytest.raises(CrmError) as caught:
        crm.upsert([Upsert("TA-1", {"name": "A"})])

    assert caught.value.status == 503
    assert not caught.value.fatal
    assert crm.keys == set()
    assert crm.upsert([Upsert("TA-1", {"name": "A"})])[0].outcome == Outcome.DONE


def test_clear_failures_forgets_every_planned_failure() -> None:
    crm = _crm()
    crm.reject("TA-1")
    crm.fail_retry("TA-2", times=5)
    crm.lose_next_response()
    crm.raise_next(CrmError("boom", fatal=True))

    crm.clear_failures()

    results = crm.upsert([Upsert("TA-1", {"name": "A"}), Upsert("TA-2", {"name": "B"})])
    assert [r.outcome for r in results] == [Outcome.DONE, Outcome.DONE]


def test_an_unknown_property_is_rejected_per_record() -> None:
    crm = _crm()

    results = crm.upsert(
        [
            Upsert("TA-1", {"name": "A", "industry": "IT"}),
            Upsert("TA-2", {"name": "B"}, {"mobile": "1"}),
            Upsert("TA-3", {"name": "C"}),
        ]
    )

    assert [r.outcome for r in results] == [Outcome.REJECTED, Outcome.REJECTED, Outcome.DONE]
    assert results[0].reason is not None
    assert "industry" in results[0].reason
    assert results[1].reason is not None
    assert "contact.mobile" in results[1].reason


def test_an_oversized_batch_is_a_caller_bug() -> None:
    crm = _crm(batch_size=2)

    with pytest.raises(ValueError, match="batch size is 2"):
        crm.upsert([Upsert(f"TA-{i}", {"name": "x"}) for i in range(3)])


def test_setup_creates_the_missing_properties_the_mapping_needs() -> None:
    mapping = default_mapping("hubspot")
    missing = ["account.connect_account_id", "account.connect_tax_id"]
    crm = MemoryCrm.for_mapping(mapping, missing=missing)

    before = check_against(mapping, crm.properties(), crm.contact_properties())
    done = crm.setup()
    after = check_against(mapping, crm.properties(), crm.contact_properties())

    assert before == missing
    assert done == [
        "created account property connect_account_id",
        "created account property connect_tax_id",
    ]
    assert after == []
    assert crm.setup() == []


def test_the_call_log_counts_what_a_phase_costs() -> None:
    crm = _crm()

    crm.upsert([Upsert("TA-1", {"name": "A"}), Upsert("TA-2", {"name": "B"})])
    crm.read(["TA-1", "TA-2"])
    list(crm.changed_since(EPOCH))

    assert crm.calls == [
        Call("upsert", ("TA-1", "TA-2")),
        Call("read", ("TA-1", "TA-2")),
        Call("changed_since"),
    ]


def test_read_leaves_out_the_contact_of_records_the_caller_skips_by_their_id() -> None:
    crm = _crm()
    [one, two] = crm.upsert(
        [
            Upsert("TA-1", {"name": "A"}, {"email": "a@example.com"}),
            Upsert("TA-2", {"name": "B"}, {"email": "b@example.com"}),
        ]
    )

    found = crm.read(["TA-1", "TA-2"], skip_contacts={"TA-1": one.crm_id or "", "TA-2": "other"})

    assert (found["TA-1"].contact_read, found["TA-1"].contact_id, found["TA-1"].contact) == (
        False,
        None,
        {},
    )
    # Linked to another record than the caller knows: the contact is read after all.
    assert found["TA-2"].contact_read
    assert found["TA-2"].contact_id == two.contact_id
