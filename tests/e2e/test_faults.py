"""Fault injection: cycles under 429 storms, 5xx, latency spikes, lost answers, connection resets
and a Postgres restart end cleanly, stay inside their retry budget, and the cycles after converge.

The simulators draw faults from seeded rates (`syncd.sim.base.Faults`): 30% of the requests are
answered 429 (half with `Retry-After`, half without), 5% 5xx, 2% reset before being read, 5% of
the writes applied and then left unanswered, 3% held longer than the client's timeout (applied
after the client gave up). In-process cycles use a retry policy with the default attempts and
time bound but a recorded sleep (instant, as the house style asks of tests) and a per-run
`RetryBudget`; the `syncd sync` processes use the real defaults (and a milder storm whose 429s
all carry `Retry-After: 0`, since their waits are real).

Convergence means, once the faults stop, within two cycles (each one interval after the last, so
that the backoffs a `Retry-After` asked for are over): every flag-on account is in the CRM at its
mirrored version, every pending TAR of such an account was settled exactly once (the Connect
simulator's log holds one applied accept per TAR), and no CRM record exists twice.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select, update

from syncd.connect.client import ConnectClient
from syncd.crm.hubspot import HubSpotAdapter
from syncd.crm.port import CrmPort
from syncd.crm.salesforce import SalesforceAdapter
from syncd.domain.mapping import Mapping, default_mapping
from syncd.pgcluster import PgCluster
from syncd.retry import RetryBudget, RetryPolicy
from syncd.sim.base import LoggedRequest, SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from syncd.sim.salesforce import SalesforceSim
from syncd.store import migrate
from syncd.store.schema import crm_links, sync_runs, tier_accounts
from syncd.sync.cycle import CycleResult, run_cycle
from syncd.sync.pull import PullOptions
from tests.e2e.process import syncd

KEY = "SU-000-000-000:fault-key"
TOKEN = "fault-crm-token"
ATTEMPTS = 6
"""`Settings.retry_attempts` default."""
MAX_SECONDS = 120.0
"""`Settings.retry_max_seconds` default."""
INTERVAL = 300
"""`Settings.interval` default: seconds between two scheduled cycles."""
FAULT_TIMEOUT = 1.0
"""Client timeout of the fault cycles; latency spikes last longer."""
CRM_BATCH = 20
"""Accounts per CRM call in the fault cycles (100 or 200 by default): more calls under the storm."""


def faults_on(server: SimServer) -> None:
    """The storm of the module docstring, drawn from the server's seeded generator."""
    faults = server.faults
    faults.rate_429 = 0.30
    faults.retry_after = "1"
    faults.retry_after_share = 0.5
    faults.rate_5xx = 0.05
    faults.rate_reset = 0.02
    faults.rate_drop_write = 0.05
    faults.spike_rate = 0.03
    faults.spike_latency = FAULT_TIMEOUT + 0.3


@dataclass
class Sleeps:
    """A recorded sleep and a clock that it moves: retries are instant, their time still counts
    against `max_seconds`."""

    waited: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.waited.append(seconds)

    def clock(self) -> float:
        return time.monotonic() + sum(self.waited)


