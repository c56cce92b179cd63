"""`syncd accounts list / show / enable / disable / reset` as real processes."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
from sqlalchemy import create_engine

from syncd.connect.client import ConnectClient
from syncd.sim.base import SimServer
from syncd.sim.connect import ConnectSim
from syncd.sync.cycle import run_cycle
from syncd.sync.flags import FlagPhase
from syncd.sync.pull import PullOptions

KEY = "SU-000-000-000:cli-secret-key"


def syncd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncd", "accounts", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@dataclass
class Mirror:
    env: dict[str, str]
    on: str
    """An account whose product has sync on."""
    off: str
    """An account whose product has sync off."""
    unknown: str
    """An account with no product: the default (off) applies."""


@pytest.fixture
def mirror(database_url: str) -> Mirror:
    sim = ConnectSim(KEY)
    on_product = sim.add_product(updates=True)["id"]
    off_product = sim.add_product(updates=False)["id"]
    on, off, unknown = (str(sim.add_account(name=n)["id"]) for n in ("On Ltd", "Off Ltd", "Who"))
    sim.link(on, on_product)
    sim.link(off, off_product)
    sim.change_account(on)  # a pending TAR
    engine = create_engine(database_url)
    with SimServer(sim) as server, ConnectClient(f"{server.url}/public/v1", KEY) as client:
        assert run_cycle(engine, client, PullOptions()).outcome == "success"
        FlagPhase(engine, client, default=False, run_id=None).run()
    engine.dispose()
    env = {"SYNCD_DATABASE_URL": database_url, "SYNCD_SYNC_DEFAULT": "off"}
    return Mirror(env, on, off, unknown)


def test_list_shows_every_account_with_its_flag_and_filters_on_it(mirror: Mirror) -> None:
    listed = syncd(mirror.env, "list")
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:-1]}
    assert lines[mirror.on][1:3] == ["on", "capability"]
    assert lines[mirror.off][1:3] == ["off", "capability"]
    assert lines[mirror.unknown][1:3] == ["off", "default"]
    assert listed.stdout.splitlines()[-1] == "3 accounts"

    on = json.loads(syncd(mirror.env, "list", "--flag", "on", "--json").stdout)
    off = json.loads(syncd(mirror.env, "list", "--flag", "off", "--json").stdout)
    assert [a["id"] for a in on] == [mirror.on]
    assert sorted(a["id"] for a in off) == sorted([mirror.off, mirror.unknown])
    assert on[0]["version"] == 2
    assert on[0]["synced_version"] is None


def test_disable_enable_and_reset_change_the_flag_at_once_and_keep_the_history(
    mirror: Mirror,
) -> None:
    disabled = syncd(mirror.env, "disable", mirror.on, "--reason", "legal hold", "--by", "alice")
    assert disabled.returncode == 0, disabled.stderr
    assert "sync off (override)" in disabled.stdout
    assert [
        a["id"] for a in json.loads(syncd(mirror.env, "list", "--flag", "on", "--json").stdout)
    ] == []

    enabled = syncd(mirror.env, "enable", mirror.off, "--reason", "pilot customer")
    assert enabled.returncode == 0, enabled.stderr
    reset = syncd(mirror.env, "reset", mirror.on, "--reason", "hold lifted", "--by", "bob")
    assert reset.returncode == 0, reset.stderr
    assert "sync on (capability)" in reset.stdout

    shown = syncd(mirror.env, "show", mirror.on, "--json")
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["flag"]["enabled"] is True
    assert detail["flag"]["source"] == "capability"
    history = [
        (o["actor"], o["reason"], o["old_value"], o["new_value"]) for o in detail["overrides"]
    ]
    assert history == [("alice", "legal hold", None, False), ("bob", "hold lifted", False, None)]
    assert len(detail["pending_requests"]) == 1
    other = json.loads(syncd(mirror.env, "show", mirror.off, "--json").stdout)
    assert other["overrides"][0]["actor"] == getpass.getuser()
    assert (other["flag"]["enabled"], other["flag"]["source"]) == (True, "override")


def test_show_prints_the_account_its_flag_products_and_history(mirror: Mirror) -> None:
    syncd(mirror.env, "disable", mirror.on, "--reason", "legal hold", "--by", "alice")

    shown = syncd(mirror.env, "show", mirror.on)

    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert out.startswith(f"{mirror.on}  On Ltd")
    assert "flag: off (override)" in out
    assert "capability on" in out
    assert "pending requests:\n  TAR-" in out
    assert "crm: not written yet" in out
    assert "by alice: none -> off  (legal hold)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("enable", "TA-0000-0000-0000", "--reason", "x"), "no account TA-0000-0000-0000"),
        (("show", "TA-0000-0000-0000"), "no account TA-0000-0000-0000"),
        (("disable", "TA-1", "--reason", "x"), "is not a tier account id"),
        (("disable", "{account}", "--reason", "  "), "--reason must say why"),
        (("disable", "{account}"), "the following arguments are required: --reason"),
    ],
)
def test_a_wrong_command_exits_2_with_a_clear_message(
    mirror: Mirror, args: tuple[str, ...], message: str
) -> None:
    result = syncd(mirror.env, *(a.format(account=mirror.on) for a in args))

    assert result.returncode == 2
    assert message in result.stderr
    shown = json.loads(syncd(mirror.env, "show", mirror.on, "--json").stdout)
    assert shown["overrides"] == []
