"""Push benchmark: syncd's plan and push phases against a script writing one record per request.

    .venv/bin/python bench/push.py                      # 10,000 accounts, both CRMs, 30 ms and 0
    .venv/bin/python bench/push.py --accounts 2000 --baseline-accounts 300 --crm salesforce
    .venv/bin/python bench/push.py --latency 0          # loopback speed alone
    .venv/bin/python bench/push.py --profile /tmp/push  # + cProfile of syncd and the simulator

The Connect simulator is seeded with the accounts and pulled into a private Postgres once (not
timed). Then, for each CRM simulator (a separate process, rate limits off so that both contestants
are bound by their own requests, not by the simulated quota), two scenarios:

- create: the CRM is empty, every account is new;
- update: every account's name is changed in the mirror (not timed), then pushed again; the CRM
  holds what the create scenario wrote.

Contestants, each into a CRM simulator of its own:

- syncd: one push phase per scenario (read the CRM state in batches, three-way diff, batched
  writes, links and ledger committed per batch);
- baseline: what a naive vendor script does, with plain httpx calls, one record per request.
  HubSpot: company upsert (1 input), contact upsert (1 input), one v4 association PUT.
  Salesforce: Account upsert by external id (`PATCH /sobjects/Account/<field>/<key>`), then the
  Contact the same way, naming its Account by external id.

Latency: a real CRM is reached over the internet and does work for each call, while a simulator
on loopback answers in well under a millisecond. `--latency MS` makes the simulators hold every
request that long before handling it (the fault injection of `syncd.sim.base`; concurrent requests
wait in parallel, as they do at a real server), the same for both contestants. The default, 30 ms,
is deliberately low: crm-apis.md gives no response-time figure, but a round trip from a data
centre to HubSpot's or Salesforce's servers alone is of that order, and their batch calls take
longer to process than single ones, which a flat latency does not charge. The one figure there
that bounds a per-request pace, HubSpot's burst limit (100 requests per 10 s on Free/Starter,
crm-apis.md §2.2; the simulators' limits are off here), would hold the per-record script to
100 ms a request on average. Higher latencies only widen syncd's lead (it makes about 100 times
fewer requests), so 30 ms understates it; the
zero-latency table is printed too (the default is `--latency 30 --latency 0`): there both
contestants are CPU-bound on this machine, and it shows what syncd's own CPU costs. The baseline
writes 200 accounts per scenario under latency (about 20 s at 30 ms), 2,000 without, unless
`--baseline-accounts` says otherwise.

Requests are counted at the HTTP transport, by kind. The table shows accounts per second, the
speed-up over the baseline, calls per batch (HubSpot 100 accounts, Salesforce 200) against the
targets (at most 2 writes and 1 read per batch, at least 10x the baseline's rate), and the CPU
milliseconds per account spent by this process and by the simulator: on a small, shared machine
both contestants are CPU-bound without latency, and the CPU figures vary less than the rates.
`--repeat N` runs everything N times and shows the median run. `--no-pipeline` turns off the
push's prefetch. `--profile DIR` writes and prints cProfile output of syncd's push (its main
thread) and of the simulator, for the first latency's first run.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from syncd.crm.hubspot import HubSpotAdapter  # noqa: E402
from syncd.crm.port import CrmPort  # noqa: E402
from syncd.crm.salesforce import SalesforceAdapter  # noqa: E402
from syncd.domain.mapping import Mapping, apply, default_mapping  # noqa: E402

TOKEN = "bench-token"
SF_API = "/services/data/v62.0"
BATCH = {"hubspot": 100, "salesforce": 200}
RENAMED = " (renamed)"
DEFAULT_LATENCIES = (30.0, 0.0)
"""Milliseconds added to every CRM request: a conservative real-world figure, then none."""


def kind_of(request: httpx.Request) -> str:
    """read, write or metadata, as the targets count them."""
    path = request.url.path
    if "/properties/" in path or "/describe" in path:
        return "metadata"
    if path.endswith(("/search", "/batch/read")) or "/query" in path:
        return "read"
    return "write" if request.method in ("POST", "PATCH", "PUT", "DELETE") else "read"


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Meter:
    """Wall-clock seconds and the CPU this process and the simulator use over a span."""

    def __init__(self, sim_pid: int) -> None:
        self.sim_pid = sim_pid
        self.seconds = 0.0
        self.cpu = (0.0, 0.0)

    def __enter__(self) -> Meter:
        self._start = (time.perf_counter(), time.process_time(), process_cpu(self.sim_pid))
        return self

    def __exit__(self, *exc: object) -> None:
        wall, own, sim = self._start
        self.seconds = time.perf_counter() - wall
        self.cpu = (time.process_time() - own, process_cpu(self.sim_pid) - sim)


class CountingTransport(httpx.HTTPTransport):
    """Counts requests by kind; safe to share between the push's two threads."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.counts[kind_of(request)] += 1
        return super().handle_request(request)


