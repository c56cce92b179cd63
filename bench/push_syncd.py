"""The push benchmark's contestant: syncd's push phase (plan, batched writes, ledger) into a CRM."""

from __future__ import annotations

import cProfile

import httpx
from push_measure import CountingTransport, Meter, Result
from push_sims import TOKEN, Crm

from syncd.crm.hubspot import HubSpotAdapter
from syncd.crm.port import CrmPort
from syncd.crm.salesforce import SalesforceAdapter
from syncd.domain.mapping import Mapping


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