@dataclass
class Stack:
    crm: str
    connect: ConnectSim
    connect_server: SimServer
    crm_sim: Any
    crm_server: SimServer
    engine: Engine
    mapping: Mapping
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def servers(self) -> tuple[SimServer, SimServer]:
        return self.connect_server, self.crm_server

    def cycle(self, *, budget: RetryBudget, timeout: float = 10.0) -> CycleResult:
        """One `syncd sync` in-process: clients built afresh, as a new process would."""
        sleeps = Sleeps()
        policy = RetryPolicy(
            attempts=ATTEMPTS,
            max_seconds=MAX_SECONDS,
            sleep=sleeps.sleep,
            clock=sleeps.clock,
            budget=budget,
        )
        with ConnectClient(
            f"{self.connect_server.url}/public/v1", KEY, timeout=timeout, retry=policy
        ) as client:
            adapter = self.adapter(policy, timeout)
            adapter.batch_size = CRM_BATCH
            try:
                result = run_cycle(
                    self.engine,
                    client,
                    PullOptions(),
                    crm=adapter,
                    mapping=self.mapping,
                    sync_default=False,
                )
                attempts, failed = tries(client, adapter)
            finally:
                getattr(adapter, "close", lambda: None)()
            self.runs.append(
                {
                    "outcome": result.outcome,
                    "retries": budget.spent,
                    "connect_retries": client.stats.total_retries,
                    "attempts": attempts,
                    "failed_attempts": failed,
                    "waited": round(sum(sleeps.waited), 1),
                }
            )
        return result

    def adapter(self, policy: RetryPolicy, timeout: float) -> CrmPort:
        account = [f.target for f in self.mapping.account]
        contact = [f.target for f in self.mapping.contact]
        if self.crm == "hubspot":
            return HubSpotAdapter(
                self.crm_server.url,
                TOKEN,
                timeout=timeout,
                retry=policy,
                company_fields=account,
                contact_fields=contact,
                key_property=self.mapping.key_property,
                contact_key=self.mapping.contact_key_property,
            )
        return SalesforceAdapter(
            self.crm_server.url,
            TOKEN,
            account_fields=account,
            contact_fields=contact,
            retry=policy,
            timeout=timeout,
        )

    def log(self) -> list[LoggedRequest]:
        return [r for s in self.servers for r in list(s.requests)]


def tries(client: ConnectClient, adapter: CrmPort) -> tuple[int, int]:
    """Requests the clients sent, and how many of them failed (no answer, or not 2xx), from
    their own counts: a retry always follows one of those."""
    counts: list[tuple[str, int]] = [
        (str(status), n) for (_, _, status), n in client.stats.requests.items()
    ]
    if isinstance(adapter, HubSpotAdapter):
        counts += [(str(status), n) for (_, status), n in adapter.stats.counts.items()]
    elif isinstance(adapter, SalesforceAdapter):
        counts += [(key.rpartition(" ")[2], n) for key, n in adapter.stats.items()]
    sent = sum(n for _, n in counts)
    failed = sum(n for status, n in counts if not (status.isdigit() and 200 <= int(status) < 300))
    return sent, failed


def crm_keys(crm: str, crm_sim: Any) -> list[str]:
    """The TA id of every CRM account record, duplicates included."""
    if crm == "hubspot":
        return [o.value("connect_account_id") for o in crm_sim.companies.records.values()]
    return [row["Connect_Account_Id__c"] for row in crm_sim.org.records["Account"].values()]


def crm_names(crm: str, crm_sim: Any) -> dict[str, str | None]:
    if crm == "hubspot":
        return {
            o.value("connect_account_id"): o.value("name")
            for o in crm_sim.companies.records.values()
        }
    return {
        row["Connect_Account_Id__c"]: row.get("Name")
        for row in crm_sim.org.records["Account"].values()
    }


def contact_keys(crm: str, crm_sim: Any) -> list[str]:
    if crm == "hubspot":
        return [str(o.value("email")).lower() for o in crm_sim.contacts.records.values()]
    return [row["Connect_Account_Id__c"] for row in crm_sim.org.records["Contact"].values()]


def applied_actions(log: list[LoggedRequest]) -> Counter[str]:
    """TAR id -> accepts and ignores Connect applied: answered 2xx, or applied and then left
    unanswered (`drop`). 429/5xx/reset faults never reach the handler."""
    out: Counter[str] = Counter()
    for logged in log:
        parts = logged.path.rstrip("/").split("/")
        if logged.method != "POST" or parts[-1] not in ("accept", "ignore"):
            continue
        if 200 <= logged.status < 300 or logged.fault == "drop":
            out[parts[-2]] += 1
    return out


