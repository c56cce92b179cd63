"""The soak: 200 cycles against changing data and random faults, the promises checked after
every cycle, and memory, file descriptors and database connections measured.

One long-lived set of clients, engine and simulators, as `syncd run` keeps them (real Postgres,
the Connect and HubSpot simulators over loopback). A seeded generator, before each cycle:

- changes Connect: edits accounts, adds accounts (linked to a product with the sync capability
  on, off, switching, or to none), switches one product's capability;
- acts as an operator: sets or clears per-account overrides (`syncd accounts enable/disable`);
- edits the CRM: a connect-owned field (name) and the CRM-owned one (phone: a PUT to Connect),
  and makes the CRM refuse some contact emails (their TARs are then ignored);
- sets faults on both simulators: 429 with and without `Retry-After`, 5xx, answers dropped after
  a write was applied, connections reset, latency spikes (shorter than the client's timeout).

After every cycle, what must hold at every moment: no CRM record twice, no CRM write and no
Connect action in that cycle for an account whose sync was surely off (its override, or no
product that could be on), no TAR acted on twice, no run left `running`. Every tenth cycle has
no fault, and after it everything has converged: the flags are Connect's, every flag-on account
is in the CRM at the version Connect held when the cycle began, every TAR then pending of a
flag-on account is settled. The clean cycles reconcile, as the daemon does on its own schedule
(and a tenth of the others do): an account linked to no product changes without a TAR, and only
the reconcile sees that. A tenth of the faulty cycles are storms (rates of 30 to 50%) that spend
the run's retry budget, so that parts of those runs fail and the next runs take them up.

Retries sleep for no real time (their waits are recorded), and the push retries a failed record
the next cycle (no backoff), so that 200 cycles are 200 chances to break something.
"""

from __future__ import annotations

import gc
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import Engine, create_engine, text

from syncd.connect.client import ConnectClient
from syncd.crm.hubspot import HubSpotAdapter
from syncd.domain.mapping import mapping_from_toml
from syncd.retry import RetryBudget, RetryPolicy
from syncd.sim.base import Faults, SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from syncd.store.flags import set_override
from syncd.sync.cycle import CycleResult, run_cycle
from syncd.sync.pull import PullOptions
from syncd.sync.push import PushOptions
from tests.e2e.invariants import (
    World,
    acted_twice,
    applied_actions,
    contact_emails,
    convergence,
    duplicates,
    expected_flags,
    off_account_traffic,
    pending_tars,
    runs_left_running,
)

KEY = "SU-000-000-000:soak-key"
TOKEN = "soak-crm-token"
SEED = int(os.environ.get("SOAK_SEED", "20261127"))
"""The generator's seed; `SOAK_SEED=n` runs another soak."""
CYCLES = 200
CLEAN_EVERY = 10
MEASURE_AT = (20, CYCLES)
TIMEOUT = 2.0
RETRY_BUDGET = 40
"""Retries per cycle, across both clients (`syncd.retry.RetryBudget`)."""
POOL_SIZE, MAX_OVERFLOW = 4, 2
RSS_GROWTH_KB = 30 * 1024
"""Allowed RSS growth from cycle 20 to 200. The simulators live in this process and keep every
account version, TAR and CRM record the generator adds (a few thousand small objects, a few MB);
a leak of one response body, client or connection per cycle or per request would pass it."""
FD_SLACK = 8
"""Sockets the HTTP clients' keep-alive pools and the simulators' threads may hold open at a
given moment; a leak per cycle would add 180 or more."""
MAPPING = mapping_from_toml(
    "hubspot",
    {
        "account": {
            "phone": {
                "source": "contact_info.contact.phone_number",
                "transform": "phone",
                "owner": "crm",
            }
        },
        "contact": {"phone": False},
    },
)


@dataclass
class Sleeps:
    """Retries wait for no real time; the waits still count against the policy's time bound."""

    waited: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.waited.append(seconds)

    def clock(self) -> float:
        return time.monotonic() + sum(self.waited)


