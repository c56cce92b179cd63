"""The Connect simulator's product list (`GET /products`) over loopback HTTP: paging, RQL by id,
ordering as the spec allows it, faults and the request log, and its answer against the spec."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import pytest

from syncd.sim.base import Fault, SimServer
from syncd.sim.connect import ConnectSim
from tests.integration.test_connect_sim_spec import check, described, documented_filters
from tests.spec import load_spec

KEY = "SU-123-456-789:product-secret"
SPEC = "connect-openapi30.yml"


@pytest.fixture
def sim() -> ConnectSim:
    sim = ConnectSim(KEY, seed=5)
    sim.clock = lambda: datetime(2025, 6, 20, 12, tzinfo=UTC)
    return sim


@pytest.fixture
def server(sim: ConnectSim) -> Iterator[SimServer]:
    with SimServer(sim) as running:
        yield running


@pytest.fixture
def client(server: SimServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"ApiKey {KEY}"}
    with httpx.Client(base_url=f"{server.url}/public/v1", headers=headers, timeout=10) as c:
        yield c


def add_products(sim: ConnectSim, n: int) -> list[str]:
    return [str(sim.add_product(updates=i % 2 == 0)["id"]) for i in range(n)]


def in_ids(ids: list[str]) -> str:
    return "in(id,(" + ",".join(f'"{i}"' for i in ids) + "))"


def test_the_product_list_and_its_content_range_fit_the_spec(
    sim: ConnectSim, client: httpx.Client
) -> None:
    spec = load_spec(SPEC)
    ids = add_products(sim, 5)

    response = client.get("/products", params={"limit": 3, "offset": 0})

    assert response.status_code == 200, response.text
    assert response.headers["Content-Range"] == "items 0-2/5"
    body = response.json()
    check(spec, "/products", "get", 200, body)
    assert [p["id"] for p in body] == sorted(ids)[:3]
    updates = {p["id"]: p["capabilities"]["tiers"]["updates"] for p in body}
    assert updates == {i: sim.products[i].updates for i in sorted(ids)[:3]}


def test_the_product_filter_table_matches_the_documented_query_parameters(
    sim: ConnectSim,
) -> None:
    documented = documented_filters(load_spec(SPEC), "/products")
    for name, field in sim._product_fields.items():
        assert name in documented, f"/products: {name} is not a documented filter"
        assert described(field) == documented[name], f"/products: {name}"
    assert documented["id"]["lookups"] >= {"eq", "in"}


def test_in_id_lists_only_the_products_asked_for_and_skips_unknown_ids(
    sim: ConnectSim, client: httpx.Client
) -> None:
    ids = add_products(sim, 6)
    asked = [ids[4], ids[1], "PRD-000-000-000"]

    response = client.get(f"/products?{quote(in_ids(asked))}&limit=100")

    assert response.status_code == 200, response.text
    assert sorted(p["id"] for p in response.json()) == sorted([ids[4], ids[1]])
    assert response.headers["Content-Range"] == "items 0-1/2"


def test_eq_id_lists_one_product(sim: ConnectSim, client: httpx.Client) -> None:
    ids = add_products(sim, 3)

    response = client.get(f"/products?eq(id,{ids[2]})")

    assert [p["id"] for p in response.json()] == [ids[2]]
    assert response.headers["Content-Range"] == "items 0-0/1"


def test_a_limit_above_the_maximum_is_clamped_and_offset_pages_on(
    sim: ConnectSim, client: httpx.Client
) -> None:
    sim.max_limit = 4
    ids = sorted(add_products(sim, 10))

    first = client.get("/products?limit=100&offset=0")
    second = client.get("/products?limit=100&offset=4")
    past = client.get("/products?limit=100&offset=10")

    assert first.headers["Content-Range"] == "items 0-3/10"
    assert [p["id"] for p in second.json()] == ids[4:8]
    assert second.headers["Content-Range"] == "items 4-7/10"
    assert past.json() == []
    assert past.headers["Content-Range"] == "items 10-10/10"


def test_products_order_by_name_but_not_by_id_as_the_spec_says(
    sim: ConnectSim, client: httpx.Client
) -> None:
    for name in ("Charlie", "Alpha", "Bravo"):
        sim.add_product(name=name)

    by_name = client.get("/products?ordering(-name)")
    by_id = client.get("/products?ordering(id)")

    assert [p["name"] for p in by_name.json()] == ["Charlie", "Bravo", "Alpha"]
    assert by_id.status_code == 400
    assert by_id.json()["error_code"] == "VAL_001"


def test_a_hidden_product_leaves_the_list_and_its_detail_answers_404(
    sim: ConnectSim, client: httpx.Client
) -> None:
    ids = add_products(sim, 3)
    client.get("/products")  # the list is cached per state: hiding must show at once

    sim.hide_product(ids[0])

    assert sorted(p["id"] for p in client.get("/products").json()) == sorted(ids[1:])
    assert client.get(f"/products/{ids[0]}").status_code == 404


def test_the_product_list_is_logged_and_takes_injected_faults(
    sim: ConnectSim, server: SimServer, client: httpx.Client
) -> None:
    add_products(sim, 2)
    server.faults.inject(Fault(status=503, match=r"GET /public/v1/products\?"))

    failed = client.get("/products?limit=10")
    served = client.get("/products?limit=10")

    assert failed.status_code == 503
    assert len(served.json()) == 2
    logged = server.requests_matching("GET", r"/products$")
    assert [r.status for r in logged] == [503, 200]
    assert all(r.query == "limit=10" for r in logged)


def test_a_bad_filter_on_the_product_list_answers_400(
    sim: ConnectSim, client: httpx.Client
) -> None:
    add_products(sim, 1)

    response = client.get("/products?gt(id,PRD-000-000-000)")

    assert response.status_code == 400
    assert re.search(r"lookup 'gt' on 'id'", response.json()["errors"][0])
