"""The push benchmark's baseline: a naive vendor script writing one record per request.

HubSpot: company upsert (1 input), contact upsert (1 input), one v4 association PUT. Salesforce:
Account upsert by external id (`PATCH /sobjects/Account/<field>/<key>`), then the Contact the same
way, naming its Account by external id. Plain httpx calls, no retries, no batching.
"""

from __future__ import annotations

from typing import Any

import httpx
from push_measure import CountingTransport, Meter, Result
from push_sims import TOKEN, Crm

from syncd.domain.mapping import Mapping, apply

SF_API = "/services/data/v62.0"


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
