"""The writer lock's key and how a holder is named and found again (no database)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from syncd.store.lock import (
    WRITER_LOCK,
    application_name,
    busy_message,
    lock_key,
    parse_holder,
)

MIGRATION_LOCK_KEY = 0x73796E6364  # alembic/env.py: the writer lock must not share it


@given(st.text(max_size=200))
def test_every_name_gives_a_stable_signed_64_bit_key(name: str) -> None:
    key = lock_key(name)
    assert -(2**63) <= key < 2**63
    assert lock_key(name) == key


def test_the_writer_lock_key_is_fixed_and_not_the_migration_lock() -> None:
    # A key that changed between versions would let an old and a new syncd run at once.
    assert lock_key(WRITER_LOCK) == lock_key("syncd.writer")
    assert lock_key(WRITER_LOCK) != MIGRATION_LOCK_KEY
    assert lock_key(WRITER_LOCK) != lock_key("syncd.writer2")


hosts = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40
)


@given(st.integers(min_value=1, max_value=4_194_304), hosts)
def test_a_holder_named_by_syncd_is_read_back_as_its_pid_and_host(pid: int, host: str) -> None:
    holder = parse_holder(77, application_name(pid, host))
    assert (holder.pid, holder.host) == (pid, host)
    assert busy_message(holder) == (
        f"another syncd is running a cycle on this database (pid {pid} on host {host})"
    )


def test_a_long_host_name_is_cut_to_what_postgres_keeps() -> None:
    name = application_name(12, "h" * 100)
    assert len(name.encode()) == 63
    assert parse_holder(1, name).pid == 12


def test_a_holder_that_is_not_syncd_is_named_by_its_backend() -> None:
    holder = parse_holder(4321, "psql")
    assert holder.pid is None
    assert busy_message(holder).endswith("(Postgres backend pid 4321 (psql))")
    assert "may just have finished" in busy_message(None)
