"""What a vendor would run instead of syncd: scripts on the official clients, one request at a time.

    .venv/bin/python bench/baseline_naive.py tars CONNECT_URL API_KEY HUBSPOT_URL TOKEN
    .venv/bin/python bench/baseline_naive.py accounts CONNECT_URL API_KEY [--limit N]

- `tars`: list the pending TARs with the Connect client's own paging (`connect-openapi-client`,
  `.filter(status='pending').all()`); then for each: look the company up in HubSpot by its
  `connect_account_id` (`hubspot-api-client`, `get_by_id(..., id_property=...)`), create or update
  it, and accept the TAR (`POST /tier/account-requests/{id}/accept`).
- `accounts`: iterate `/tier/accounts` with the official client's `all()`: what a full resync
  script reads. `--limit` sets the client's page size (its default is 100).

Each prints one line of JSON: seconds, records, failures. Requests are counted by the simulators.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from connect.client import ClientError, ConnectClient
from hubspot import Client as HubSpot
from hubspot.crm.companies import (
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    SimplePublicObjectBatchInput,
    SimplePublicObjectBatchInputForCreate,
)

KEY_PROPERTY = "connect_account_id"


def company_properties(account: dict[str, Any]) -> dict[str, str]:
    """The company a vendor's script writes: name, address, phone and the two Connect ids."""
    info = account.get("contact_info") or {}
    phone = (info.get("contact") or {}).get("phone_number") or {}
    number = "".join(phone.get(k) or "" for k in ("country_code", "area_code", "phone_number"))
    values = {
        "name": account.get("name"),
        "address": info.get("address_line1"),
        "address2": info.get("address_line2"),
        "city": info.get("city"),
        "state": info.get("state"),
        "zip": info.get("postal_code"),
        "country": info.get("country"),
        "phone": number,
        KEY_PROPERTY: account.get("id"),
        "connect_tax_id": account.get("tax_id"),
    }
    return {k: str(v) for k, v in values.items() if v}


def upsert_company(hubspot: Any, properties: dict[str, str]) -> None:
    """Find the company by its Connect id, then update or create it.

    The simulator serves HubSpot's batch write endpoints, not the single-object ones, so the write
    is a one-input batch call: one request, as a basic create or update would be.
    """
    companies = hubspot.crm.companies
    try:
        found = companies.basic_api.get_by_id(
            company_id=properties[KEY_PROPERTY], id_property=KEY_PROPERTY
        )
    except ApiException as exc:
        if exc.status != 404:
            raise
        companies.batch_api.create(
            BatchInputSimplePublicObjectBatchInputForCreate(
                inputs=[
                    SimplePublicObjectBatchInputForCreate(properties=properties, associations=[])
                ]
            )
        )
        return
    companies.batch_api.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[SimplePublicObjectBatchInput(id=found.id, properties=properties)]
        )
    )


def process_pending_tars(
    connect_url: str, api_key: str, hubspot_url: str, token: str
) -> dict[str, Any]:
    """The per-TAR script: list pending TARs, then company lookup, write, accept, one by one."""
    started = time.perf_counter()
    connect = ConnectClient(f"ApiKey {api_key}", endpoint=connect_url)
    hubspot = HubSpot.create(access_token=token, host=hubspot_url)
    requests = connect.ns("tier").collection("account-requests")
    # Listed in full before any is accepted: paging a `status=pending` filter while accepting
    # shifts the offsets under the iterator, and every other page would be skipped.
    pending = list(requests.filter(status="pending").all())
    done = failed = 0
    for tar in pending:
        try:
            upsert_company(hubspot, company_properties(tar["account"]))
            requests.resource(tar["id"]).action("accept").post()
            done += 1
        except (ApiException, ClientError):
            failed += 1  # a vendor's script logs it and moves on
    return {
        "seconds": round(time.perf_counter() - started, 3),
        "records": len(pending),
        "done": done,
        "failed": failed,
    }


def iterate_accounts(connect_url: str, api_key: str, limit: int | None) -> dict[str, Any]:
    """Every tier account through the official client's `all()` (its default page size unless
    `limit`), keeping each one's id and version, as a resync script would to compare them."""
    started = time.perf_counter()
    options = {"default_limit": limit} if limit else {}
    connect = ConnectClient(f"ApiKey {api_key}", endpoint=connect_url, **options)
    versions = {a["id"]: a["version"] for a in connect.ns("tier").collection("accounts").all()}
    return {"seconds": round(time.perf_counter() - started, 3), "records": len(versions)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    tars = commands.add_parser("tars")
    for name in ("connect_url", "api_key", "hubspot_url", "token"):
        tars.add_argument(name)
    accounts = commands.add_parser("accounts")
    accounts.add_argument("connect_url")
    accounts.add_argument("api_key")
    accounts.add_argument("--limit", type=int)
    args = parser.parse_args()
    if args.command == "tars":
        result = process_pending_tars(args.connect_url, args.api_key, args.hubspot_url, args.token)
    else:
        result = iterate_accounts(args.connect_url, args.api_key, args.limit)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
