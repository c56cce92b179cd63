"""One simulator in a process of its own, for the side-by-side benchmarks (bench/scenarios.py).

    .venv/bin/python bench/simproc.py connect --dataset accounts --size 100000 --latency 0.1
    .venv/bin/python bench/simproc.py hubspot --latency 0.05

The first line on stdout is JSON: `{"url": ..., "summary": {...}}`. Then the process obeys one
command per line on stdin and answers each with one line of JSON:

- `counts`: the requests served since the last `counts` (by system-neutral kind `read`/`write`/
  `metadata` and by endpoint, ids replaced by `{id}`), and the CPU seconds this process spent
  meanwhile (parsing, filtering, rendering: what a contestant's time includes but syncd does not
  control). The request log is cleared.
- `latency SECONDS`: the latency added to every request from now on (`Faults.latency`).
- `pending`: Connect only, how many TARs are pending.
- `objects`: HubSpot only, how many companies and contacts the portal holds.
- `fill DATABASE_URL [CRM] [on|off]`: Connect only, fill syncd's mirror with what the simulator
  holds (`bench/fill.py`); with a CRM, as if syncd had pushed every enabled account.
- `quit`.

Data sets (Connect, `--dataset`): `accounts` is the simulator's generated data set (resellers,
three products, assets, a history of changes) with every TAR settled: an installation at rest.
`tars` is `--size` customers of one product whose sync capability is on, each changed once by
the provider: `--size` pending TARs, one per account.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from syncd.sim.base import SimServer  # noqa: E402
from syncd.sim.connect import ConnectSim  # noqa: E402
from syncd.sim.hubspot import HubSpotSim  # noqa: E402

CONNECT_KEY = "SU-000-000-000:bench"
CRM_TOKEN = "bench-token"
_ID_SEGMENT = re.compile(r"^(\d+|(TA|TAR|PRD|AS|PA|VA|HB)-[\d-]+)$")


def endpoint(method: str, path: str) -> str:
    """`METHOD /path` with the API prefix dropped and ids replaced by `{id}`."""
    path = path.removeprefix("/public/v1").rstrip("/")
    parts = ["{id}" if _ID_SEGMENT.match(part) else part for part in path.split("/")]
    return f"{method} {'/'.join(parts)}"


def kind(system: str, method: str, path: str) -> str:
    """read, write or metadata. HubSpot searches and batch reads are POSTs that only read."""
    if system == "hubspot":
        if "/properties/" in path:
            return "metadata"
        if path.endswith(("/search", "/batch/read")):
            return "read"
    return "read" if method == "GET" else "write"


def connect_sim(dataset: str, size: int, seed: int) -> tuple[ConnectSim, dict[str, Any]]:
    sim = ConnectSim(CONNECT_KEY)
    if dataset == "accounts":
        summary = sim.seed(seed, accounts=size, pending_ratio=0.0)
        return sim, {"accounts": summary.accounts, "tars": summary.tars, "pending": 0}
    # One product, sync on, every account a customer of it and changed once: one pending TAR
    # per account, so "TARs processed" and "accounts pushed" are the same number.
    sim.seed(
        seed,
        accounts=size,
        products=1,
        capability_on_ratio=1.0,
        reseller_ratio=0.0,
        changed_ratio=0.0,
    )
    tars = sum(len(sim.change_account(account_id)) for account_id in sorted(sim.accounts))
    return sim, {"accounts": size, "tars": tars, "pending": tars}


class Process:
    """The simulator and the command loop of this process."""

    def __init__(self, system: str, server: SimServer) -> None:
        self.system = system
        self.server = server
        self.cpu = time.process_time()

    def counts(self) -> dict[str, Any]:
        with self.server._log_lock:
            logged = list(self.server.requests)
            self.server.requests.clear()
        by_kind: Counter[str] = Counter()
        by_endpoint: Counter[str] = Counter()
        failed = 0
        for request in logged:
            by_kind[kind(self.system, request.method, request.path)] += 1
            by_endpoint[endpoint(request.method, request.path)] += 1
            failed += not 200 <= request.status < 300
        now = time.process_time()
        cpu, self.cpu = now - self.cpu, now
        return {
            "total": len(logged),
            "failed": failed,
            "by_kind": dict(sorted(by_kind.items())),
            "by_endpoint": dict(sorted(by_endpoint.items())),
            "cpu_seconds": round(cpu, 3),
        }

    def command(self, line: str) -> Any:
        name, *args = line.split()
        app = self.server.app
        if name == "counts":
            return self.counts()
        if name == "latency":
            self.server.faults.latency = float(args[0])
            return {"latency": self.server.faults.latency}
        if name == "pending" and isinstance(app, ConnectSim):
            with app.lock:
                return {"pending": sum(t.status == "pending" for t in app.tars.values())}
        if name == "objects" and isinstance(app, HubSpotSim):
            with app.lock:
                return {"companies": len(app.companies.records), "contacts": len(app.contacts)}
        if name == "fill" and isinstance(app, ConnectSim):
            from fill import fill_mirror

            crm = args[1] if len(args) > 1 and args[1] != "none" else None
            default = len(args) < 3 or args[2] == "on"
            return fill_mirror(app, args[0], crm=crm, sync_default=default)
        return {"error": f"unknown command {line!r}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("system", choices=["connect", "hubspot"])
    parser.add_argument("--dataset", choices=["accounts", "tars"], default="accounts")
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    started = time.perf_counter()
    app: ConnectSim | HubSpotSim
    if args.system == "connect":
        app, summary = connect_sim(args.dataset, args.size, args.seed)
    else:
        # Rate limits off: both contestants are bound by their own requests and the latency,
        # not by a simulated quota (real HubSpot would slow the per-record baseline most).
        app, summary = HubSpotSim(CRM_TOKEN, limits=None, custom_properties=True), {}
    server = SimServer(app, seed=args.seed)
    server.faults.latency = args.latency
    server.start()
    process = Process(args.system, server)
    summary["seeded_seconds"] = round(time.perf_counter() - started, 2)
    url = f"{server.url}/public/v1" if args.system == "connect" else server.url
    print(json.dumps({"url": url, "summary": summary}), flush=True)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            if line.strip() == "quit":
                break
            try:
                answer = process.command(line.strip())
            except Exception as exc:  # noqa: BLE001 - the harness reports it; serving goes on
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(answer), flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
