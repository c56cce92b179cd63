"""`syncd demo`: the whole job on this machine, with nothing configured.

A private Postgres cluster, the Connect simulator seeded with a few hundred accounts, a CRM
simulator (HubSpot, or Salesforce with `--crm salesforce`), and cycles run while the Connect
simulator keeps changing some accounts, as a provider would.
"""

from __future__ import annotations

import random
import time
from contextlib import ExitStack
from typing import Any

from sqlalchemy import Engine, create_engine, func, select

from syncd.connect.client import ConnectClient
from syncd.crm.hubspot import HubSpotAdapter
from syncd.crm.port import CrmPort
from syncd.crm.salesforce import SalesforceAdapter
from syncd.domain.mapping import Mapping, default_mapping
from syncd.pgcluster import PgCluster, PgClusterError, PostgresNotFoundError
from syncd.sim.base import SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from syncd.sim.salesforce import SalesforceSim
from syncd.store import migrate
from syncd.store.schema import crm_links, tier_account_requests
from syncd.sync.cycle import CycleResult, run_cycle
from syncd.sync.pull import PullOptions

API_KEY = "SU-000-000-000:demo"
CRM_TOKEN = "demo-token"  # noqa: S105 - the demo simulators' own token
CHANGES_PER_CYCLE = 5


def run_demo(cycles: int, accounts: int, interval: float, crm: str = "hubspot") -> int:
    """Run until Ctrl-C, or for `cycles` cycles; exit code 0 unless the setup failed."""
    with ExitStack() as stack:
        try:
            cluster = stack.enter_context(PgCluster())
        except (PostgresNotFoundError, PgClusterError) as exc:
            print(f"syncd demo: {exc}")
            return 1
        url = cluster.create_database("syncd")
        migrate.upgrade(url)
        sim = ConnectSim(API_KEY)
        summary = sim.seed(1, accounts=accounts)
        connect = stack.enter_context(SimServer(sim))
        crm_server, adapter = _crm(crm, stack)
        print(
            f"Connect simulator at {connect.url}/public/v1: {summary.accounts} accounts, "
            f"{summary.tars} tier account requests ({summary.pending} pending)"
        )
        print(f"{crm} simulator at {crm_server.url}")
        print("Postgres for this demo, while it runs:")
        print(f"  psql {url.replace('+psycopg', '')}")
        print(f"  SYNCD_DATABASE_URL='{url}' syncd status")
        print("Ctrl-C stops the demo." if not cycles else f"Running {cycles} cycles.")
        engine = create_engine(url)
        stack.callback(engine.dispose)
        client = stack.enter_context(ConnectClient(f"{connect.url}/public/v1", API_KEY))
        try:
            _cycles(engine, client, sim, adapter, default_mapping(crm), cycles, interval)
        except KeyboardInterrupt:
            print("\nstopped")
    return 0


def _crm(name: str, stack: ExitStack) -> tuple[SimServer, CrmPort]:
    mapping = default_mapping(name)
    if name == "hubspot":
        server = stack.enter_context(SimServer(HubSpotSim(CRM_TOKEN, custom_properties=True)))
        hubspot = HubSpotAdapter.for_mapping(server.url, CRM_TOKEN, mapping)
        stack.callback(hubspot.close)
        return server, hubspot
    server = stack.enter_context(SimServer(SalesforceSim(CRM_TOKEN)))
    salesforce = SalesforceAdapter(
        server.url,
        CRM_TOKEN,
        account_fields=[f.target for f in mapping.account],
        contact_fields=[f.target for f in mapping.contact],
    )
    stack.callback(salesforce.close)
    return server, salesforce


def _cycles(
    engine: Engine,
    client: ConnectClient,
    sim: ConnectSim,
    crm: CrmPort,
    mapping: Mapping,
    cycles: int,
    interval: float,
) -> None:
    rng = random.Random(2)
    number = 0
    while not cycles or number < cycles:
        number += 1
        if number > 1:
            for account_id in rng.sample(sorted(sim.accounts), CHANGES_PER_CYCLE):
                sim.change_account(account_id)
        before = client.stats.total
        result = run_cycle(
            engine,
            client,
            PullOptions(),
            trigger="demo",
            crm=crm,
            mapping=mapping,
            sync_default=False,
        )
        print(_line(number, result, engine, client.stats.total - before))
        if not cycles or number < cycles:
            time.sleep(interval)


def _line(number: int, result: CycleResult, engine: Engine, calls: int) -> str:
    pulled: dict[str, Any] = result.counts["pull"]
    flags: dict[str, Any] = result.counts.get("flags", {})
    pushed: dict[str, Any] = result.counts.get("push", {})
    written_back: dict[str, Any] = result.counts.get("writeback", {})
    with engine.connect() as conn:
        pending = conn.execute(
            select(func.count())
            .select_from(tier_account_requests)
            .where(tier_account_requests.c.status == "pending")
        ).scalar_one()
        linked = conn.execute(select(func.count()).select_from(crm_links)).scalar_one()
    return (
        f"cycle {number}: {result.outcome}; pulled {pulled['requests_written']} TARs and "
        f"{pulled['accounts_written']} accounts ({calls} Connect calls); CRM "
        f"{pushed.get('created', 0)} created, {pushed.get('updated', 0)} updated, "
        f"{pushed.get('rejected', 0)} rejected; TARs {written_back.get('accepted', 0)} accepted, "
        f"{written_back.get('ignored', 0)} ignored, {pending} pending; sync off for "
        f"{flags.get('disabled', 0)} accounts (skipped), {linked} accounts in the CRM"
        + (f"; error: {result.error}" if result.error else "")
    )