def convergence_problems(stack: Stack, pending_before: set[str]) -> list[str]:
    """What still stands between the stack and convergence; empty when converged."""
    problems: list[str] = []
    with stack.engine.connect() as conn:
        on = set(
            conn.execute(select(tier_accounts.c.id).where(tier_accounts.c.sync_enabled)).scalars()
        )
        mirrored = dict(conn.execute(select(tier_accounts.c.id, tier_accounts.c.version)).all())
        synced = dict(
            conn.execute(
                select(crm_links.c.account_id, crm_links.c.synced_version).where(
                    crm_links.c.state == "synced"
                )
            ).all()
        )
    keys = crm_keys(stack.crm, stack.crm_sim)
    doubled = [k for k, n in Counter(keys).items() if n > 1]
    if doubled:
        problems.append(f"CRM records created twice: {doubled[:5]}")
    contacts = [k for k, n in Counter(contact_keys(stack.crm, stack.crm_sim)).items() if n > 1]
    if contacts:
        problems.append(f"CRM contacts created twice: {contacts[:5]}")
    if set(keys) != on:
        problems.append(
            f"CRM holds {len(set(keys) - on)} accounts not flag-on, "
            f"lacks {len(on - set(keys))} flag-on ones"
        )
    names = crm_names(stack.crm, stack.crm_sim)
    for account_id in sorted(on):
        if synced.get(account_id) != mirrored[account_id]:
            problems.append(
                f"{account_id}: mirrored v{mirrored[account_id]}, synced {synced.get(account_id)}"
            )
        elif names.get(account_id) != stack.connect.account(account_id)["name"]:
            problems.append(f"{account_id}: the CRM's name is not Connect's")
    applied = applied_actions(stack.connect_server.requests)
    twice = {t: n for t, n in applied.items() if n > 1}
    if twice:
        problems.append(f"TARs acted on twice: {twice}")
    for tar_id in sorted(pending_before):
        tar = stack.connect.tars[tar_id]
        if tar.account.id in on and (tar.status == "pending" or applied[tar_id] != 1):
            problems.append(f"{tar_id}: {tar.status}, applied {applied[tar_id]} times")
    return problems


def assert_finished_cleanly(stack: Stack, result: CycleResult) -> None:
    assert result.outcome in ("success", "partial", "failed"), result
    with stack.engine.connect() as conn:
        row = conn.execute(select(sync_runs).where(sync_runs.c.id == result.run_id)).one()
    assert row.finished_at is not None
    assert row.outcome == result.outcome
    if result.outcome == "failed":
        assert result.error, "a failed run says why"
        assert "Traceback" not in result.error


@contextmanager
def fault_stack(crm: str, engine: Engine) -> Iterator[Stack]:
    connect = ConnectSim(KEY)
    connect.seed(31, accounts=200, products=3, capability_on_ratio=0.67, changed_ratio=0.8)
    crm_sim: Any
    if crm == "hubspot":
        crm_sim = HubSpotSim(TOKEN, limits=None, custom_properties=True)
    else:
        crm_sim = SalesforceSim(TOKEN)
    with (
        SimServer(connect, seed=1) as connect_server,
        SimServer(crm_sim, seed=2) as crm_server,
    ):
        yield Stack(crm, connect, connect_server, crm_sim, crm_server, engine, default_mapping(crm))


@pytest.fixture(params=["hubspot", "salesforce"])
def stack(request: pytest.FixtureRequest, engine: Engine) -> Iterator[Stack]:
    with fault_stack(request.param, engine) as made:
        yield made


def pending_tars(sim: ConnectSim) -> set[str]:
    return {t.id for t in sim.tars.values() if t.status == "pending"}


def one_interval_later(engine: Engine) -> None:
    """What the next scheduled cycle sees, `SYNCD_INTERVAL` (300 s) later: the retries whose
    backoff (a `Retry-After` of 10 s, say) ends by then are due. Moved here, not waited for."""
    with engine.begin() as conn:
        conn.execute(
            update(crm_links)
            .where(crm_links.c.next_attempt_at <= func.now() + timedelta(seconds=INTERVAL))
            .values(next_attempt_at=func.now())
        )


def converge(stack: Stack, pending_before: set[str]) -> int:
    """Clean cycles until converged (at most two); the number it took."""
    for cycles in (1, 2):
        one_interval_later(stack.engine)
        result = stack.cycle(budget=RetryBudget(10_000))
        assert result.outcome == "success", (result.error, result.counts)
        if not convergence_problems(stack, pending_before):
            return cycles
    problems = convergence_problems(stack, pending_before)
    assert not problems, problems
    return 2