@dataclass
class Result:
    crm: str
    scenario: str
    contestant: str
    accounts: int
    seconds: float
    requests: dict[str, int]
    failed: int = 0
    cpu: tuple[float, float] = (0.0, 0.0)
    """CPU seconds used meanwhile by this process (both threads) and by the simulator."""
    latency_ms: float = 0.0
    """What the simulator added to every request."""

    @property
    def rate(self) -> float:
        return self.accounts / self.seconds if self.seconds else 0.0

    def cpu_ms(self) -> str:
        """CPU milliseconds per account: this process + the simulator's."""
        own, sim = (1000 * c / self.accounts if self.accounts else 0.0 for c in self.cpu)
        return f"{own:.2f}+{sim:.2f}"

    def per_batch(self, kind: str) -> float:
        batches = self.accounts / BATCH[self.crm]
        return self.requests.get(kind, 0) / batches if batches else 0.0


SIM_OPTIONS = {
    "hubspot": [
        "--token",
        TOKEN,
        "--setup",
        "--burst-limit",
        "0",
        "--daily-limit",
        "0",
        "--search-rate",
        "0",
    ],
    "salesforce": ["--token", TOKEN, "--daily-limit", "100000000"],
}


class Crm:
    """A CRM simulator in a process of its own, served by `serve_sim` (what `syncd sim NAME`
    serves, plus the latency and the profile), stopped with SIGINT so a profile gets written."""

    def __init__(self, name: str, latency_ms: float, profile: Path | None = None) -> None:
        command = [__file__, "--serve-sim", name, "--sim-latency", str(latency_ms)]
        if profile:
            command += ["--sim-profile", str(profile)]
        command += ["--port", "0", *SIM_OPTIONS[name]]
        self.process = subprocess.Popen(
            [sys.executable, *command], stdout=subprocess.PIPE, text=True, cwd=REPO
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        self.url = next(word for word in line.split() if word.startswith("http://")).rstrip(",")

    def __enter__(self) -> Crm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def serve_sim(name: str, latency_ms: float, profile: Path | None, options: list[str]) -> None:
    """Serve a simulator whose every request waits `latency_ms` first. With `profile`, every
    request's handling (parsing, dispatch, JSON encoding) runs under one cProfile: cProfile sees
    only the thread that enables it, and the server answers each connection in a thread of its
    own, so requests are then profiled one at a time (the latency is slept outside the lock)."""
    from syncd.sim import base

    module: Any
    if name == "hubspot":
        from syncd.sim import hubspot as module

        build = module.build
    else:
        from syncd.sim import salesforce as module

        build = module.build_server
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    server = build(parser.parse_args(options))
    server.faults.latency = latency_ms / 1000
    print(f"{name} simulator ({latency_ms:g} ms latency) on {server.url}", flush=True)
    if profile is None:
        server.serve_forever()
        return
    profiler = cProfile.Profile()
    lock = threading.Lock()
    handle = base._Handler._handle

    def profiled(self: Any) -> None:
        time.sleep(latency_ms / 1000)  # waited here, outside the profile's lock
        with lock:
            profiler.runcall(handle, self)

    server.faults.latency = 0.0  # slept above instead
    # `do_GET` and the others are the handler's `_handle`, bound at class creation.
    for method in ("do_GET", "do_POST", "do_PUT", "do_PATCH", "do_DELETE"):
        setattr(base._Handler, method, profiled)
    try:
        server.serve_forever()
    finally:
        profiler.dump_stats(str(profile))


def adapter(name: str, url: str, mapping: Mapping, transport: httpx.BaseTransport) -> CrmPort:
    account = [f.target for f in mapping.account]
    contact = [f.target for f in mapping.contact]
    if name == "hubspot":
        return HubSpotAdapter(
            url,
            TOKEN,
            transport=transport,
            company_fields=account,
            contact_fields=contact,
            search_rate=None,
        )
    return SalesforceAdapter(
        url, TOKEN, transport=transport, account_fields=account, contact_fields=contact
    )


def run_syncd(
    name: str,
    scenario: str,
    crm_sim: Crm,
    database: str,
    mapping: Mapping,
    profiler: cProfile.Profile | None,
    pipeline: bool,
) -> Result:
    from sqlalchemy import create_engine

    from syncd.sync.push import PushOptions, PushPhase

    transport = CountingTransport()
    crm = adapter(name, crm_sim.url, mapping, transport)
    engine = create_engine(database)
    phase = PushPhase(engine, crm, mapping, PushOptions(pipeline=pipeline), run_id=None)
    with Meter(crm_sim.process.pid) as meter:
        if profiler is not None:
            profiler.enable()
        counts = phase.run()
        if profiler is not None:
            profiler.disable()
    engine.dispose()
    getattr(crm, "close", lambda: None)()
    return Result(
        name,
        scenario,
        "syncd",
        counts.created + counts.updated,
        meter.seconds,
        dict(transport.counts),
        counts.rejected + counts.retry + counts.unknown,
        meter.cpu,
    )


def naive_hubspot(client: httpx.Client, mapping: Mapping, record: dict[str, Any]) -> bool:
    """One account the way a per-record script writes it; True when every call succeeded."""
    fields, contact = apply(mapping, record)
    key = record["id"]
    company = client.post(
        "/crm/v3/objects/companies/batch/upsert",
        json={
            "inputs": [
                {
                    "idProperty": mapping.key_property,
                    "id": key,
                    "properties": {k: v for k, v in fields.items() if v is not None},
                }
            ]
        },
    )
    if company.status_code != 200 or contact is None:
        return company.status_code == 200
    email = contact[mapping.contact_key_property]
    person = client.post(
        "/crm/v3/objects/contacts/batch/upsert",
        json={
            "inputs": [
                {
                    "idProperty": mapping.contact_key_property,
                    "id": email,
                    "properties": {k: v for k, v in contact.items() if v is not None},
                }
            ]
        },
    )
    if person.status_code != 200:
        return False
    company_id = company.json()["results"][0]["id"]
    contact_id = person.json()["results"][0]["id"]
    link = client.put(
        f"/crm/v4/objects/contacts/{contact_id}/associations/default/companies/{company_id}"
    )
    return link.status_code == 200


def naive_salesforce(client: httpx.Client, mapping: Mapping, record: dict[str, Any]) -> bool:
    fields, contact = apply(mapping, record)
    key, ext = record["id"], mapping.key_property
    account = client.patch(
        f"{SF_API}/sobjects/Account/{ext}/{key}", json={k: v for k, v in fields.items() if k != ext}
    )
    if account.status_code not in (200, 201) or contact is None:
        return account.status_code in (200, 201)
    body = {k: v for k, v in contact.items() if k not in (ext, "AccountId")}
    person = client.patch(
        f"{SF_API}/sobjects/Contact/{ext}/{key}", json={**body, "Account": {ext: key}}
    )
    return person.status_code in (200, 201)


def run_baseline(
    name: str, scenario: str, crm: Crm, records: list[dict[str, Any]], mapping: Mapping
) -> Result:
    transport = CountingTransport()
    write = naive_hubspot if name == "hubspot" else naive_salesforce
    headers = {"Authorization": f"Bearer {TOKEN}"}
    failed = 0
    with (
        httpx.Client(base_url=crm.url, headers=headers, transport=transport, timeout=30) as client,
        Meter(crm.process.pid) as meter,
    ):
        for record in records:
            failed += not write(client, mapping, record)
    return Result(
        name,
        scenario,
        "baseline",
        len(records),
        meter.seconds,
        dict(transport.counts),
        failed,
        meter.cpu,
    )


def rename_all(database: str) -> None:
    """Connect renamed every account: a new version of each in the mirror."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE tier_accounts SET name = name || :suffix, version = version + 1, "
                "record = jsonb_set(record, '{name}', to_jsonb(record->>'name' || :suffix))"
            ),
            {"suffix": RENAMED},
        )
    engine.dispose()


def renamed(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "name": record["name"] + RENAMED}


def bench_crm(
    name: str,
    latency_ms: float,
    database: str,
    records: list[dict[str, Any]],
    baseline_n: int,
    profile: Path | None,
    pipeline: bool,
) -> list[Result]:
    mapping = default_mapping(name)
    profiler = cProfile.Profile() if profile else None
    results = []
    sim_profile = profile / f"sim_{name}.prof" if profile else None
    with Crm(name, latency_ms, sim_profile) as crm:
        for scenario in ("create", "update"):
            if scenario == "update":
                rename_all(database)
            results.append(run_syncd(name, scenario, crm, database, mapping, profiler, pipeline))
    with Crm(name, latency_ms) as crm:
        sample = records[:baseline_n]
        results.append(run_baseline(name, "create", crm, sample, mapping))
        results.append(run_baseline(name, "update", crm, [renamed(r) for r in sample], mapping))
    for result in results:
        result.latency_ms = latency_ms
    if profiler is not None and profile is not None:
        path = profile / f"syncd_{name}.prof"
        profiler.dump_stats(str(path))
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        print(
            f"\n--- cProfile of syncd's push ({name}, main thread: the prefetch worker is not "
            f"profiled), both scenarios, top 25 cumulative (saved to {path})"
        )
        print(out.getvalue())
        out = io.StringIO()
        pstats.Stats(str(sim_profile), stream=out).sort_stats("tottime").print_stats(25)
        print(f"--- cProfile of the {name} simulator (its own process), top 25 by own time")
        print(out.getvalue())
    return results


def median_runs(results: list[Result]) -> tuple[list[Result], dict[tuple[str, str, str], str]]:
    """The run of median rate of each (crm, scenario, contestant), and the range of rates
    (`results` are of one latency)."""
    groups: dict[tuple[str, str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.crm, r.scenario, r.contestant), []).append(r)
    chosen, spread = [], {}
    for key, runs in groups.items():
        runs.sort(key=lambda r: r.rate)
        chosen.append(runs[len(runs) // 2])
        if len(runs) > 1:
            spread[key] = f"{runs[0].rate:,.0f}..{runs[-1].rate:,.0f}"
    return chosen, spread


def report(all_results: list[Result]) -> None:
    """One table per latency, in the order run."""
    for latency in dict.fromkeys(r.latency_ms for r in all_results):
        runs = [r for r in all_results if r.latency_ms == latency]
        repeats = max(Counter((r.crm, r.scenario, r.contestant) for r in runs).values())
        median = f", median of {repeats} runs" if repeats > 1 else ""
        print(
            f"\nlatency {latency:g} ms per request at the CRM simulator (both contestants){median}"
        )
        table(runs)
    print(
        f"\nbatch: HubSpot {BATCH['hubspot']}, Salesforce {BATCH['salesforce']} accounts; "
        "targets per batch: at most 2 writes and 1 read, and at least 10x the baseline's "
        "accounts/s.\ncpu ms/acc: CPU milliseconds per account used by this process (syncd, "
        "both threads; or the baseline script) + by the CRM simulator; Postgres not counted."
    )


def table(all_results: list[Result]) -> None:
    results, spread = median_runs(all_results)
    head = (
        f"{'crm':<10} {'scenario':<8} {'contestant':<10} {'accounts':>8} {'seconds':>8} "
        f"{'acc/s':>8} {'speed-up':>8} {'writes':>7} {'reads':>6} {'w/batch':>8} "
        f"{'r/batch':>8} {'failed':>6} {'cpu ms/acc':>10}  targets"
    )
    print(head + "\n" + "-" * len(head))
    for crm in dict.fromkeys(r.crm for r in results):
        for scenario in ("create", "update"):
            pair = {r.contestant: r for r in results if (r.crm, r.scenario) == (crm, scenario)}
            base = pair.get("baseline")
            for who in ("syncd", "baseline"):
                r = pair.get(who)
                if r is None:
                    continue
                speed = r.rate / base.rate if base and base.rate else 0.0
                verdict = ""
                if who == "syncd":
                    checks = [
                        ("writes", r.per_batch("write") <= 2.0),
                        ("reads", r.per_batch("read") <= 1.0),
                        ("10x", speed >= 10.0),
                    ]
                    verdict = " ".join(f"{n}:{'ok' if good else 'MISSED'}" for n, good in checks)
                rates = spread.get((crm, scenario, who))
                verdict += f" (acc/s over runs: {rates})" if rates else ""
                print(
                    f"{crm:<10} {scenario:<8} {who:<10} {r.accounts:>8,} {r.seconds:>8.2f} "
                    f"{r.rate:>8,.0f} {speed:>7.1f}x {r.requests.get('write', 0):>7,} "
                    f"{r.requests.get('read', 0):>6,} {r.per_batch('write'):>8.2f} "
                    f"{r.per_batch('read'):>8.2f} {r.failed:>6} {r.cpu_ms():>10}  {verdict}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument(
        "--baseline-accounts",
        type=int,
        help="accounts the per-record baseline writes (its rate is per second); default 200 "
        "under latency, 2,000 without",
    )
    parser.add_argument(
        "--latency",
        type=float,
        action="append",
        metavar="MS",
        help="milliseconds the CRM simulators add to every request; repeat for several tables "
        f"(default: {' and '.join(f'{m:g}' for m in DEFAULT_LATENCIES)})",
    )
    parser.add_argument("--crm", choices=["hubspot", "salesforce"], action="append")
    parser.add_argument(
        "--profile",
        type=Path,
        help="directory for cProfile output of syncd's push and the simulator",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run everything this many times (fresh CRMs and databases) and "
        "show the median run: other load on the machine skews single runs",
    )
    parser.add_argument("--serve-sim", choices=["hubspot", "salesforce"], help=argparse.SUPPRESS)
    parser.add_argument("--sim-profile", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sim-latency", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--no-pipeline",
        action="store_true",
        help="plan each batch after the previous one is committed",
    )
    args, rest = parser.parse_known_args()
    if args.serve_sim:
        serve_sim(args.serve_sim, args.sim_latency, args.sim_profile, rest)
        return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")

    from sqlalchemy import create_engine

    from syncd.connect.client import ConnectClient
    from syncd.pgcluster import PgCluster
    from syncd.sim.base import SimServer
    from syncd.sim.connect import ConnectSim
    from syncd.store import migrate
    from syncd.sync.pull import PullOptions, PullPhase

    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    sim = ConnectSim("bench")
    sim.seed(1, accounts=args.accounts)
    records = [sim.account(a) for a in sorted(sim.accounts)]
    latencies: list[float] = args.latency or list(DEFAULT_LATENCIES)
    results: list[Result] = []
    with PgCluster() as cluster, SimServer(sim) as connect:
        template = cluster.create_database("mirror")
        migrate.upgrade(template)
        engine = create_engine(template)
        with ConnectClient(f"{connect.url}/public/v1", "bench") as client:
            PullPhase(engine, client, PullOptions(), run_id=None).run()
        engine.dispose()
        print(f"{len(records):,} accounts mirrored")
        for number, latency in enumerate(latencies):
            default_n = 200 if latency else 2_000
            baseline_n = min(args.baseline_accounts or default_n, len(records))
            print(f"latency {latency:g} ms: the baseline writes {baseline_n:,} accounts")
            for attempt in range(args.repeat):
                for name in args.crm or ["hubspot", "salesforce"]:
                    database = cluster.create_database(
                        f"push_{name}_{number}_{attempt}", template="mirror"
                    )
                    profile = args.profile if attempt == number == 0 else None
                    results += bench_crm(
                        name,
                        latency,
                        database,
                        records,
                        baseline_n,
                        profile,
                        not args.no_pipeline,
                    )
    report(results)


if __name__ == "__main__":
    main()
