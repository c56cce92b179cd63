"""The Connect simulator over loopback HTTP: paging, RQL, the TAR state machine, writes, auth,
faults, the request log and seeded data."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from syncd.sim.base import Fault, SimServer
from syncd.sim.connect import ConnectSim

KEY = "SU-123-456-789:test-secret"
T0 = datetime(2025, 6, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def sim() -> ConnectSim:
    sim = ConnectSim(KEY, seed=7)
    sim.clock = lambda: T0
    return sim


@pytest.fixture(scope="module")
def shared_server() -> Iterator[SimServer]:
    # One server per module (stopping one waits out its 0.5 s poll); each test gets a new app.
    with SimServer(ConnectSim(KEY)) as server:
        yield server


@pytest.fixture
def server(shared_server: SimServer, sim: ConnectSim) -> SimServer:
    shared_server.app = sim
    shared_server.faults.clear()
    shared_server.clear_log()
    return shared_server


@pytest.fixture
def client(server: SimServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"ApiKey {KEY}"}
    with httpx.Client(base_url=f"{server.url}/public/v1", headers=headers, timeout=10) as c:
        yield c


@dataclass
class World:
    on: str
    off: str
    reseller: str
    customer: str


def world(sim: ConnectSim) -> World:
    """A reseller, its customer, and two products (capability on / off) linked to the customer."""
    on = sim.add_product(name="Analytics", updates=True)["id"]
    off = sim.add_product(name="Backup", updates=False)["id"]
    reseller = sim.add_account(type="reseller", name="BlueRiver IT")["id"]
    customer = sim.add_account(parent_id=reseller, name="Northwind GmbH")["id"]
    sim.link(customer, on)
    sim.link(customer, off)
    return World(on, off, reseller, customer)


def get_all(client: httpx.Client, path: str, query: str, limit: int) -> list[dict[str, Any]]:
    """Page the way a robust client does: advance by what `Content-Range` says was returned."""
    items: list[dict[str, Any]] = []
    offset = 0
    while True:
        response = client.get(f"{path}?{query}&limit={limit}&offset={offset}")
        assert response.status_code == 200
        page = response.json()
        _first, last, total = map(int, re.findall(r"\d+", response.headers["Content-Range"]))
        items.extend(page)
        if not page or last >= total - 1:
            return items
        offset = last + 1


# -- paging ----------------------------------------------------------------------------------


def test_content_range_reports_first_last_and_total(sim: ConnectSim, client: httpx.Client) -> None:
    for _ in range(25):
        sim.add_account()
    cases = {
        "limit=10&offset=0": ("items 0-9/25", 10),
        "limit=10&offset=20": ("items 20-24/25", 5),
        "limit=10&offset=30": ("items 30-30/25", 0),
        "limit=0&offset=0": ("items 0-0/25", 0),
        "": ("items 0-24/25", 25),
    }
    for query, (content_range, count) in cases.items():
        response = client.get(f"/tier/accounts?{query}")
        assert response.status_code == 200
        assert response.headers["Content-Range"] == content_range
        assert len(response.json()) == count


def test_empty_collection_answers_an_empty_page(client: httpx.Client) -> None:
    response = client.get("/tier/account-requests?limit=100&offset=0")
    assert response.json() == []
    assert response.headers["Content-Range"] == "items 0-0/0"


def test_default_page_size_is_100(sim: ConnectSim, client: httpx.Client) -> None:
    sim.seed(3, accounts=120, products=2, changed_ratio=0.0)
    response = client.get("/tier/accounts")
    assert len(response.json()) == 100
    assert response.headers["Content-Range"] == "items 0-99/120"


def test_too_large_limit_is_clamped_silently(server: SimServer, client: httpx.Client) -> None:
    sim = server.app
    assert isinstance(sim, ConnectSim)
    sim.max_limit = 4
    for _ in range(10):
        sim.add_account()
    response = client.get("/tier/accounts?limit=1000&offset=0")
    assert response.status_code == 200
    assert len(response.json()) == 4
    assert response.headers["Content-Range"] == "items 0-3/10"
    ids = [a["id"] for a in get_all(client, "/tier/accounts", "ordering(name)", 1000)]
    assert sorted(ids) == sorted(sim.accounts)


def test_paging_by_created_at_visits_tars_sharing_a_timestamp_once_in_id_order(
    sim: ConnectSim, client: httpx.Client
) -> None:
    w = world(sim)
    same = sim.add_tars(w.customer, 30, created_at=T0 - timedelta(hours=1))
    later = sim.change_account(w.customer, at=T0)
    query = "ordering(events.created.at)"
    seen = [t["id"] for t in get_all(client, "/tier/account-requests", query, 7)]
    assert seen == sorted(t["id"] for t in same) + sorted(t["id"] for t in later)
    assert len({t["events"]["created"]["at"] for t in same}) == 1


# -- RQL over HTTP ---------------------------------------------------------------------------


def test_filters_read_percent_encoded_datetimes_and_quoted_values(
    sim: ConnectSim, client: httpx.Client
) -> None:
    w = world(sim)
    sim.change_account(w.customer, at=T0 - timedelta(days=2))
    recent = sim.change_account(w.customer, at=T0)
    since = quote("ge(events.created.at,2025-06-01T00:00:00+00:00)", safe="(),")
    response = client.get(f"/tier/account-requests?and(eq(status,pending),{since})")
    assert [t["id"] for t in response.json()] == [
        t["id"] for t in recent if t["status"] == "pending"
    ]
    name = quote('eq(name,"Northwind GmbH")')
    response = client.get(f"/tier/accounts?{name}")
    assert [a["id"] for a in response.json()] == [w.customer]


def test_account_version_filters_compare_numbers(sim: ConnectSim, client: httpx.Client) -> None:
    w = world(sim)
    for _ in range(10):
        sim.change_account(w.customer)
    response = client.get(f"/tier/account-requests?gt(account.version,9)&eq(product.id,{w.on})")
    assert [t["account"]["version"] for t in response.json()] == [10, 11]


def test_filters_on_parent_and_scopes(sim: ConnectSim, client: httpx.Client) -> None:
    w = world(sim)
    children = client.get(f"/tier/accounts?eq(parent.id,{w.reseller})").json()
    assert [a["id"] for a in children] == [w.customer]
    roots = client.get("/tier/accounts?eq(parent.id,null())").json()
    assert [a["id"] for a in roots] == [w.reseller]
    customers = client.get("/tier/accounts?in(scopes,(customer))").json()
    assert [a["id"] for a in customers] == [w.customer]


@pytest.mark.parametrize(
    "query",
    ["and(eq(status,pending)", "frob(status,1)", "ordering(vendor.id)", "gt(account.version,x)"],
)
def test_bad_queries_answer_400_with_a_connect_error(client: httpx.Client, query: str) -> None:
    response = client.get(f"/tier/account-requests?{quote(query, safe='(),=')}")
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "VAL_001"
    assert body["errors"]
    assert all(isinstance(e, str) for e in body["errors"])


def test_undocumented_filters_are_ignored_like_connect(
    sim: ConnectSim, client: httpx.Client
) -> None:
    world(sim)
    response = client.get("/tier/accounts?gt(events.updated.at,2099-01-01T00:00:00Z)")
    assert response.headers["Content-Range"] == "items 0-1/2"
    sim.strict_filters = True
    response = client.get("/tier/accounts?gt(events.updated.at,2099-01-01T00:00:00Z)")
    assert response.status_code == 400


def test_hooks_take_api_shaped_overrides(sim: ConnectSim) -> None:
    w = world(sim)
    account = sim.add_account(
        name="Café Zoë S.L.",
        contact_info={"city": "Sevilla", "contact": {"email": "z@cafe.example"}},
    )
    assert (account["name"], account["contact_info"]["city"]) == ("Café Zoë S.L.", "Sevilla")
    assert account["contact_info"]["contact"]["email"] == "z@cafe.example"
    assert account["version"] == 1
    tars = sim.change_account(w.customer, contact_info={"postal_code": "20457"})
    assert {t["account"]["contact_info"]["postal_code"] for t in tars} == {"20457"}
    assert sim.change_account(w.customer, contact_info={"postal_code": "20457"}) == []


def test_assets_link_accounts_to_products(sim: ConnectSim, client: httpx.Client) -> None:
    w = world(sim)
    other = sim.add_account()["id"]
    sim.link(other, w.on)
    by_customer = client.get(f"/assets?eq(tiers.customer.id,{w.customer})").json()
    assert {a["product"]["id"] for a in by_customer} == {w.on, w.off}
    assert all(a["tiers"]["tier1"]["id"] == w.reseller for a in by_customer)
    by_tier1 = client.get(f"/assets?eq(tiers.tier1.id,{w.reseller})&eq(product.id,{w.off})").json()
    assert [a["tiers"]["customer"]["id"] for a in by_tier1] == [w.customer]
    either = client.get(f"/assets?in(tiers.customer.id,({w.customer},{other}))").json()
    assert len(either) == 3


# -- TAR state machine -----------------------------------------------------------------------


def test_accept_moves_pending_to_accepted_once(sim: ConnectSim, client: httpx.Client) -> None:
    w = world(sim)
    pending = next(t for t in sim.change_account(w.customer) if t["status"] == "pending")
    sim.clock = lambda: T0 + timedelta(minutes=5)
    response = client.post(f"/tier/account-requests/{pending['id']}/accept")
    assert response.status_code == 200
    accepted = response.json()
    assert accepted["status"] == "accepted"
    assert accepted["events"]["updated"]["at"] == "2025-06-01T09:35:00+00:00"
    before = sim.mutations
    sim.clock = lambda: T0 + timedelta(minutes=9)
    again = client.post(f"/tier/account-requests/{pending['id']}/accept")
    assert again.status_code == 400
    assert again.json()["error_code"] == "TAR_002"
    assert sim.mutations == before
    assert sim.tar(pending["id"]) == accepted
    ignore = client.post(f"/tier/account-requests/{pending['id']}/ignore", json={"reason": "x"})
    assert ignore.status_code == 400
    assert sim.tar(pending["id"]) == accepted


def test_ignore_records_the_reason(sim: ConnectSim, client: httpx.Client) -> None:
    w = world(sim)
    pending = next(t for t in sim.change_account(w.customer) if t["status"] == "pending")
    response = client.post(
        f"/tier/account-requests/{pending['id']}/ignore/", json={"reason": "CRM legal hold"}
    )
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert sim.tar(pending["id"])["reason"] == "CRM legal hold"


def test_ignore_reason_over_255_characters_is_refused(
    sim: ConnectSim, client: httpx.Client
) -> None:
    w = world(sim)
    pending = next(t for t in sim.change_account(w.customer) if t["status"] == "pending")
    response = client.post(
        f"/tier/account-requests/{pending['id']}/ignore", json={"reason": "x" * 256}
    )
    assert response.status_code == 400
    assert response.json() == {
        "error_code": "VAL_001",
        "errors": ["reason: Ensure this field has no more than 255 characters."],
    }
    assert sim.tar(pending["id"])["status"] == "pending"


def test_unsupported_tars_cannot_be_accepted(sim: ConnectSim, client: httpx.Client) -> None:
    w = world(sim)
    tars = sim.change_account(w.customer)
    statuses = {t["product"]["id"]: t["status"] for t in tars}
    assert statuses == {w.on: "pending", w.off: "unsupported"}
    unsupported = next(t for t in tars if t["status"] == "unsupported")
    response = client.post(f"/tier/account-requests/{unsupported['id']}/accept")
    assert response.status_code == 400
    assert sim.tar(unsupported["id"])["status"] == "unsupported"


def test_unknown_tar_is_404(client: httpx.Client) -> None:
    response = client.post("/tier/account-requests/TAR-0000-0000-0000-001-001/accept")
    assert response.status_code == 404
    assert set(response.json()) == {"error_code", "errors"}


# -- writes ----------------------------------------------------------------------------------


def test_put_makes_a_new_version_and_one_tar_per_linked_product(
    sim: ConnectSim, client: httpx.Client
) -> None:
    w = world(sim)
    old = client.get(f"/tier/accounts/{w.customer}").json()
    sim.clock = lambda: T0 + timedelta(hours=2)
    response = client.put(f"/tier/accounts/{w.customer}", json={"name": "Northwind Analytics"})
    assert response.status_code == 200
    new = response.json()
    assert (new["version"], new["name"]) == (2, "Northwind Analytics")
    assert new["events"]["updated"]["at"] == "2025-06-01T11:30:00+00:00"
    assert new["events"]["created"] == old["events"]["created"]
    assert client.get(f"/tier/accounts/{w.customer}/versions/1").json() == old
    versions = client.get(f"/tier/accounts/{w.customer}/versions")
    assert [v["version"] for v in versions.json()] == [1, 2]
    assert versions.headers["Content-Range"] == "items 0-1/2"
    tars = client.get(f"/tier/account-requests?eq(account.id,{w.customer})").json()
    assert {(t["product"]["id"], t["status"]) for t in tars} == {
        (w.on, "pending"),
        (w.off, "unsupported"),
    }
    assert all(t["account"] == new for t in tars)


def test_put_without_a_change_keeps_the_version(sim: ConnectSim, client: httpx.Client) -> None:
    w = world(sim)
    current = client.get(f"/tier/accounts/{w.customer}").json()
    body = {"name": current["name"], "contact_info": current["contact_info"]}
    response = client.put(f"/tier/accounts/{w.customer}", json=body)
    assert response.json()["version"] == 1
    assert sim.tars_of(w.customer) == []


def test_put_refuses_invalid_data_and_changes_nothing(
    sim: ConnectSim, client: httpx.Client
) -> None:
    w = world(sim)
    before = sim.mutations
    bad = {"name": "n" * 256, "contact_info": {"city": "Hamburg"}}
    response = client.put(f"/tier/accounts/{w.customer}", json=bad)
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "VAL_001"
    assert "name: Ensure this field has no more than 255 characters." in body["errors"]
    assert "contact_info.address_line1: This field is required." in body["errors"]
    assert sim.mutations == before
    assert sim.account(w.customer)["version"] == 1


def test_create_tar_request_answers_a_list_of_tars(sim: ConnectSim, client: httpx.Client) -> None:
    w = world(sim)
    body = {"type": "update", "account": {"id": w.customer, "tax_id": "DE298765431"}}
    response = client.post("/tier/account-requests", json=body)
    assert response.status_code == 201
    created = response.json()
    assert isinstance(created, list)
    assert {t["product"]["id"] for t in created} == {w.on, w.off}
    assert all(t["account"]["tax_id"] == "DE298765431" for t in created)
    uid = sim.account(w.customer)["external_uid"]
    by_uid = {"type": "update", "account": {"external_uid": uid, "name": "Renamed"}}
    assert client.post("/tier/account-requests", json=by_uid).status_code == 201
    assert sim.account(w.customer)["version"] == 3


@pytest.mark.parametrize(
    "body",
    [
        {"type": "create", "account": {"id": "TA-0000-0000-0000"}},
        {"type": "update", "account": {"id": "TA-0000-0000-0000"}},
        {"type": "update"},
    ],
)
def test_create_tar_request_refuses_bad_bodies(client: httpx.Client, body: dict[str, Any]) -> None:
    response = client.post("/tier/account-requests", json=body)
    assert response.status_code == 400
    assert response.json()["error_code"] == "VAL_001"


def test_products_expose_the_tier_accounts_sync_capability(
    sim: ConnectSim, client: httpx.Client
) -> None:
    w = world(sim)
    on = client.get(f"/products/{w.on}").json()
    assert on["capabilities"]["tiers"]["updates"] is True
    sim.set_capability(w.on, False)
    assert client.get(f"/products/{w.on}").json()["capabilities"]["tiers"]["updates"] is False
    assert client.get("/products/PRD-000-000-000").status_code == 404


def test_reads_do_not_count_as_mutations(sim: ConnectSim, client: httpx.Client) -> None:
    w = world(sim)
    before = sim.mutations
    client.get("/tier/accounts")
    client.get(f"/tier/accounts/{w.customer}/versions")
    assert sim.mutations == before


def test_routes_answer_without_the_public_v1_prefix(sim: ConnectSim, server: SimServer) -> None:
    world(sim)
    headers = {"Authorization": f"ApiKey {KEY}"}
    response = httpx.get(f"{server.url}/tier/accounts", headers=headers)
    assert response.status_code == 200
    assert len(response.json()) == 2


# -- auth, faults, request log ---------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "ApiKey wrong", f"Bearer {KEY}", KEY])
def test_requests_without_the_key_are_unauthorized(server: SimServer, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = httpx.get(f"{server.url}/public/v1/tier/accounts", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error_code": "AUTH_001", "errors": ["API request is unauthorized."]}


def test_injected_429_carries_retry_after_and_a_connect_error(
    server: SimServer, client: httpx.Client
) -> None:
    server.faults.inject(Fault(status=429, headers={"Retry-After": "7"}), times=1)
    response = client.get("/tier/account-requests")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    body = response.json()
    assert isinstance(body["error_code"], str)
    assert body["errors"]
    assert client.get("/tier/account-requests").status_code == 200


def test_injected_server_errors_are_json_or_the_given_page(
    server: SimServer, client: httpx.Client
) -> None:
    server.faults.inject(Fault(status=503))
    response = client.get("/tier/accounts")
    assert response.status_code == 503
    assert set(response.json()) == {"error_code", "errors"}
    page = b"<html><body>502 Bad Gateway</body></html>"
    server.faults.inject(Fault(status=502, body=page, headers={"Content-Type": "text/html"}))
    response = client.get("/tier/accounts")
    assert (response.status_code, response.content) == (502, page)
    assert response.headers["Content-Type"] == "text/html"


def test_a_dropped_response_leaves_the_write_applied(
    sim: ConnectSim, server: SimServer, client: httpx.Client
) -> None:
    w = world(sim)
    pending = next(t for t in sim.change_account(w.customer) if t["status"] == "pending")
    server.faults.inject(Fault(drop_response=True, match="accept", name="drop"))
    with pytest.raises(httpx.TransportError):
        client.post(f"/tier/account-requests/{pending['id']}/accept")
    assert sim.tar(pending["id"])["status"] == "accepted"
    logged = server.requests_matching("POST", "/accept")
    assert [(r.status, r.fault) for r in logged] == [(0, "drop")]


def test_request_log_records_method_path_query_and_status(
    server: SimServer, client: httpx.Client
) -> None:
    client.get("/tier/account-requests?eq(status,pending)&limit=10&offset=0")
    client.post("/tier/account-requests/TAR-0000-0000-0000-001-001/ignore", json={"reason": "r"})
    gets = server.requests_matching("GET", "/tier/account-requests")
    assert [(r.query, r.status) for r in gets] == [("eq(status,pending)&limit=10&offset=0", 200)]
    (post,) = server.requests_matching("POST")
    assert (post.status, post.json()) == (404, {"reason": "r"})


# -- seeded data -----------------------------------------------------------------------------

ID_FORMATS = {
    "account": r"TA-\d{4}-\d{4}-\d{4}",
    "tar": r"TAR-\d{4}-\d{4}-\d{4}-\d{3}-\d{3}",
    "product": r"PRD-\d{3}-\d{3}-\d{3}",
    "asset": r"AS-\d{4}-\d{4}-\d{4}",
    "vendor": r"VA-\d{3}-\d{3}",
    "provider": r"PA-\d{3}-\d{3}",
    "hub": r"HB-\d{4}-\d{4}",
}


def test_seeded_data_forms_consistent_reseller_trees_and_tars(
    sim: ConnectSim, client: httpx.Client
) -> None:
    summary = sim.seed(11, accounts=400, products=4, capability_on_ratio=0.5, changed_ratio=0.3)
    accounts = {a["id"]: a for a in get_all(client, "/tier/accounts", "", 1000)}
    tars = get_all(client, "/tier/account-requests", "", 1000)
    assets = get_all(client, "/assets", "", 1000)
    assert (len(accounts), len(tars), len(assets)) == (400, summary.tars, summary.assets)
    assert summary.resellers == sum(a["type"] == "reseller" for a in accounts.values())
    for account in accounts.values():
        assert re.fullmatch(ID_FORMATS["account"], account["id"])
        assert re.fullmatch(ID_FORMATS["hub"], account["hub"]["id"])
        parent = accounts.get(account.get("parent", {}).get("id", ""))
        if account["scopes"] == ["customer"]:
            assert parent is None or parent["scopes"] == ["tier1"]
        elif account["scopes"] == ["tier1"]:
            assert parent is None or parent["scopes"] == ["tier2"]
        else:
            assert account["scopes"] == ["tier2"]
            assert parent is None
    products = {p: client.get(f"/products/{p}").json() for p in sim.products}
    linked = {(a["tiers"]["customer"]["id"], a["product"]["id"]) for a in assets}
    for tar in tars:
        assert re.fullmatch(ID_FORMATS["tar"], tar["id"])
        assert re.fullmatch(ID_FORMATS["vendor"], tar["vendor"]["id"])
        assert re.fullmatch(ID_FORMATS["provider"], tar["provider"]["id"])
        account, product = tar["account"], tar["product"]["id"]
        capability = products[product]["capabilities"]["tiers"]["updates"]
        assert (tar["status"] == "unsupported") == (not capability)
        if tar["status"] == "pending":
            assert account["version"] == accounts[account["id"]]["version"]
        if accounts[account["id"]]["type"] == "customer":
            assert (account["id"], product) in linked
    statuses = {t["status"] for t in tars}
    assert statuses == {"pending", "accepted", "ignored", "unsupported"}
    assert summary.pending == sum(t["status"] == "pending" for t in tars)
    assert all(re.fullmatch(ID_FORMATS["asset"], a["id"]) for a in assets)
    assert all(re.fullmatch(ID_FORMATS["product"], p) for p in products)


def test_seeding_is_deterministic() -> None:
    one, two = ConnectSim(seed=1), ConnectSim(seed=1)
    for sim in (one, two):
        sim.clock = lambda: T0
        sim.seed(5, accounts=50, products=3)
    assert [one.account(a) for a in one.accounts] == [two.account(a) for a in two.accounts]
    assert [one.tar(t) for t in one.tars] == [two.tar(t) for t in two.tars]
