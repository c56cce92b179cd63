"""What whole cycles cost, counted in the simulators' request logs: an idle cycle, the write-back
of many pending TARs (also under 429s), and flags that still move after an idle cycle.

Connect simulator and HubSpot simulator over loopback, real Postgres, sync default on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from syncd.connect.client import ConnectClient
from syncd.crm.hubspot import HubSpotAdapter
from syncd.domain.mapping import default_mapping
from syncd.retry import RetryPolicy
from syncd.sim.base import Fault, LoggedRequest, SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from syncd.store.flags import set_override
from syncd.store.schema import tier_accounts
from syncd.sync.cycle import CycleResult, run_cycle
from syncd.sync.pull import PullOptions

TOKEN = "crm-test-token"
MAPPING = default_mapping("hubspot")
ACCEPT = r"/tier/account-requests/[^/]+/accept$"


@dataclass
class HubSpot:
    sim: HubSpotSim
    server: SimServer
    adapter: HubSpotAdapter

    def writes(self) -> list[LoggedRequest]:
        """Requests that change the CRM (searches and batch reads are POSTs that do not)."""
        return [
            r
            for r in self.server.requests
            if r.method in ("POST", "PATCH", "PUT", "DELETE")
            and "search" not in r.path
            and "batch/read" not in r.path
        ]


@pytest.fixture
def hubspot() -> Iterator[HubSpot]:
    sim = HubSpotSim(TOKEN, limits=None, custom_properties=True)
    with SimServer(sim) as server:
        adapter = HubSpotAdapter(
            server.url,
            TOKEN,
            retry=RetryPolicy(attempts=4, max_seconds=5, sleep=lambda _: None),
            company_fields=[f.target for f in MAPPING.account],
            contact_fields=[f.target for f in MAPPING.contact],
        )
        yield HubSpot(sim, server, adapter)
        adapter.close()


def cycle(
    engine: Engine, client: ConnectClient, hubspot: HubSpot, options: PullOptions | None = None
) -> CycleResult:
    result = run_cycle(
        engine,
        client,
        options or PullOptions(),
        crm=hubspot.adapter,
        mapping=MAPPING,
        sync_default=True,
    )
    assert result.outcome == "success", result.error
    return result


def pending_tars(sim: ConnectSim, count: int) -> list[str]:
    """`count` accounts of a product whose sync capability is on, each changed once: one pending
    TAR each."""
    product = sim.add_product(updates=True)["id"]
    tars = []
    for n in range(count):
        account = sim.add_account()["id"]
        sim.link(account, product)
        tars += [t["id"] for t in sim.change_account(account, name=f"Renamed {n}")]
    return tars


def applied_accepts(server: SimServer) -> Counter[str]:
    """Accept requests Connect acted on, by TAR: answered 200, or applied and the answer lost."""
    return Counter(
        r.path.split("/")[-2]
        for r in server.requests_matching("POST", ACCEPT)
        if r.status == 200 or r.fault == "drop"
    )


def test_an_idle_cycle_over_1000_accounts_asks_connect_at_most_4_times_and_writes_no_crm(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient, hubspot: HubSpot
) -> None:
    sim.seed(11, accounts=1000)
    cycle(engine, client, hubspot)
    cycle(engine, client, hubspot)  # settles what the first one's own writes stirred
    server.clear_log()
    hubspot.server.clear_log()

    idle = cycle(engine, client, hubspot)

    connect = server.requests
    assert len(connect) <= 4, [f"{r.method} {r.path}?{r.query}" for r in connect]
    assert all(r.method == "GET" for r in connect)
    assert hubspot.writes() == []
    counts = idle.counts
    assert counts["pull"]["requests_written"] == counts["pull"]["accounts_written"] == 0
    assert (counts["flags"]["enabled"], counts["flags"]["disabled"]) == (0, 0), "none decided"
    assert counts["flags"]["full"] is False
    assert counts["push"]["planned"] == 0


def test_1000_pending_tars_cost_at_most_1_1_requests_each_from_pull_to_accept(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient, hubspot: HubSpot
) -> None:
    tars = pending_tars(sim, 1000)

    result = cycle(engine, client, hubspot)

    assert result.counts["writeback"]["accepted"] == 1000
    assert all(sim.tar(t)["status"] == "accepted" for t in tars)
    assert set(applied_accepts(server).values()) == {1}
    assert server.requests_matching("GET", r"/tier/account-requests/.") == [], "no per-TAR read"
    requests = len(server.requests) + len(hubspot.server.requests)
    assert requests <= 1.1 * len(tars), (len(server.requests), len(hubspot.server.requests))


def test_under_429s_and_lost_answers_every_pending_tar_is_accepted_exactly_once(
    engine: Engine, sim: ConnectSim, server: SimServer, hubspot: HubSpot
) -> None:
    tars = pending_tars(sim, 150)
    for n, tar in enumerate(tars[:60]):  # one 429 each for 60 TARs, 40 with Retry-After
        headers = {"Retry-After": "0.05"} if n < 40 else {}
        server.faults.inject(Fault(status=429, headers=headers, match=f"POST .*/{tar}/accept"))
    for tar in tars[60:65]:  # applied, and the answer lost
        server.faults.inject(Fault(drop_response=True, match=f"POST .*/{tar}/accept", name="drop"))
    retry = RetryPolicy(attempts=8, max_seconds=30, base=0.01, cap=0.05)
    with ConnectClient(f"{server.url}/public/v1", server.app.api_key, retry=retry) as client:  # type: ignore[attr-defined]
        cycle(engine, client, hubspot)

    assert server.faults.pending() == 0
    assert all(sim.tar(t)["status"] == "accepted" for t in tars)
    assert applied_accepts(server) == Counter({t: 1 for t in tars})
    posts = server.requests_matching("POST", ACCEPT)
    assert len(posts) == len(tars) + 60, "each 429 retried once; a lost answer is read, not re-sent"
    read_back = server.requests_matching("GET", r"/tier/account-requests/TAR-[^/]+$")
    assert len(read_back) == 5


def test_after_an_idle_cycle_a_capability_switched_off_and_an_override_still_flip_flags(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient, hubspot: HubSpot
) -> None:
    on, other = sim.add_product(updates=True)["id"], sim.add_product(updates=True)["id"]
    switched, kept, overridden = (sim.add_account()["id"] for _ in range(3))
    sim.link(switched, on)
    sim.link(kept, other)
    sim.link(overridden, other)
    for account in (switched, kept, overridden):
        sim.change_account(account, name="Changed")
    cycle(engine, client, hubspot)
    idle = cycle(engine, client, hubspot)
    assert idle.counts["flags"]["changed"] == 0

    sim.set_capability(on, False)
    with engine.begin() as conn:
        set_override(conn, overridden, False, actor="ops", reason="hold", default=True)
    moved = cycle(engine, client, hubspot, PullOptions(product_ttl=timedelta(0)))

    with engine.connect() as conn:
        flags = dict(conn.execute(select(tier_accounts.c.id, tier_accounts.c.sync_enabled)).all())
    assert (flags[switched], flags[kept], flags[overridden]) == (False, True, False)
    assert moved.counts["flags"]["changed"] == 1, "the capability moved one account's flag"
    # The product's account, and the overridden one again (decided at once when overridden).
    assert moved.counts["flags"]["enabled"] + moved.counts["flags"]["disabled"] == 2
