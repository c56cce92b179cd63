"""The world of the crash-point matrix (`test_crash_matrix.py`): simulators, a database synced
once in-process, the changes made before the killed process, and the `syncd` processes.

The changes, on both sides: accounts edited (some twice); new accounts linked through assets to a
new product, to a product without the sync capability, or to none; a product switched on; an
account switched off by its override though it has a pending TAR; a contact email the CRM refuses
(its TARs are ignored); in HubSpot, an email a CRM user already holds as an unlinked contact (the
association call); and, when asked, a CRM-owned field edited in the CRM (a PUT to Connect).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select

from syncd.connect.client import ConnectClient
from syncd.crm.hubspot import HubSpotAdapter
from syncd.crm.port import CrmPort
from syncd.crm.salesforce import SalesforceAdapter
from syncd.domain.mapping import Mapping, mapping_from_toml
from syncd.sim.base import SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from syncd.store.flags import set_override
from syncd.store.schema import sync_runs
from syncd.sync.cycle import run_cycle
from syncd.sync.pull import PullOptions
from tests.e2e.invariants import World

KEY = "SU-000-000-000:matrix-key"
TOKEN = "matrix-crm-token"
PAGE = 5
NEW_PHONE = "+1 555 0199"
PROCESS_TIMEOUT = 120.0
HUBSPOT_CONFIG = """
[mapping.account]
phone = { source = "contact_info.contact.phone_number", transform = "phone", owner = "crm" }
[mapping.contact]
phone = false
"""
"""The company's phone belongs to the CRM (its edits go back to Connect with a PUT); the
contact's phone, from the same TA field, is left out so that it never echoes back."""