@dataclass
class Soak:
    world: World
    rng: random.Random
    flip: str
    """The product whose capability the generator switches."""
    crm_edited: dict[str, set[str]] = field(default_factory=dict)
    """Account → connect-owned fields a CRM user edited (the CRM's value may stay)."""
    refused_emails: set[str] = field(default_factory=set)
    applied: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    serial: int = 0

    @property
    def connect(self) -> ConnectSim:
        return self.world.connect

    @property
    def hubspot(self) -> HubSpotSim:
        assert isinstance(self.world.crm_sim, HubSpotSim)
        return self.world.crm_sim

    def next(self) -> int:
        self.serial += 1
        return self.serial

    # -- the generator -------------------------------------------------------------------------

    def change(self) -> None:
        """A random share of the changes of the module's doc."""
        rng, sim = self.rng, self.connect
        ids = sorted(sim.accounts)
        for account_id in rng.sample(ids, rng.randint(0, 3)):
            sim.change_account(account_id)
            self.events["connect_edit"] += 1
        if rng.random() < 0.15:
            made = sim.add_account(name=f"Soak Account {self.next()}")["id"]
            product = rng.choice([*sorted(sim.products), None])
            if product is not None:
                sim.link(made, product)
            self.events["account_added"] += 1
        if rng.random() < 0.05:
            sim.set_capability(self.flip, not sim.products[self.flip].updates)
            self.events["capability_switched"] += 1
        if rng.random() < 0.1:
            self.override(rng.choice(sorted(self.world.mirrored_versions())))
        keys = sorted(set(self.world.crm_keys()))
        if keys and rng.random() < 0.1:
            key = rng.choice(keys)
            self.hubspot.edit_company(key, name=f"Renamed in HubSpot {self.next()}")
            self.crm_edited.setdefault(key, set()).add("name")
            self.events["crm_edit"] += 1
        if keys and rng.random() < 0.1:
            self.hubspot.edit_company(rng.choice(keys), phone=f"+1 555 {self.next():04d}")
            self.events["crm_owned_edit"] += 1
        if rng.random() < 0.05:
            self.set_email(rng.choice(ids), refused=True)
        refused = sorted(self.refused_accounts())
        if refused and rng.random() < 0.3:
            self.set_email(rng.choice(refused), refused=False)

    def override(self, account_id: str) -> None:
        value = self.rng.choice([True, False, None])
        with self.world.engine.begin() as conn:
            set_override(conn, account_id, value, actor="soak", reason="soak", default=False)
        if value is None:
            self.world.overrides.pop(account_id, None)
        else:
            self.world.overrides[account_id] = value
        self.events["override"] += 1

    def set_email(self, account_id: str, *, refused: bool) -> None:
        email = f"{'refused' if refused else 'fixed'}.{self.next()}@example.com"
        if refused:
            self.hubspot.fail_email(email)
            self.refused_emails.add(email)
        self.connect.change_account(account_id, contact_info={"contact": {"email": email}})
        self.events["email_refused" if refused else "email_fixed"] += 1

    def refused_accounts(self) -> set[str]:
        emails = contact_emails(self.connect, self.connect.accounts)
        return {a for a, e in emails.items() if e in self.refused_emails}

    def set_faults(self) -> None:
        """Two kinds of fault on each simulator; now and then a storm, which spends the run's
        retry budget so that parts of the run fail and the next runs take them up."""
        storm = self.rng.random() < 0.1
        self.events["storm"] += storm
        for server in (self.world.connect_server, self.world.crm_server):
            faults = server.faults
            faults.clear()
            kinds = self.rng.sample(["429", "429_bare", "5xx", "drop", "reset", "spike"], 2)
            for kind in kinds:
                self._fault(faults, kind, storm)

    def _fault(self, faults: Faults, kind: str, storm: bool) -> None:
        rate = self.rng.uniform(0.3, 0.5) if storm else self.rng.uniform(0.02, 0.15)
        if kind in ("429", "429_bare"):
            faults.rate_429 = rate
            faults.retry_after = "1"
            faults.retry_after_share = 1.0 if kind == "429" else 0.0
        elif kind == "5xx":
            faults.rate_5xx = rate
        elif kind == "drop":
            faults.rate_drop_write = rate
        elif kind == "reset":
            faults.rate_reset = rate / 3
        else:
            faults.spike_rate = rate
            faults.spike_latency = 0.05

    # -- the checks ----------------------------------------------------------------------------

    def surely_off(self) -> set[str]:
        """Accounts whose sync is off whatever syncd read this cycle: switched off by their
        override, or with no override and no product that is (or may switch) on."""
        out = set()
        with self.connect.lock:
            for account in self.connect.accounts.values():
                override = self.world.overrides.get(account.id)
                if override is False or (
                    override is None
                    and not any(p.updates or p.id == self.flip for p in account.products)
                ):
                    out.add(account.id)
        return out

    def after_cycle(self, off: set[str], on: set[str] | None = None) -> list[str]:
        """The promises that hold at every moment, on this cycle's requests; the logs are
        then emptied (the simulators would otherwise hold every request of the soak)."""
        world = self.world
        connect_log = list(world.connect_server.requests)
        crm_log = list(world.crm_server.requests)
        world.connect_server.clear_log()
        world.crm_server.clear_log()
        self.requests += len(connect_log) + len(crm_log)
        self.faults.update(r.fault for r in connect_log + crm_log if r.fault)
        self.applied.update(applied_actions(connect_log))
        problems = duplicates(world) + acted_twice(connect_log)
        problems += [f"{t} applied {n} times in all" for t, n in self.applied.items() if n > 1]
        problems += off_account_traffic(world, off, connect_log, crm_log, on=on)
        problems += runs_left_running(world.engine)
        return problems


