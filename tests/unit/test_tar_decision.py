"""What the write-back does with one pending TAR, from the facts the mirror holds."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from syncd.domain.tar_decision import (
    CRM_PENDING,
    FLAG_OFF,
    FLAG_OFF_REASON,
    FLAG_UNDECIDED,
    MANUAL_CONFLICT,
    NO_CRM_MESSAGE,
    NOT_IN_CRM,
    Decision,
    TarFacts,
    cut_reason,
    decide,
)

SYNCED = TarFacts(
    account_version=5,
    sync_enabled=True,
    link_state="synced",
    synced_version=5,
    attempted_version=5,
    last_error=None,
    open_conflict=False,
)


def test_a_tar_whose_version_is_in_the_crm_is_accepted() -> None:
    assert decide(SYNCED).action == "accept"
    assert decide(replace(SYNCED, synced_version=7, attempted_version=7)).action == "accept"


def test_an_older_tar_is_accepted_even_when_a_newer_version_was_refused() -> None:
    facts = replace(SYNCED, link_state="rejected", attempted_version=6, last_error="bad email")

    assert decide(facts).action == "accept"
    assert decide(replace(facts, account_version=6)) == Decision("ignore", "bad email")


def test_a_refused_version_is_ignored_with_the_crms_message_cut_to_255() -> None:
    message = "  DUPLICATE_VALUE: " + "x" * 400
    facts = replace(
        SYNCED, link_state="rejected", synced_version=4, attempted_version=5, last_error=message
    )

    decision = decide(facts)

    assert decision.action == "ignore"
    assert decision.reason == message.strip()[:255]
    assert len(decision.reason) == 255


def test_a_refusal_without_a_message_still_gives_a_reason() -> None:
    facts = replace(
        SYNCED, link_state="rejected", synced_version=None, attempted_version=5, last_error=" "
    )

    assert decide(facts) == Decision("ignore", NO_CRM_MESSAGE)


def test_retryable_and_unknown_outcomes_leave_the_tar_pending() -> None:
    for state in ("retry", "unknown"):
        facts = replace(SYNCED, link_state=state, synced_version=4, attempted_version=5)
        assert decide(facts) == Decision(None, CRM_PENDING)


def test_a_version_the_push_has_not_reached_leaves_the_tar_pending() -> None:
    assert decide(replace(SYNCED, synced_version=4)) == Decision(None, NOT_IN_CRM)
    never = replace(SYNCED, link_state=None, synced_version=None, attempted_version=None)
    assert decide(never) == Decision(None, NOT_IN_CRM)
    older_refusal = replace(SYNCED, link_state="rejected", synced_version=3, attempted_version=4)
    assert decide(older_refusal) == Decision(None, NOT_IN_CRM)


def test_sync_off_leaves_the_tar_or_ignores_it_with_the_ignore_policy() -> None:
    off = replace(SYNCED, sync_enabled=False)

    assert decide(off) == Decision(None, FLAG_OFF)
    assert decide(off, "ignore") == Decision("ignore", FLAG_OFF_REASON)


def test_an_undecided_flag_leaves_the_tar_whatever_the_policy() -> None:
    undecided = replace(SYNCED, sync_enabled=None)

    assert decide(undecided, "ignore") == Decision(None, FLAG_UNDECIDED)


def test_an_open_manual_conflict_leaves_even_a_synced_tar_pending() -> None:
    assert decide(replace(SYNCED, open_conflict=True)) == Decision(None, MANUAL_CONFLICT)


def test_the_flag_off_reason_fits_connects_limit() -> None:
    assert 0 < len(FLAG_OFF_REASON) <= 255
    assert cut_reason(None) == NO_CRM_MESSAGE


FACTS = st.builds(
    TarFacts,
    account_version=st.integers(1, 10),
    sync_enabled=st.sampled_from([True, False, None]),
    link_state=st.sampled_from([None, "synced", "retry", "rejected", "unknown"]),
    synced_version=st.one_of(st.none(), st.integers(1, 10)),
    attempted_version=st.one_of(st.none(), st.integers(1, 10)),
    last_error=st.one_of(st.none(), st.text(max_size=600)),
    open_conflict=st.booleans(),
)


@given(facts=FACTS, policy=st.sampled_from(["leave", "ignore"]))
def test_no_tar_is_accepted_unless_its_version_is_in_the_crm_with_sync_on(
    facts: TarFacts, policy: str
) -> None:
    decision = decide(facts, policy)  # type: ignore[arg-type]

    if decision.action == "accept":
        assert facts.sync_enabled is True
        assert not facts.open_conflict
        assert facts.synced_version is not None
        assert facts.synced_version >= facts.account_version
    if decision.action == "ignore":
        assert 0 < len(decision.reason) <= 255
        assert facts.sync_enabled is not None
    if facts.sync_enabled is not True:
        assert decision.action != "accept"
