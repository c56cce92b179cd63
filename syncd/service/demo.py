"""`syncd demo`: the whole job on this machine, with nothing configured.

A private Postgres cluster, the Connect simulator seeded with a few hundred accounts, and cycles
run while the simulator keeps changing some accounts, as a provider would.
"""

from __future__ import annotations

import random
import time

from sqlalchemy import create_engine, func, select

from syncd.connect.client import ConnectClient
from syncd.pgcluster import PgCluster, PgClusterError, PostgresNotFoundError
from syncd.sim.base import SimServer
from syncd.sim.connect import ConnectSim
from syncd.store import migrate
from syncd.store.schema import tier_account_requests
from syncd.sync.cycle import run_cycle
from syncd.sync.pull import PullOptions

API_KEY = "SU-000-000-000:demo"
CHANGES_PER_CYCLE = 5


def run_demo(cycles: int, accounts: int, interval: float) -> int:
    """Run until Ctrl-C, or for `cycles` cycles; exit code 0 unless the setup failed."""
    cluster = PgCluster()
    try:
        cluster.start()
    except (PostgresNotFoundError, PgClusterError) as exc:
        print(f"syncd demo: {exc}")
        cluster.close()
        return 1
    server: SimServer | None = None
    try:
        url = cluster.create_database("syncd")
        migrate.upgrade(url)
        sim = ConnectSim(API_KEY)
        summary = sim.seed(1, accounts=accounts)
        server = SimServer(sim).start()
        print(
            f"Connect simulator at {server.url}/public/v1: {summary.accounts} accounts, "
            f"{summary.tars} tier account requests ({summary.pending} pending)"
        )
        print("Postgres for this demo (while it runs):")
        print(f"  psql {url.replace('+psycopg', '')}")
        print(f"  SYNCD_DATABASE_URL='{url}' syncd status")
        print("Ctrl-C stops the demo." if not cycles else f"Running {cycles} cycles.")
        _cycles(url, sim, server, cycles, interval)
    except KeyboardInterrupt:
        print("\nstopped")
    finally:
        if server is not None:
            server.stop()
        cluster.close()
    return 0


def _cycles(url: str, sim: ConnectSim, server: SimServer, cycles: int, interval: float) -> None:
    engine = create_engine(url)
    rng = random.Random(2)
    number = 0
    try:
        with ConnectClient(f"{server.url}/public/v1", API_KEY) as client:
            while not cycles or number < cycles:
                number += 1
                if number > 1:
                    for account_id in rng.sample(sorted(sim.accounts), CHANGES_PER_CYCLE):
                        sim.change_account(account_id, name=f"{sim.account(account_id)['name']}*")
                before = client.stats.total
                result = run_cycle(engine, client, PullOptions(), trigger="demo")
                pulled = result.counts["pull"]
                with engine.connect() as conn:
                    pending = conn.execute(
                        select(func.count())
                        .select_from(tier_account_requests)
                        .where(tier_account_requests.c.status == "pending")
                    ).scalar_one()
                print(
                    f"cycle {number}: {result.outcome}; {pulled['requests_written']} requests "
                    f"and {pulled['accounts_written']} accounts stored, {pending} pending, "
                    f"{client.stats.total - before} Connect calls"
                )
                if not cycles or number < cycles:
                    time.sleep(interval)
    finally:
        engine.dispose()