@pytest.fixture
def soak(database_url: str) -> Iterator[Soak]:
    connect = ConnectSim(KEY)
    connect.seed(23, accounts=40, products=4, capability_on_ratio=0.5, changed_ratio=0.5)
    hubspot = HubSpotSim(TOKEN, limits=None, custom_properties=True)
    # A pool as `syncd run` has (syncd.bootstrap.engine).
    engine = create_engine(database_url, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW)
    with SimServer(connect, seed=SEED) as connect_server, SimServer(hubspot, seed=SEED + 1) as crm:
        world = World("hubspot", connect, connect_server, hubspot, crm, engine, MAPPING)
        flip = sorted(p.id for p in connect.products.values() if not p.updates)[-1]
        yield Soak(world, random.Random(SEED), flip)
    engine.dispose()


def rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def db_connections(engine: Engine) -> int:
    with engine.connect() as conn:
        query = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return int(conn.execute(query).scalar_one())


def test_two_hundred_cycles_of_changes_and_faults_keep_every_promise_without_leaking(
    soak: Soak,
) -> None:
    world = soak.world
    sleeps = Sleeps()
    budget = RetryBudget(RETRY_BUDGET)
    policy = RetryPolicy(sleep=sleeps.sleep, clock=sleeps.clock, budget=budget)
    options = PullOptions(page_size=20, product_ttl=timedelta(0))
    push = PushOptions(retry_base=timedelta(0))
    fields = MAPPING
    measured: dict[int, dict[str, int]] = {}
    converged = 0
    began = time.monotonic()
    with ConnectClient(
        f"{world.connect_server.url}/public/v1", KEY, timeout=TIMEOUT, retry=policy
    ) as client:
        crm = HubSpotAdapter(
            world.crm_server.url,
            TOKEN,
            timeout=TIMEOUT,
            retry=policy,
            company_fields=[f.target for f in fields.account],
            contact_fields=[f.target for f in fields.contact],
            key_property=fields.key_property,
            contact_key=fields.contact_key_property,
        )
        try:
            for number in range(1, CYCLES + 1):
                clean = number % CLEAN_EVERY == 0
                if number > 1:
                    soak.change()
                if clean:
                    for server in (world.connect_server, world.crm_server):
                        server.faults.clear()
                else:
                    soak.set_faults()
                budget.reset()
                off = soak.surely_off()
                pending = pending_tars(soak.connect)
                with soak.connect.lock:
                    versions = {a.id: a.data.version for a in soak.connect.accounts.values()}

                # The clean cycles reconcile too, as the daemon does now and then: an account with
                # no product changes without a TAR, and only the reconcile sees that.
                reconcile = clean or soak.rng.random() < 0.1
                result: CycleResult = run_cycle(
                    world.engine,
                    client,
                    options,
                    reconcile=reconcile,
                    crm=crm,
                    mapping=fields,
                    push=push,
                    sync_default=False,
                )

                soak.outcomes[result.outcome] += 1
                on = expected_flags(soak.connect, world.overrides) if clean else None
                if on is not None:
                    off = set(soak.connect.accounts) - on
                problems = soak.after_cycle(off, on)
                assert not problems, (number, problems)
                if clean:
                    assert result.outcome in ("success", "partial"), (number, result.error)
                    assert on is not None
                    problems = convergence(
                        world,
                        on,
                        pending,
                        refused=soak.refused_accounts(),
                        skip_fields=soak.crm_edited,
                        versions=versions,
                    )
                    assert not problems, (number, problems)
                    converged += 1
                if number in MEASURE_AT:
                    gc.collect()
                    measured[number] = {
                        "rss_kb": rss_kb(),
                        "fds": open_fds(),
                        "db_connections": db_connections(world.engine),
                    }
        finally:
            crm.close()

    first, last = measured[MEASURE_AT[0]], measured[MEASURE_AT[1]]
    print(
        f"\nsoak: {CYCLES} cycles in {time.monotonic() - began:.0f} s, outcomes "
        f"{dict(soak.outcomes)}, {converged} convergence checks passed, "
        f"{soak.requests} requests, faults {dict(soak.faults)}, "
        f"retry waits {len(sleeps.waited)} ({sum(sleeps.waited):.0f} s not slept), "
        f"TARs applied {sum(soak.applied.values())}, changes {dict(soak.events)}; "
        f"at cycle {MEASURE_AT[0]}: {first}, at cycle {MEASURE_AT[1]}: {last}"
    )
    assert converged == CYCLES // CLEAN_EVERY
    assert sum(soak.faults.values()) > CYCLES, "the faults were not drawn"
    assert last["rss_kb"] - first["rss_kb"] < RSS_GROWTH_KB, (first, last)
    assert last["fds"] <= first["fds"] + FD_SLACK, (first, last)
    assert last["db_connections"] <= POOL_SIZE + MAX_OVERFLOW, (first, last)
    assert last["db_connections"] <= first["db_connections"] + MAX_OVERFLOW, (first, last)
