"""The three-way diff: examples of each rule, then properties over generated states."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.crm.memory import MemoryCrm
from syncd.crm.port import Upsert
from syncd.domain.diff import AccountDiff, Conflict, FieldRule, Fields, Plan, diff, normalise, same
from syncd.domain.mapping import apply, default_mapping

CONNECT = FieldRule()
CRM_OWNED = FieldRule("crm")
RULES = {"name": CONNECT, "city": CONNECT, "phone": CRM_OWNED}


def _applied(crm: Fields | None, result: AccountDiff) -> dict[str, str | None]:
    """The CRM record after writing `result.changes` (a None value clears the property)."""
    after = dict(crm or {})
    after.update(result.changes)
    return after


# ---- examples ----------------------------------------------------------------------------


def test_no_crm_record_means_create_with_every_wanted_value() -> None:
    wanted = {"name": "Acme", "city": None, "phone": "+1 555"}

    result = diff(wanted, None, None, RULES)

    assert result.create
    assert result.changes == {"name": "Acme", "phone": "+1 555"}
    assert result.new_last == wanted
    assert result.conflicts == ()


def test_a_record_deleted_in_the_crm_is_created_again() -> None:
    result = diff({"name": "Acme"}, None, {"name": "Acme"}, {"name": CONNECT})

    assert result.create
    assert result.changes == {"name": "Acme"}


def test_equal_fields_cost_nothing() -> None:
    state = {"name": "Acme", "city": "Oslo", "phone": "+47 1"}

    result = diff(state, dict(state), dict(state), RULES)

    assert not result.needs_write
    assert (result.changes, result.conflicts, result.crm_owned_updates) == ({}, (), {})
    assert result.new_last == state


def test_a_connect_change_to_an_untouched_crm_field_is_written() -> None:
    last = {"name": "Acme", "city": "Oslo"}

    result = diff({"name": "Acme", "city": "Bergen"}, dict(last), last, RULES)

    assert result.changes == {"city": "Bergen"}
    assert result.conflicts == ()
    assert result.new_last["city"] == "Bergen"


def test_our_own_write_coming_back_is_not_a_conflict() -> None:
    # The CRM shows exactly what we wrote (and bumped its modified date): nothing to do.
    written = {"name": "Acme", "city": "Bergen", "phone": None}

    result = diff(written, dict(written), written, RULES)

    assert not result.needs_write
    assert result.conflicts == ()


def test_a_crm_edit_to_a_connect_owned_field_is_overwritten_by_default_and_recorded() -> None:
    last = {"name": "Acme", "city": "Oslo"}
    crm = {"name": "Acme", "city": "Oslo (HQ)"}

    result = diff({"name": "Acme", "city": "Bergen"}, crm, last, RULES)

    assert result.changes == {"city": "Bergen"}
    assert result.conflicts == (Conflict("city", "Bergen", "Oslo (HQ)", "Oslo", "overwritten"),)
    assert result.new_last["city"] == "Bergen"


def test_a_crm_edit_under_crm_wins_is_kept_and_stays_recognised_as_an_edit() -> None:
    rules = {"city": FieldRule("connect", "crm_wins")}
    last = {"city": "Oslo"}
    crm = {"city": "Oslo (HQ)"}

    first = diff({"city": "Bergen"}, crm, last, rules)
    second = diff({"city": "Bergen"}, crm, first.new_last, rules)

    assert first.changes == {}
    assert second.changes == {}
    assert first.conflicts == (Conflict("city", "Bergen", "Oslo (HQ)", "Oslo", "kept"),)
    assert first.new_last == {"city": "Oslo"}
    assert second.conflicts == first.conflicts


def test_a_crm_edit_under_manual_is_left_to_an_operator() -> None:
    rules = {"city": FieldRule("connect", "manual"), "name": CONNECT}
    last = {"city": "Oslo", "name": "Acme"}
    crm = {"city": "Oslo (HQ)", "name": "Acme"}

    result = diff({"city": "Bergen", "name": "Acme AS"}, crm, last, rules)

    assert result.changes == {"name": "Acme AS"}  # the other fields still go
    assert result.unresolved == (Conflict("city", "Bergen", "Oslo (HQ)", "Oslo", "manual"),)


def test_a_crm_edit_that_matches_what_connect_wants_is_no_conflict() -> None:
    result = diff({"city": "Bergen"}, {"city": "Bergen"}, {"city": "Oslo"}, RULES)

    assert (result.changes, result.conflicts) == ({}, ())
    assert result.new_last["city"] == "Bergen"


def test_a_crm_edit_to_a_crm_owned_field_goes_back_to_connect_not_over_it() -> None:
    result = diff({"phone": "+47 1"}, {"phone": "+47 2"}, {"phone": "+47 1"}, RULES)

    assert result.changes == {}
    assert result.conflicts == ()
    assert result.crm_owned_updates == {"phone": "+47 2"}
    assert result.new_last["phone"] == "+47 2"


def test_a_connect_change_to_a_crm_owned_field_is_not_written() -> None:
    result = diff({"phone": "+47 9"}, {"phone": "+47 1"}, {"phone": "+47 1"}, RULES)

    assert (result.changes, result.crm_owned_updates) == ({}, {})


def test_a_crm_owned_value_connect_already_has_is_not_sent_back() -> None:
    # First sight of an existing CRM record: the CRM value differs from `last` (none) but
    # Connect holds it already.
    result = diff({"phone": "+47 1"}, {"phone": "+47 1"}, None, RULES)

    assert result.crm_owned_updates == {}


def test_first_link_to_an_existing_crm_record_treats_its_values_as_crm_edits() -> None:
    crm = {"name": "ACME (old)", "city": None}

    result = diff({"name": "Acme", "city": "Oslo"}, crm, None, RULES)

    assert not result.create
    assert result.changes == {"name": "Acme", "city": "Oslo"}
    assert [c.field for c in result.conflicts] == ["name"]  # an empty CRM field is no edit


def test_fields_outside_the_mapping_are_never_touched() -> None:
    crm = {"name": "Acme", "description": "VIP, call before visiting"}

    result = diff({"name": "Acme 2", "stray": "x"}, crm, {"name": "Acme"}, {"name": CONNECT})

    assert result.changes == {"name": "Acme 2"}
    assert set(result.new_last) == {"name"}


@pytest.mark.parametrize(
    ("a", "b"),
    [(None, ""), ("", "   "), ("Oslo", " Oslo "), ("a\r\nb", "a\nb"), (None, "\n")],
)
def test_blank_whitespace_and_line_endings_do_not_count_as_differences(
    a: str | None, b: str | None
) -> None:
    assert same(a, b)
    result = diff({"city": a}, {"city": b}, {"city": "something else"}, RULES)
    assert (result.changes, result.conflicts) == ({}, ())


def test_case_is_a_real_difference() -> None:
    assert not same("oslo", "Oslo")
    assert normalise("  ") is None


def test_a_plan_needs_a_write_when_either_record_does() -> None:
    nothing = diff({"name": "A"}, {"name": "A"}, {"name": "A"}, {"name": CONNECT})
    create = diff({"email": "a@b"}, None, None, {"email": CONNECT})

    assert not Plan("TA-1", nothing).needs_write
    assert Plan("TA-1", nothing, create).needs_write
    assert not Plan("TA-1", nothing, nothing).has_conflicts


def test_a_round_trip_through_the_memory_crm_leaves_nothing_to_do() -> None:
    mapping = default_mapping("hubspot")
    ta: dict[str, Any] = {
        "id": "TA-0001-0002-0003",
        "name": "Fjord Data AS",
        "tax_id": "NO999888777",
        "contact_info": {"address_line1": "Storgata 1", "city": "Oslo", "country": "Norway"},
    }
    crm = MemoryCrm.for_mapping(mapping)
    wanted, _ = apply(mapping, ta)
    rules = mapping.account_rules()

    first = diff(wanted, None, None, rules)
    crm.upsert([Upsert(ta["id"], first.changes)])
    echoed = list(crm.changed_since(crm.now()))  # our own write comes back
    second = diff(wanted, echoed[0].fields, first.new_last, rules)

    assert [r.key for r in echoed] == [ta["id"]]
    assert not second.needs_write
    assert second.conflicts == ()


# ---- properties --------------------------------------------------------------------------

FIELDS = ("a", "b", "c", "d")
VALUES = st.one_of(st.none(), st.sampled_from(["", " ", "x", " x", "y", "Y", "z\r\nw", "z\nw"]))
RULE = st.builds(
    FieldRule,
    owner=st.sampled_from(["connect", "crm"]),
    policy=st.sampled_from([None, "connect_wins", "crm_wins", "manual"]),
).filter(lambda r: r.owner == "connect" or r.policy in (None, "crm_wins"))
RULES_ST = st.dictionaries(st.sampled_from(FIELDS), RULE, min_size=1)
RECORD = st.dictionaries(st.sampled_from((*FIELDS, "extra1", "extra2")), VALUES)
MAYBE_RECORD = st.one_of(st.none(), RECORD)


@given(rules=RULES_ST, wanted=RECORD, crm=MAYBE_RECORD, last=MAYBE_RECORD)
def test_applying_a_diff_then_diffing_again_leaves_nothing_to_write(
    rules: dict[str, FieldRule],
    wanted: dict[str, str | None],
    crm: dict[str, str | None] | None,
    last: dict[str, str | None] | None,
) -> None:
    first = diff(wanted, crm, last, rules)

    second = diff(wanted, _applied(crm, first), first.new_last, rules)

    assert not second.needs_write
    assert second.crm_owned_updates == {}
    assert all(c.resolution != "overwritten" for c in second.conflicts)
    assert all(same(second.new_last[f], first.new_last[f]) for f in rules)


@given(rules=RULES_ST, wanted=RECORD, crm=MAYBE_RECORD, last=MAYBE_RECORD)
def test_fields_outside_the_mapping_never_appear_in_the_diff(
    rules: dict[str, FieldRule],
    wanted: dict[str, str | None],
    crm: dict[str, str | None] | None,
    last: dict[str, str | None] | None,
) -> None:
    result = diff(wanted, crm, last, rules)

    assert set(result.changes) <= set(rules)
    assert set(result.crm_owned_updates) <= set(rules)
    assert {c.field for c in result.conflicts} <= set(rules)
    assert set(result.new_last) == set(rules)
    after = _applied(crm, result)
    assert {k: v for k, v in after.items() if k not in rules} == {
        k: v for k, v in (crm or {}).items() if k not in rules
    }


@given(rules=RULES_ST, state=RECORD)
def test_the_diff_of_equal_states_is_empty(
    rules: dict[str, FieldRule], state: dict[str, str | None]
) -> None:
    result = diff(state, dict(state), dict(state), rules)

    assert not result.needs_write
    assert (result.changes, result.conflicts, result.crm_owned_updates) == ({}, (), {})


@given(rules=RULES_ST, wanted=RECORD, crm=RECORD, last=MAYBE_RECORD)
def test_a_crm_owned_field_of_an_existing_record_is_never_written(
    rules: dict[str, FieldRule],
    wanted: dict[str, str | None],
    crm: dict[str, str | None],
    last: dict[str, str | None] | None,
) -> None:
    result = diff(wanted, crm, last, rules)

    crm_owned = {f for f, rule in rules.items() if rule.owner == "crm"}
    assert not crm_owned & set(result.changes)
    for name in crm_owned & set(result.crm_owned_updates):
        assert result.crm_owned_updates[name] == crm.get(name)


@given(rules=RULES_ST, wanted=RECORD, crm=MAYBE_RECORD, last=MAYBE_RECORD)
def test_with_connect_wins_the_crm_ends_up_with_what_connect_wants(
    rules: dict[str, FieldRule],
    wanted: dict[str, str | None],
    crm: dict[str, str | None] | None,
    last: dict[str, str | None] | None,
) -> None:
    after = _applied(crm, diff(wanted, crm, last, rules))

    for name, rule in rules.items():
        if rule.owner == "connect" and rule.effective_policy == "connect_wins":
            assert same(after.get(name), wanted.get(name))


@given(rules=RULES_ST, wanted=RECORD, written=RECORD)
def test_our_own_writes_coming_back_are_never_conflicts(
    rules: dict[str, FieldRule], wanted: dict[str, str | None], written: dict[str, str | None]
) -> None:
    result = diff(wanted, dict(written), written, rules)

    assert result.conflicts == ()
    assert result.crm_owned_updates == {}


@given(rules=RULES_ST, wanted=RECORD, crm=RECORD, last=MAYBE_RECORD)
def test_a_field_already_as_wanted_is_never_written(
    rules: dict[str, FieldRule],
    wanted: dict[str, str | None],
    crm: dict[str, str | None],
    last: dict[str, str | None] | None,
) -> None:
    result = diff(wanted, crm, last, rules)

    assert all(not same(wanted.get(f), crm.get(f)) for f in result.changes)


@given(rules=RULES_ST, wanted=RECORD, crm=RECORD, last=MAYBE_RECORD)
def test_once_crm_owned_updates_reach_connect_both_sides_agree(
    rules: dict[str, FieldRule],
    wanted: dict[str, str | None],
    crm: dict[str, str | None],
    last: dict[str, str | None] | None,
) -> None:
    first = diff(wanted, crm, last, rules)
    connect_after = {**wanted, **first.crm_owned_updates}

    second = diff(connect_after, _applied(crm, first), first.new_last, rules)

    assert not second.needs_write
    assert second.crm_owned_updates == {}
    for name in first.crm_owned_updates:
        assert same(connect_after[name], crm.get(name))
