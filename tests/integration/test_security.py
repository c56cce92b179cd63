"""Security: TLS verified by default, values that cannot change a query (RQL, SOQL, HubSpot, SQL),
non-root deployment, and no secret in a repr or an exception message."""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import Engine, func, inspect, select

from syncd.config import load_settings
from syncd.connect import rql
from syncd.connect.client import ConnectClient
from syncd.connect.errors import ConnectError, FatalError
from syncd.crm.hubspot import HubSpotAdapter
from syncd.crm.port import CrmError, Upsert
from syncd.crm.salesforce import SalesforceAdapter
from syncd.retry import RetryPolicy
from syncd.service import cli
from syncd.sim.base import Fault, SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from syncd.sim.salesforce import SalesforceSim
from syncd.store.schema import sync_ledger, sync_overrides, tier_accounts
from syncd.sync.cycle import run_cycle
from syncd.sync.pull import PullOptions

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KEY = "SU-000-000-000:test-secret"  # the `sim` fixture's key (tests/integration/conftest.py)
KEY_SECRET = KEY.partition(":")[2]
TOKEN = "pat-na1-security-token-0123456789"
FAST = RetryPolicy(attempts=3, max_seconds=2, base=0.01, cap=0.02)
HOSTILE = [
    "O'Brien",
    'Say "hi"',
    "a,b",
    "x)",
    "(y",
    "eq(name,*)",
    "*",
    "'); DROP TABLE tier_accounts;--",
    "a&b=c",
    "100% _off_",
    "name)&or(eq(id,*",
    "ünï ☃ 🚀",
    "back\\slash",
    "a+b",
    "null()",
]
"""Values that are syntax in RQL, SOQL, SQL or a URL."""


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip(
            "no openssl command (and `cryptography` is not installed) to make a certificate"
        )
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    made = subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"openssl could not make a certificate: {made.stderr.strip()[:200]}")
    return cert, key


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Range", "items 0-0/0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that refuse the certificate abort the handshake: expected here


@pytest.fixture
def https_url(certificate: tuple[Path, Path]) -> Iterator[str]:
    """An HTTPS server on loopback with the self-signed certificate, answering `[]` to any GET."""
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = _QuietServer(("127.0.0.1", 0), _Answer)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def names_the_certificate(text: str) -> bool:
    return re.search(r"certificate verify failed|CERTIFICATE_VERIFY_FAILED", text) is not None


def test_the_server_answers_a_client_that_trusts_its_certificate(
    https_url: str, certificate: tuple[Path, Path]
) -> None:
    # The control: with the certificate trusted, the same server answers. The failures below are
    # about trust, nothing else.
    context = ssl.create_default_context(cafile=str(certificate[0]))
    assert httpx.get(f"{https_url}/tier/accounts", verify=context).status_code == 200


def test_the_connect_client_refuses_an_unverified_certificate_naming_it_and_not_retrying(
    https_url: str,
) -> None:
    with ConnectClient(f"{https_url}/public/v1", KEY, retry=FAST) as client:
        with pytest.raises(FatalError) as caught:
            client.get("/tier/accounts")
        assert client.stats.total_retries == 0

    message = str(caught.value)
    assert names_the_certificate(message), message
    assert KEY_SECRET not in message
    assert KEY_SECRET not in repr(caught.value)


