"""Fill syncd's mirror straight from a Connect simulator's records: an installation at rest.

Pulling a million accounts through the API (and looking every account up through /assets) would
take longer than the benchmark it prepares. So the simulator process writes its own records into
the database with syncd's own store functions, the ones the pull uses (`syncd.store.mirror`):

- every account, as `GET /tier/accounts` renders it, and every TAR with its account snapshot;
- the products, read now (so no cycle re-reads them within the product TTL);
- accounts without a TAR linked to the products of their assets (what the flag phase's /assets
  look-up stores), and those without any asset in the flag phase's memo;
- the feed cursors at the newest `events.created.at`, as a pull leaves them;
- the flags, decided by syncd's own statement (`recompute_flags`), a day ago;
- with a CRM, a `synced` link per enabled account at its current version, synced a day ago, and
  the CRM-change cursors at now: as if syncd had pushed every account and seen its writes come
  back (so the push's queue is left empty). The CRM simulator itself stays empty: an idle cycle
  asks it only for records modified since the cursor, which are none either way.

What a pull would store and this stores differ in one way only: the mirror keeps the versions
it was given (the current one, and those the TARs carry), not every version syncd would have
seen over the years.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, create_engine, text

from syncd.domain.assets import AssetLink
from syncd.domain.records import parse_product
from syncd.sim.connect import ConnectSim
from syncd.sim.connect_model import Account, Tar
from syncd.sim.connect_render import account_json, product_json, tar_json
from syncd.store import asset_links, mirror, push_queue
from syncd.store.flags import recompute_flags

CHUNK = 2000
T = TypeVar("T")

_LINKS = text(
    """
INSERT INTO crm_links (account_id, crm, crm_id, contact_id, state, synced_version,
                       synced_at, updated_at)
SELECT id, :crm, (1000000 + row_number() OVER (ORDER BY id))::text,
       (5000000 + row_number() OVER (ORDER BY id))::text, 'synced', version,
       now() - interval '1 day', now() - interval '1 day'
FROM tier_accounts WHERE sync_enabled
"""
)
# What `syncd.store.asset_links.store_links` inserts, from one jsonb parameter: its multi-row
# VALUES statement takes SQLAlchemy longer to compile than Postgres to run, a million times over.
_STORE_LINKS = text(
    """
INSERT INTO account_products (account_id, product_id, asset_id)
SELECT account_id, product_id, asset_id
FROM jsonb_to_recordset(CAST(:links AS jsonb)) AS l(account_id text, product_id text, asset_id text)
ON CONFLICT (account_id, product_id) DO NOTHING
"""
)
_BACKDATE = text("UPDATE tier_accounts SET sync_decided_at = sync_decided_at - interval '1 day'")


def _chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _moment(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _links(sim: ConnectSim, accounts: Sequence[Account], with_tar: set[str]) -> list[AssetLink]:
    first_asset: dict[tuple[str, str], str] = {}
    for asset in sorted(sim.assets.values(), key=lambda a: a.id):
        for holder in (asset.customer, asset.tier1, asset.tier2):
            if holder is not None:
                first_asset.setdefault((holder.id, asset.product.id), asset.id)
    return [
        AssetLink(a.id, p.id, first_asset.get((a.id, p.id)))
        for a in accounts
        if a.id not in with_tar
        for p in a.products
    ]


def _store(conn: Connection, sim: ConnectSim, accounts: list[Account], tars: list[Tar]) -> None:
    get = sim.accounts.get
    for chunk in _chunks(accounts):
        mirror.store_accounts(conn, json.dumps([account_json(a, get) for a in chunk]), "account")
    for tar_chunk in _chunks(tars):
        mirror.store_requests(conn, json.dumps([tar_json(t, get) for t in tar_chunk]))
    now = datetime.now(UTC)
    found = [parse_product(product_json(p)) for p in sim.products.values()]
    mirror.store_products(conn, found, now)
    with_tar = {t.account.id for t in tars}
    links = _links(sim, accounts, with_tar)
    for link_chunk in _chunks(links, 20 * CHUNK):
        rows = [asdict(link) for link in link_chunk]
        conn.execute(_STORE_LINKS, {"links": json.dumps(rows)})
    linked = {link.account_id for link in links}
    without = [a.id for a in accounts if a.id not in with_tar and a.id not in linked]
    asset_links.remember_without_assets(conn, [], without)
    if tars:
        mirror.set_cursor(conn, "pull.tar_feed", _moment(max(t.created_at for t in tars)))
    if accounts:
        newest = max(a.created_at for a in accounts)
        mirror.set_cursor(conn, "pull.account_feed", _moment(newest))


def fill_mirror(
    sim: ConnectSim, database_url: str, *, crm: str | None, sync_default: bool
) -> dict[str, Any]:
    """Write what `sim` holds into the (migrated, empty) database; see the module doc."""
    started = time.perf_counter()
    with sim.lock:
        accounts = sorted(sim.accounts.values(), key=lambda a: a.id)
        tars = sorted(sim.tars.values(), key=lambda t: t.id)
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            _store(conn, sim, accounts, tars)
            flags = recompute_flags(conn, sync_default)
            conn.execute(_BACKDATE)
            links = 0
            if crm is not None:
                links = conn.execute(_LINKS, {"crm": crm}).rowcount
                push_queue.unmark(conn)  # the flags marked every enabled account: now synced
                now = _moment(datetime.now(UTC))
                mirror.set_cursor(conn, "crm.changed_since", now)
                mirror.set_cursor(conn, "crm.flag_switched_on", now)
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    finally:
        engine.dispose()
    return {
        "accounts": len(accounts),
        "tars": len(tars),
        "enabled": flags.enabled,
        "crm_links": links,
        "seconds": round(time.perf_counter() - started, 2),
    }