def syncd(
    *args: str, env: dict[str, str], timeout: float = PROCESS_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncd", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Case:
    """A world after its first sync and the changes, and what the checks need to know."""

    world: World
    env: dict[str, str]
    prefix: list[str]
    """`--config FILE` when the mapping is not the default."""
    warm_on: set[str]
    """Accounts whose sync was on in the first sync."""
    refused: set[str] = field(default_factory=set)
    put_account: str | None = None

    def sync(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return syncd(*self.prefix, *args, env={**self.env, **env})


def adapter(crm: str, url: str, fields: Mapping) -> CrmPort:
    """A CRM adapter as `syncd.bootstrap` builds one, for the in-process first sync."""
    account = [f.target for f in fields.account]
    contact = [f.target for f in fields.contact]
    if crm == "hubspot":
        return HubSpotAdapter(
            url,
            TOKEN,
            company_fields=account,
            contact_fields=contact,
            key_property=fields.key_property,
            contact_key=fields.contact_key_property,
        )
    return SalesforceAdapter(url, TOKEN, account_fields=account, contact_fields=contact)


def make_case(
    crm: str, database_url: str, servers: tuple[SimServer, SimServer], tmp_path: Path
) -> Case:
    """The world of the module's doc: synced once in-process, then changed."""
    connect_server, crm_server = servers
    assert isinstance(connect_server.app, ConnectSim)
    prefix: list[str] = []
    table: dict[str, Any] = {}
    if crm == "hubspot":
        config = tmp_path / "syncd.toml"
        config.write_text(HUBSPOT_CONFIG, encoding="utf-8")
        prefix = ["--config", str(config)]
        table = tomllib.loads(HUBSPOT_CONFIG)["mapping"]
    engine = create_engine(database_url)
    world = World(
        crm,
        connect_server.app,
        connect_server,
        crm_server.app,
        crm_server,
        engine,
        mapping_from_toml(crm, table),
    )
    env = {
        "SYNCD_DATABASE_URL": database_url,
        "SYNCD_CONNECT_URL": f"{connect_server.url}/public/v1",
        "SYNCD_CONNECT_API_KEY": KEY,
        "SYNCD_CRM": crm,
        "SYNCD_HUBSPOT_URL": crm_server.url,
        "SYNCD_HUBSPOT_TOKEN": TOKEN,
        "SYNCD_SALESFORCE_URL": crm_server.url,
        "SYNCD_SALESFORCE_TOKEN": TOKEN,
        "SYNCD_SYNC_DEFAULT": "off",
        "SYNCD_PAGE_SIZE": str(PAGE),
        "SYNCD_PRODUCT_TTL": "0",
        "SYNCD_HTTP_ADDR": "",
        "SYNCD_INTERVAL": "1",
        "SYNCD_SHUTDOWN_GRACE": "20",
        "SYNCD_LOG_LEVEL": "WARNING",
    }
    with ConnectClient(env["SYNCD_CONNECT_URL"], KEY, page_size=PAGE) as client:
        crm_port = adapter(crm, crm_server.url, world.mapping)
        try:
            first = run_cycle(
                engine,
                client,
                PullOptions(page_size=PAGE),
                crm=crm_port,
                mapping=world.mapping,
                sync_default=False,
            )
        finally:
            getattr(crm_port, "close", lambda: None)()
    assert first.outcome == "success", (first.error, first.counts)
    case = Case(world, env, prefix, world.flag_on())
    change(case)
    return case


def change(case: Case) -> None:
    """Both sides change between the first sync and the killed process (module doc)."""
    world, sim = case.world, case.world.connect
    on = sorted(case.warm_on)
    off = sorted(set(sim.accounts) - case.warm_on)
    products = sorted(sim.products.values(), key=lambda p: p.id)
    stays_off, *_, switched_on = [p for p in products if not p.updates]
    for account_id in on[:6] + on[:2] + off[:2]:
        sim.change_account(account_id)
    disabled = on[6]
    sim.change_account(disabled)
    with world.engine.begin() as conn:
        set_override(conn, disabled, False, actor="matrix", reason="crash test", default=False)
    world.overrides[disabled] = False
    refused = on[7]
    email = f"refused.{refused[-4:]}@example.com"
    sim.change_account(refused, contact_info={"contact": {"email": email}})
    if isinstance(world.crm_sim, HubSpotSim):
        world.crm_sim.fail_email(email)
        # A CRM user made a contact with the email this account takes: upserted, then linked.
        moved = f"moved.{on[8][-4:]}@example.com"
        with world.crm_sim.lock:
            world.crm_sim.contacts.create(
                {"email": moved, "firstname": "Made", "lastname": "InHubSpot"},
                world.crm_sim.now_ms(),
            )
        sim.change_account(on[8], contact_info={"contact": {"email": moved}})
    else:
        world.crm_sim.refuse_email(email)
    case.refused.add(refused)
    fresh = sim.add_product(updates=True)["id"]
    for n in range(6):
        account_id = sim.add_account(name=f"Matrix New {n}")["id"]
        if n < 4:
            sim.link(account_id, fresh)
        elif n == 4:
            sim.link(account_id, stays_off.id)
    sim.set_capability(switched_on.id, True)


def rerun_daemon(case: Case) -> None:
    """`syncd run` until it finished one cycle more, then SIGTERM."""
    engine = case.world.engine
    with subprocess.Popen(
        [sys.executable, "-m", "syncd", *case.prefix, "run"],
        env={**os.environ, **case.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as daemon:
        deadline = time.monotonic() + PROCESS_TIMEOUT
        while not finished_runs(engine, daemon.pid):
            if daemon.poll() is not None or time.monotonic() > deadline:
                daemon.kill()
                pytest.fail(f"the daemon finished no cycle: {daemon.communicate()[1][-3000:]}")
            time.sleep(0.1)
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=PROCESS_TIMEOUT)
        assert daemon.returncode == 0, err[-3000:]


def finished_runs(engine: Engine, pid: int) -> int:
    with engine.connect() as conn:
        rows = conn.execute(
            select(sync_runs.c.id).where(
                sync_runs.c.pid == pid, sync_runs.c.outcome.in_(("success", "partial"))
            )
        )
        return len(rows.all())


def edit_phone(world: World, account_id: str) -> None:
    """A CRM user's edit of a CRM-owned field: the write-back takes it to Connect (PUT)."""
    assert isinstance(world.crm_sim, HubSpotSim)
    world.crm_sim.edit_company(account_id, phone=NEW_PHONE)