def test_syncd_check_names_the_certificate_problem_and_no_secret(
    https_url: str, database_url: str
) -> None:
    env = {
        **os.environ,
        "SYNCD_DATABASE_URL": database_url,
        "SYNCD_CONNECT_URL": f"{https_url}/public/v1",
        "SYNCD_CONNECT_API_KEY": KEY,
        "SYNCD_HUBSPOT_URL": https_url,
        "SYNCD_HUBSPOT_TOKEN": TOKEN,
    }
    done = subprocess.run(
        [sys.executable, "-m", "syncd", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    connect_line = next(line for line in done.stdout.splitlines() if " connect " in line)
    assert connect_line.startswith("FAIL")
    assert names_the_certificate(connect_line), connect_line
    assert KEY_SECRET not in output
    assert TOKEN not in output


@pytest.mark.parametrize("crm", ["hubspot", "salesforce"])
def test_the_crm_adapters_refuse_an_unverified_certificate_naming_it(
    crm: str, https_url: str
) -> None:
    adapter: HubSpotAdapter | SalesforceAdapter
    if crm == "hubspot":
        adapter = HubSpotAdapter(https_url, TOKEN, retry=FAST)
    else:
        adapter = SalesforceAdapter(https_url, TOKEN, retry=FAST)
    with adapter, pytest.raises(CrmError) as caught:
        adapter.properties()

    assert TOKEN not in str(caught.value)
    assert caught.value.fatal
    assert names_the_certificate(str(caught.value)), str(caught.value)


# -- values that cannot change a query ---------------------------------------------------------


def test_hostile_names_filter_exactly_through_rql_against_the_simulators_parser(
    sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    for name in HOSTILE:
        sim.add_account(name=name)
    sim.add_account(name="decoy")

    for name in HOSTILE:
        query = rql.render_query(rql.eq("name", name))
        found = [item for page in client.iter_pages("/tier/accounts", query) for item in page.items]
        assert [a["name"] for a in found] == [name], name
    every_id = rql.render_query(rql.in_("id", HOSTILE))
    assert [i for p in client.iter_pages("/tier/accounts", every_id) for i in p.items] == []
    assert all(r.status == 200 for r in server.requests), "no query was refused as malformed"


def test_a_value_holding_both_quote_characters_is_refused_not_sent() -> None:
    with pytest.raises(rql.RQLValueError):
        rql.render_query(rql.eq("name", 'it\'s "quoted"'))


@pytest.fixture
def salesforce() -> Iterator[tuple[SalesforceSim, SimServer, SalesforceAdapter]]:
    crm = SalesforceSim(TOKEN)
    with SimServer(crm) as running, SalesforceAdapter(running.url, TOKEN, retry=FAST) as adapter:
        yield crm, running, adapter


def test_hostile_keys_are_literals_in_soql(
    salesforce: tuple[SalesforceSim, SimServer, SalesforceAdapter],
) -> None:
    crm, _, adapter = salesforce
    keys = [f"TA-{n}{value}" for n, value in enumerate(HOSTILE)]
    written = adapter.upsert([Upsert(key, {"Name": f"Account {key}"}) for key in keys])
    assert {r.outcome.value for r in written} == {"done"}, written

    for key in keys:
        assert list(adapter.read([key])) == [key], key
    assert adapter.read(["' OR Connect_Account_Id__c != '", "x') OR (Name != 'y"]) == {}
    assert sorted(adapter.read(keys)) == sorted(keys)
    assert crm.count("Account") == len(keys)
    assert any("\\'" in soql for soql in crm.soql_log), "the quote went out escaped"


def test_hostile_keys_are_data_in_hubspot_batch_reads_and_writes() -> None:
    crm = HubSpotSim(TOKEN, limits=None, custom_properties=True)
    keys = [f"TA-{n}{value}" for n, value in enumerate(HOSTILE)]
    with SimServer(crm) as running, HubSpotAdapter(running.url, TOKEN, retry=FAST) as adapter:
        written = adapter.upsert(
            [Upsert(key, {"name": f"Company {key}", "connect_account_id": key}) for key in keys]
        )
        assert {r.outcome.value for r in written} == {"done"}, written

        for key in keys:
            assert list(adapter.read([key])) == [key], key
        assert adapter.read(['" OR 1=1', "*"]) == {}
    assert sorted(str(o.value("connect_account_id")) for o in crm.companies) == sorted(keys)


def test_hostile_values_reach_postgres_as_data_and_every_table_stays(
    engine: Engine,
    sim: ConnectSim,
    server: SimServer,
    client: ConnectClient,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tables_before = set(inspect(engine).get_table_names())
    product = sim.add_product(updates=True)
    named = {}
    for name in HOSTILE:
        account = sim.add_account(name=name, contact_info={"address_line1": name, "city": name})
        sim.link(account["id"], product["id"])
        sim.change_account(account["id"], tax_id="1")
        named[account["id"]] = name
    bad_ids = [
        {**sim.tars_of(next(iter(named)))[0], "id": value} for value in [*HOSTILE[:5], "TA-1\x00"]
    ]
    server.faults.inject(
        Fault(status=200, body=bad_ids, match=r"GET /public/v1/tier/account-requests\?ordering")
    )

    result = run_cycle(engine, client, PullOptions())
    monkeypatch.setenv("SYNCD_DATABASE_URL", database_url)
    account_id = next(iter(named))
    reason = "'); DROP TABLE sync_overrides;-- ünï"
    assert cli.main(["accounts", "disable", account_id, "--reason", reason]) == 0
    assert cli.main(["accounts", "show", "TA-1'; DROP TABLE tier_accounts;--"]) == 2

    assert result.outcome == "partial"
    with engine.connect() as conn:
        stored = dict(conn.execute(select(tier_accounts.c.id, tier_accounts.c.name)).all())
        ledger = set(conn.execute(select(sync_ledger.c.object_id)).scalars())
        reasons = list(conn.execute(select(sync_overrides.c.reason)).scalars())
        count = conn.execute(select(func.count()).select_from(tier_accounts)).scalar_one()
    assert {k: stored[k] for k in named} == named
    assert set(HOSTILE[:5]) <= ledger
    assert "TA-1\\u0000" in ledger, "a NUL is kept escaped"
    assert reasons == [reason]
    assert count == len(sim.accounts)
    assert set(inspect(engine).get_table_names()) == tables_before


# -- deployment --------------------------------------------------------------------------------


def _deploy_file(*parts: str) -> Path:
    path = DEPLOY.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"deploy/{'/'.join(parts)} is absent (deploy/ is written separately)")
    return path


def test_the_container_image_runs_as_a_non_root_user() -> None:
    lines = _deploy_file("Dockerfile").read_text(encoding="utf-8").splitlines()
    users = [line.split(None, 1)[1].strip() for line in lines if line.upper().startswith("USER ")]
    assert users, "the image sets a USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]


def test_kubernetes_pods_run_non_root_on_a_read_only_root_filesystem() -> None:
    path = _deploy_file("k8s", "deployment.yaml")
    folder = path.parent
    workloads = [
        doc
        for manifest in sorted(folder.glob("*.yaml"))
        for doc in yaml.safe_load_all(manifest.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and doc.get("kind") in ("Deployment", "Job", "CronJob")
    ]
    assert workloads
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, workload["kind"]
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, container["name"]
            assert context.get("allowPrivilegeEscalation") is False, container["name"]


def test_systemd_units_run_as_an_unprivileged_user_with_a_read_only_system() -> None:
    _deploy_file("systemd", "syncd.service")
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        settings: dict[str, list[str]] = {}
        for line in unit.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.startswith("#"):
                settings.setdefault(key.strip(), []).append(value.strip())
        assert settings.get("User"), unit.name
        assert settings["User"][-1] not in ("root", "0"), unit.name
        assert settings.get("ProtectSystem") == ["strict"], unit.name
        assert settings.get("NoNewPrivileges") == ["yes"], unit.name


# -- no secret in a repr or an error -----------------------------------------------------------


def test_no_secret_shows_in_the_reprs_of_the_settings_and_the_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secrets = {
        "SYNCD_CONNECT_API_KEY": KEY,
        "SYNCD_DATABASE_URL": "postgresql+psycopg://syncd:db-pass-123@db/syncd",
        "SYNCD_HUBSPOT_TOKEN": TOKEN,
        "SYNCD_SALESFORCE_TOKEN": "sf-access-token-123",
        "SYNCD_SALESFORCE_REFRESH_TOKEN": "sf-refresh-token-123",
        "SYNCD_SALESFORCE_CLIENT_SECRET": "sf-client-secret-123",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(salesforce_url="https://example.my.salesforce.com")
    connect = ConnectClient("https://connect.example/public/v1", KEY)
    hubspot = HubSpotAdapter("https://api.hubapi.example", TOKEN)
    salesforce = SalesforceAdapter(
        "https://example.my.salesforce.com",
        "sf-access-token-123",
        refresh_token="sf-refresh-token-123",
        client_id="client-id",
        client_secret="sf-client-secret-123",
    )
    try:
        shown = " ".join(
            [repr(settings), str(settings), str(settings.model_dump())]
            + [repr(o) for o in (connect, hubspot, salesforce)]
            + [repr(vars(o)) for o in (connect, hubspot, salesforce)]
        )
    finally:
        for closable in (connect, hubspot, salesforce):
            closable.close()
    for value in ("test-secret", "db-pass-123", TOKEN, "sf-access-token-123"):
        assert value not in shown
    assert "sf-refresh-token-123" not in shown
    assert "sf-client-secret-123" not in shown


def test_a_connect_401_echoing_the_key_leaves_it_out_of_the_error(server: SimServer) -> None:
    echo = {
        "error_code": "AUTH_001",
        "errors": [f"Authorization: ApiKey {KEY} is not valid", f"secret {KEY_SECRET} revoked"],
    }
    server.faults.inject(Fault(status=401, body=echo, headers={"X-Echo": f"ApiKey {KEY}"}))
    with (
        ConnectClient(f"{server.url}/public/v1", KEY, retry=FAST) as client,
        pytest.raises(ConnectError) as caught,
    ):
        client.get("/tier/accounts")

    error = caught.value
    assert error.kind == "fatal"
    assert "AUTH_001" in str(error)
    for text in (str(error), repr(error), error.body or "", json.dumps(error.errors)):
        assert KEY_SECRET not in text
        assert "SU-000-000-000" not in text


@pytest.mark.parametrize("status", [401, 403])
def test_a_hubspot_refusal_echoing_the_token_leaves_it_out_of_the_error(status: int) -> None:
    crm = HubSpotSim(TOKEN, limits=None, custom_properties=True)
    body = {
        "status": "error",
        "message": f"The token Bearer {TOKEN} is not valid",
        "category": "INVALID_AUTHENTICATION" if status == 401 else "MISSING_SCOPES",
    }
    with SimServer(crm) as running, HubSpotAdapter(running.url, TOKEN, retry=FAST) as adapter:
        running.faults.inject(Fault(status=status, body=body))
        with pytest.raises(CrmError) as caught:
            adapter.properties()
    assert caught.value.fatal
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value)


@pytest.mark.parametrize("status", [401, 403])
def test_a_salesforce_refusal_echoing_the_token_leaves_it_out_of_the_error(
    status: int, salesforce: tuple[SalesforceSim, SimServer, SalesforceAdapter]
) -> None:
    _, running, adapter = salesforce
    code = "INVALID_SESSION_ID" if status == 401 else "INSUFFICIENT_ACCESS"
    body = [{"errorCode": code, "message": f"Session Bearer {TOKEN} refused"}]
    running.faults.inject(Fault(status=status, body=body))
    with pytest.raises(CrmError) as caught:
        adapter.properties()
    assert caught.value.fatal
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value)