def test_cycles_under_a_fault_storm_end_cleanly_within_their_retry_budget_then_converge(
    stack: Stack,
) -> None:
    sim = stack.connect
    pending_before = pending_tars(sim)
    for server in stack.servers:
        faults_on(server)

    budget = RetryBudget(400)
    for round_ in range(2):
        budget.reset()
        result = stack.cycle(budget=budget, timeout=FAULT_TIMEOUT)
        assert_finished_cleanly(stack, result)
        run = stack.runs[-1]
        # Every retry follows a failed attempt, the budget bounds them all, and no request was
        # tried more than `attempts` times.
        assert budget.spent <= min(budget.limit, run["failed_attempts"])
        assert budget.spent <= (ATTEMPTS - 1) * (run["attempts"] - budget.spent)
        assert run["connect_retries"] <= budget.spent
        if round_ == 0:
            # Provider-side changes between the cycles: new versions and new pending TARs.
            for account_id in sorted(sim.accounts)[:15]:
                sim.change_account(account_id)
            pending_before |= pending_tars(sim)

    time.sleep(FAULT_TIMEOUT + 0.5)  # a request held by a spike is answered (and logged) by now
    faults = Counter(r.fault for r in stack.log() if r.fault)
    assert {"random_429", "random_429_bare", "5xx", "reset", "drop"} <= set(faults), faults
    for server in stack.servers:
        server.faults.clear()

    cycles = converge(stack, pending_before)

    print(
        f"\n[{stack.crm}] faults injected {dict(faults)}; runs {stack.runs}; converged in {cycles}"
    )


def test_a_spent_retry_budget_ends_the_run_cleanly_and_the_next_runs_converge(
    engine: Engine,
) -> None:
    # The budget is the same object for every client: one CRM is enough to show it holds.
    with fault_stack("hubspot", engine) as stack:
        pending_before = pending_tars(stack.connect)
        for server in stack.servers:
            faults_on(server)

        budget = RetryBudget(10)
        result = stack.cycle(budget=budget, timeout=FAULT_TIMEOUT)

        assert_finished_cleanly(stack, result)
        assert budget.spent == 10, "the storm outlasts the budget"
        assert result.outcome in ("partial", "failed")
        time.sleep(FAULT_TIMEOUT + 0.5)  # no request held by a spike is left in flight
        for server in stack.servers:
            server.faults.clear()
        converge(stack, pending_before)


# -- real processes ----------------------------------------------------------------------------


def test_syncd_sync_processes_under_faults_exit_cleanly_and_converge(
    database_url: str,
) -> None:
    connect = ConnectSim(KEY)
    connect.seed(32, accounts=60, products=3, capability_on_ratio=0.67, changed_ratio=0.6)
    hubspot = HubSpotSim(TOKEN, limits=None, custom_properties=True)
    engine = create_engine(database_url)
    with SimServer(connect, seed=3) as connect_server, SimServer(hubspot, seed=4) as crm_server:
        stack = Stack(
            "hubspot",
            connect,
            connect_server,
            hubspot,
            crm_server,
            engine,
            default_mapping("hubspot"),
        )
        env = {
            "SYNCD_DATABASE_URL": database_url,
            "SYNCD_CONNECT_URL": f"{connect_server.url}/public/v1",
            "SYNCD_CONNECT_API_KEY": KEY,
            "SYNCD_CRM": "hubspot",
            "SYNCD_HUBSPOT_URL": crm_server.url,
            "SYNCD_HUBSPOT_TOKEN": TOKEN,
            "SYNCD_SYNC_DEFAULT": "off",
        }
        pending_before = pending_tars(connect)
        for server in stack.servers:
            faults_on(server)
            # Real sleeps here: HubSpot's 429 without Retry-After means a 10 s window.
            server.faults.rate_429 = 0.15
            server.faults.retry_after = "0"
            server.faults.retry_after_share = 1.0
            server.faults.spike_latency = 2.3
        codes = []
        for _ in range(2):
            # A timeout shorter than the latency spikes, for these runs only.
            run = syncd("sync", env={**env, "SYNCD_HTTP_TIMEOUT": "2"})
            assert not crashed(run), run.stderr
            codes.append(run.returncode)
        assert set(codes) <= {0, 1, 3}, codes
        time.sleep(2.5)  # a request held by a spike is answered (and logged) by now
        faults = Counter(r.fault for r in stack.log() if r.fault)
        for server in stack.servers:
            server.faults.clear()
        converged = 0
        for cycles in (1, 2):
            one_interval_later(engine)
            run = syncd("sync", env=env)
            assert run.returncode == 0, run.stdout + run.stderr
            if not convergence_problems(stack, pending_before):
                converged = cycles
                break
        assert converged, convergence_problems(stack, pending_before)
        print(f"\n[syncd sync] exit codes {codes} under {dict(faults)}; converged in {converged}")
        with engine.connect() as conn:
            unfinished = conn.execute(
                select(sync_runs.c.id).where(sync_runs.c.finished_at.is_(None))
            ).all()
        assert unfinished == []
    engine.dispose()


