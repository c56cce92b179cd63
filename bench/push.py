"""Push benchmark: syncd's plan and push phases against one-record-per-request writes.

    .venv/bin/python bench/push.py                      # 10,000 accounts, both CRMs
    .venv/bin/python bench/push.py --accounts 2000 --crm hubspot

The Connect simulator is seeded with the accounts and pulled into a private Postgres once (not
timed). Then, for each CRM simulator (a separate process, rate limits off so that both contestants
are bound by their own requests, not by the simulated quota):

- syncd: one push phase (read current CRM state in batches, three-way diff, batched upserts,
  links and ledger committed per batch) into a fresh CRM;
- baseline: what a per-record script does, in the same run, into another fresh CRM: for each
  account the company/Account, then its contact, each in a request of its own.

Requests are counted at the HTTP transport, by kind, for both. Prints records per second, the
speed-up, and calls per batch-size accounts against the targets (HubSpot: at most 2 writes and 1
read per 100 accounts; Salesforce: the same per 200).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from syncd.crm.hubspot import HubSpotAdapter  # noqa: E402
from syncd.crm.port import CrmPort, Upsert  # noqa: E402
from syncd.crm.salesforce import SalesforceAdapter  # noqa: E402
from syncd.domain.mapping import Mapping, apply, default_mapping  # noqa: E402

TOKEN = "bench-token"  # noqa: S105 - the simulators' token here


def kind_of(request: httpx.Request) -> str:
    path = request.url.path
    if "search" in path or "/query" in path:
        return "read" if "/query" in path else "search"
    if "batch/read" in path or "/associations/" in path and request.method == "GET":
        return "read"
    if "/properties/" in path or "/describe" in path:
        return "metadata"
    return "write" if request.method in ("POST", "PATCH", "PUT") else "read"


class CountingTransport(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.counts[kind_of(request)] += 1
        return super().handle_request(request)


def start_crm(name: str) -> tuple[subprocess.Popen[str], str]:
    options = {
        "hubspot": ["--token", TOKEN, "--setup", "--burst-limit", "0", "--daily-limit", "0",
                    "--search-rate", "0"],
        "salesforce": ["--token", TOKEN, "--daily-limit", "100000000"],
    }[name]
    process = subprocess.Popen(
        [sys.executable, "-m", "syncd", "sim", name, "--port", "0", *options],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    url = next(word for word in line.split() if word.startswith("http://"))
    return process, url.rstrip(",")


def adapter(name: str, url: str, mapping: Mapping, transport: httpx.BaseTransport) -> CrmPort:
    account = [f.target for f in mapping.account]
    contact = [f.target for f in mapping.contact]
    if name == "hubspot":
        return HubSpotAdapter(url, TOKEN, transport=transport, company_fields=account,
                              contact_fields=contact, search_rate=None)
    return SalesforceAdapter(url, TOKEN, transport=transport, account_fields=account,
                             contact_fields=contact)


def run_syncd(name: str, url: str, database: str, mapping: Mapping) -> dict[str, Any]:
    from sqlalchemy import create_engine

    from syncd.sync.push import PushOptions, PushPhase

    transport = CountingTransport()
    crm = adapter(name, url, mapping, transport)
    engine = create_engine(database)
    transport.counts.clear()
    started = time.perf_counter()
    counts = PushPhase(engine, crm, mapping, PushOptions(), run_id=None).run()
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"seconds": seconds, "records": counts.created + counts.updated,
            "requests": dict(transport.counts), "failed": counts.rejected + counts.retry}


def run_baseline(name: str, url: str, records: list[dict[str, Any]], mapping: Mapping
                 ) -> dict[str, Any]:
    transport = CountingTransport()
    crm = adapter(name, url, mapping, transport)
    started = time.perf_counter()
    for record in records:
        fields, contact = apply(mapping, record)
        key = record["id"]
        crm.upsert([Upsert(key, {**fields, mapping.key_property: key})])
        if contact is not None:
            crm.upsert([Upsert(key, {mapping.key_property: key}, contact)])
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "records": len(records), "requests": dict(transport.counts)}


def report(name: str, batch: int, ours: dict[str, Any], base: dict[str, Any]) -> None:
    ours_rate = ours["records"] / ours["seconds"]
    base_rate = base["records"] / base["seconds"]
    per = ours["records"] / batch
    writes = ours["requests"].get("write", 0) / per
    reads = ours["requests"].get("read", 0) / per
    print(f"\n{name}")
    print(f"  syncd     {ours['records']:>6,} accounts {ours['seconds']:7.2f} s "
          f"{ours_rate:>8,.0f} accounts/s  requests {ours['requests']}")
    print(f"  baseline  {base['records']:>6,} accounts {base['seconds']:7.2f} s "
          f"{base_rate:>8,.0f} accounts/s  requests {base['requests']}")
    print(f"  speed-up {ours_rate / base_rate:.1f}x (target at least 10x); per {batch} accounts: "
          f"{writes:.2f} writes, {reads:.2f} reads (target at most 2 and 1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--baseline-accounts", type=int, default=2_000,
                        help="accounts the per-record baseline writes (its rate is per second)")
    parser.add_argument("--crm", choices=["hubspot", "salesforce"], action="append")
    args = parser.parse_args()

    from sqlalchemy import create_engine

    from syncd.connect.client import ConnectClient
    from syncd.pgcluster import PgCluster
    from syncd.sim.base import SimServer
    from syncd.sim.connect import ConnectSim
    from syncd.store import migrate
    from syncd.sync.pull import PullOptions, PullPhase

    sim = ConnectSim("bench")
    sim.seed(1, accounts=args.accounts)
    records = [sim.account(a) for a in sorted(sim.accounts)]
    with PgCluster() as cluster, SimServer(sim) as connect:
        template = cluster.create_database("mirror")
        migrate.upgrade(template)
        engine = create_engine(template)
        with ConnectClient(f"{connect.url}/public/v1", "bench") as client:
            PullPhase(engine, client, PullOptions(), run_id=None).run()
        engine.dispose()
        print(f"{len(records):,} accounts mirrored; baseline writes "
              f"{min(args.baseline_accounts, len(records)):,} of them")
        for name in args.crm or ["hubspot", "salesforce"]:
            mapping = default_mapping(name)
            batch = 100 if name == "hubspot" else 200
            database = cluster.create_database(f"push_{name}", template="mirror")
            runs: dict[str, Callable[[str], dict[str, Any]]] = {
                "syncd": lambda url: run_syncd(name, url, database, mapping),  # noqa: B023
                "baseline": lambda url: run_baseline(  # noqa: B023
                    name, url, records[: args.baseline_accounts], mapping  # noqa: B023
                ),
            }
            results = {}
            for contestant, run in runs.items():
                process, url = start_crm(name)
                try:
                    results[contestant] = run(url)
                finally:
                    process.terminate()
                    process.wait()
            report(name, batch, results["syncd"], results["baseline"])


if __name__ == "__main__":
    main()