def crashed(run: subprocess.CompletedProcess[str]) -> bool:
    """Whether the process died of an uncaught exception. A traceback inside a JSON log line
    (`run_crashed`, `command_failed`: caught and logged) does not start a line."""
    return re.search(r"^Traceback \(most recent call last\)", run.stderr, re.MULTILINE) is not None


@pytest.fixture
def restartable(pg_cluster: PgCluster) -> str:
    """A migrated database on the test's own cluster, which the test may restart."""
    url = pg_cluster.create_database("syncd")
    migrate.upgrade(url)
    return url


def test_a_postgres_restart_in_the_middle_of_a_cycle_fails_it_cleanly_and_the_next_converge(
    restartable: str, pg_cluster: PgCluster
) -> None:
    connect = ConnectSim(KEY)
    connect.seed(33, accounts=60, products=3, capability_on_ratio=1.0, changed_ratio=0.8)
    hubspot = HubSpotSim(TOKEN, limits=None, custom_properties=True)
    engine = create_engine(restartable, pool_pre_ping=True)
    with SimServer(connect, seed=5) as connect_server, SimServer(hubspot, seed=6) as crm_server:
        stack = Stack(
            "hubspot",
            connect,
            connect_server,
            hubspot,
            crm_server,
            engine,
            default_mapping("hubspot"),
        )
        env = {
            "SYNCD_DATABASE_URL": restartable,
            "SYNCD_CONNECT_URL": f"{connect_server.url}/public/v1",
            "SYNCD_CONNECT_API_KEY": KEY,
            "SYNCD_CRM": "hubspot",
            "SYNCD_HUBSPOT_URL": crm_server.url,
            "SYNCD_HUBSPOT_TOKEN": TOKEN,
            "SYNCD_SYNC_DEFAULT": "off",
        }
        pending_before = pending_tars(connect)
        assert len(pending_before) > 20
        connect_server.faults.latency = 0.05  # a slow cycle: ~20 accepts a second
        restarted = threading.Event()

        def restart_during_writeback() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                accepts = connect_server.requests_matching("POST", r"/accept$")
                if len(accepts) >= 5:
                    pg_cluster.stop()
                    time.sleep(1.0)
                    pg_cluster.start()
                    restarted.set()
                    return
                time.sleep(0.02)

        watcher = threading.Thread(target=restart_during_writeback, daemon=True)
        watcher.start()
        run = syncd("sync", env=env)
        watcher.join(timeout=130)

        assert restarted.is_set(), "the cycle ended before Postgres was restarted"
        assert run.returncode in (0, 1, 3), run.stderr
        assert not crashed(run), run.stderr
        with engine.connect() as conn:
            rows = conn.execute(
                select(sync_runs.c.finished_at, sync_runs.c.outcome, sync_runs.c.error)
            ).all()
        assert rows
        assert all(r.finished_at is not None for r in rows), rows
        print(f"\n[postgres restart] exit {run.returncode}; runs {[tuple(r)[1:] for r in rows]}")

        connect_server.faults.clear()
        converged = False
        for _ in range(2):
            one_interval_later(engine)
            again = syncd("sync", env=env)
            assert again.returncode == 0, again.stdout + again.stderr
            if not convergence_problems(stack, pending_before):
                converged = True
                break
        assert converged, convergence_problems(stack, pending_before)
    engine.dispose()
