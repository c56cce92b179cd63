"""The promises of product.md §5, checked against the simulators and the database.

Shared by the crash-point matrix (`test_crash_matrix.py`) and the soak (`test_soak.py`). Every
check returns a list of problems (empty: the promise holds), so a test can wait for convergence
and still report everything that is wrong at once.

- Safety, true at every moment: no CRM record twice, no CRM write and no Connect action for an
  account whose sync is off, no TAR acted on twice, no run left `running`.
- Convergence, true once syncd has had a clean cycle: every flag-on account in the CRM at its
  latest version with Connect's values, every pending TAR of such an account settled.

What a request "applied" means comes from the simulators: 429, 5xx and reset faults answer
before the handler runs; a dropped answer (`drop`) was applied first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from syncd.domain.mapping import Mapping, apply
from syncd.sim.base import LoggedRequest, SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from syncd.store.schema import connect_outbox, crm_links, sync_runs, tier_accounts

READS = ("/batch/read", "/search", "/query", "/describe")
"""Path parts of CRM requests that only read, though some are POSTs."""


@dataclass
class World:
    """One syncd deployment's surroundings: Connect, a CRM, the database, the mapping."""

    crm: str
    connect: ConnectSim
    connect_server: SimServer
    crm_sim: Any
    crm_server: SimServer
    engine: Engine
    mapping: Mapping
    overrides: dict[str, bool] = field(default_factory=dict)
    """Operator overrides set so far (account → on/off)."""

    # -- the CRM's records ---------------------------------------------------------------------

    def crm_keys(self) -> list[str]:
        """The TA id of every account record in the CRM, duplicates included."""
        if isinstance(self.crm_sim, HubSpotSim):
            return [str(o.value("connect_account_id")) for o in self.crm_sim.companies]
        return [str(r["Connect_Account_Id__c"]) for r in self._rows("Account")]

    def contact_keys(self) -> list[str]:
        """The key of every contact (HubSpot: the email; Salesforce: the TA id)."""
        if isinstance(self.crm_sim, HubSpotSim):
            return [str(o.value("email")).lower() for o in self.crm_sim.contacts]
        return [str(r["Connect_Account_Id__c"]) for r in self._rows("Contact")]

    def crm_fields(self, key: str) -> dict[str, str | None] | None:
        """The mapped account fields the CRM holds for TA `key` (None: no record)."""
        names = [f.target for f in self.mapping.account]
        if isinstance(self.crm_sim, HubSpotSim):
            company = self.crm_sim.company(key)
            if company is None:
                return None
            return {name: company.value(name) or None for name in names}
        row = self.crm_sim.account(key)
        if row is None:
            return None
        return {
            name: (str(row[name]) if row.get(name) not in (None, "") else None) for name in names
        }

    def _rows(self, sobject: str) -> list[dict[str, Any]]:
        with self.crm_sim.lock:
            return list(self.crm_sim.org.records[sobject].values())

    # -- the database --------------------------------------------------------------------------

    def flag_on(self) -> set[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(tier_accounts.c.id).where(tier_accounts.c.sync_enabled))
            return set(rows.scalars())

    def links(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return {row.account_id: row for row in conn.execute(select(crm_links))}

    def mirrored_versions(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(tier_accounts.c.id, tier_accounts.c.version))
            return {account_id: int(version) for account_id, version in rows}

    def outbox_states(self) -> Counter[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(connect_outbox.c.state))
            return Counter(rows.scalars())

    def unsettled_outbox(self, states: Iterable[str] = ("sent", "unknown")) -> list[Any]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(connect_outbox).where(connect_outbox.c.state.in_(tuple(states)))
                )
            )


# -- Connect ---------------------------------------------------------------------------------


def expected_flags(connect: ConnectSim, overrides: dict[str, bool]) -> set[str]:
    """The accounts whose sync must be on, from the simulator's own state: the override, else
    whether any product linked to the account has the sync capability on (default off)."""
    on = set()
    with connect.lock:
        for account in connect.accounts.values():
            if account.id in overrides:
                if overrides[account.id]:
                    on.add(account.id)
            elif any(product.updates for product in account.products):
                on.add(account.id)
    return on


def pending_tars(connect: ConnectSim) -> set[str]:
    with connect.lock:
        return {t.id for t in connect.tars.values() if t.status == "pending"}


def tar_action(logged: LoggedRequest) -> tuple[str, str] | None:
    """(TAR id, accept|ignore) of an accept or ignore request, else None."""
    parts = logged.path.rstrip("/").split("/")
    if logged.method == "POST" and len(parts) > 2 and parts[-1] in ("accept", "ignore"):
        return parts[-2], parts[-1]
    return None


def applied_actions(log: Iterable[LoggedRequest]) -> Counter[str]:
    """TAR id → accepts and ignores Connect applied (answered 2xx, or applied then dropped)."""
    out: Counter[str] = Counter()
    for logged in log:
        action = tar_action(logged)
        if action and (200 <= logged.status < 300 or logged.fault == "drop"):
            out[action[0]] += 1
    return out


def action_posts(log: Iterable[LoggedRequest]) -> Counter[str]:
    """TAR id → accept and ignore requests sent, whatever became of them."""
    return Counter(action[0] for logged in log if (action := tar_action(logged)))


def account_of_tar(tar_id: str) -> str:
    """`TAR-1234-5678-9012-003-001` → `TA-1234-5678-9012` (the simulator's id scheme)."""
    return "TA-" + "-".join(tar_id.split("-")[1:4])


def connect_writes_for(log: Iterable[LoggedRequest], accounts: set[str]) -> list[str]:
    """Connect writes (accept, ignore, PUT) that touch one of `accounts`."""
    digits = {a[3:]: a for a in accounts}
    found = []
    for logged in log:
        if logged.method == "GET":
            continue
        hit = next((a for d, a in digits.items() if d in logged.path), None)
        if hit is not None:
            found.append(f"{logged.method} {logged.path} ({hit})")
    return found


# -- the CRM's log ---------------------------------------------------------------------------


def crm_writes(log: Iterable[LoggedRequest]) -> list[LoggedRequest]:
    """The CRM requests that may write (reads by POST excluded)."""
    return [
        r
        for r in log
        if r.method in ("POST", "PATCH", "PUT", "DELETE") and not any(p in r.path for p in READS)
    ]


def crm_writes_for(log: Iterable[LoggedRequest], accounts: set[str], emails: set[str]) -> list[str]:
    """CRM writes whose path, query or body names one of `accounts` or one of `emails`."""
    needles = accounts | {e.lower() for e in emails if e}
    found = []
    for logged in crm_writes(log):
        text = f"{logged.path} {logged.query} {logged.body.decode(errors='replace')}".lower()
        hit = next((n for n in needles if n.lower() in text), None)
        if hit is not None:
            found.append(f"{logged.method} {logged.path} names {hit}")
    return found


def contact_emails(connect: ConnectSim, accounts: Iterable[str]) -> dict[str, str]:
    """Account → its contact's email (lower case), as Connect holds it now."""
    with connect.lock:
        return {
            a: connect.accounts[a].data.contact.email.lower()
            for a in accounts
            if a in connect.accounts
        }


# -- the promises ----------------------------------------------------------------------------


def duplicates(world: World) -> list[str]:
    """No CRM record created twice: one account record per TA id, one contact per key."""
    problems = []
    twice = sorted(k for k, n in Counter(world.crm_keys()).items() if n > 1)
    if twice:
        problems.append(f"CRM account records created twice: {twice[:5]}")
    contacts = sorted(k for k, n in Counter(world.contact_keys()).items() if n > 1)
    if contacts:
        problems.append(f"CRM contacts created twice: {contacts[:5]}")
    return problems


def acted_twice(log: Iterable[LoggedRequest]) -> list[str]:
    """No TAR acted on twice: at most one applied accept or ignore per TAR, and no action sent
    to a TAR already settled (Connect answers 400 to those)."""
    entries = list(log)
    problems = [f"{t} acted on {n} times" for t, n in applied_actions(entries).items() if n > 1]
    problems += [
        f"{action[0]}: {action[1]} sent to a settled TAR"
        for logged in entries
        if (action := tar_action(logged)) and logged.status == 400
    ]
    return problems


def runs_left_running(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(sync_runs.c.id, sync_runs.c.pid).where(sync_runs.c.outcome == "running")
        )
        return [f"run {row.id} (pid {row.pid}) left running" for row in rows]


def off_account_traffic(
    world: World,
    off: set[str],
    connect_log: Iterable[LoggedRequest],
    crm_log: Iterable[LoggedRequest],
    on: set[str] | None = None,
) -> list[str]:
    """Flag off means zero writes: nothing written to the CRM for `off` (by TA id, or by a
    contact email no flag-on account shares), no accept, ignore or PUT in Connect."""
    on = on if on is not None else set(world.connect.accounts) - off
    shared = set(contact_emails(world.connect, on).values())
    emails = {e for e in contact_emails(world.connect, off).values() if e not in shared}
    problems = [
        f"CRM write for a flag-off account: {w}" for w in crm_writes_for(crm_log, off, emails)
    ]
    problems += [
        f"Connect action for a flag-off account: {w}" for w in connect_writes_for(connect_log, off)
    ]
    return problems


def convergence(
    world: World,
    on: set[str],
    pending: set[str],
    *,
    refused: AbstractSet[str] = frozenset(),
    skip_fields: dict[str, set[str]] | None = None,
    versions: dict[str, int] | None = None,
) -> list[str]:
    """What stands between the world and convergence for the flag-on accounts `on`: each in the
    CRM with Connect's values of its connect-owned fields (but `skip_fields[account]`), synced at
    its version (`versions[account]`, default Connect's current one; accounts in `refused` hold a
    contact the CRM refuses: their link is not `synced`), and every TAR of `pending` whose
    account is on settled."""
    problems: list[str] = []
    if world.flag_on() != on:
        problems.append(f"flags differ from Connect's: {sorted(world.flag_on() ^ on)[:5]}")
    links = world.links()
    mirrored = world.mirrored_versions()
    owned = {f.target for f in world.mapping.account if f.owner == "crm"}
    for account_id in sorted(on):
        with world.connect.lock:
            record = world.connect.account(account_id)
            current = world.connect.accounts[account_id].data.version
        wanted = apply(world.mapping, record)[0]
        held = world.crm_fields(account_id)
        if held is None:
            problems.append(f"{account_id}: not in the CRM")
            continue
        skip = owned | (skip_fields or {}).get(account_id, set())
        differ = sorted(k for k, v in wanted.items() if k not in skip and held.get(k) != v)
        if differ:
            problems.append(f"{account_id}: the CRM's {differ} are not Connect's")
        version = (versions or {}).get(account_id, current)
        if mirrored.get(account_id, 0) < version:
            problems.append(
                f"{account_id}: mirrored v{mirrored.get(account_id)}, Connect v{version}"
            )
        link = links.get(account_id)
        if account_id in refused:
            continue
        if link is None or link.state != "synced" or (link.synced_version or 0) < version:
            state = None if link is None else (link.state, link.synced_version)
            problems.append(f"{account_id}: link {state}, Connect v{version}")
    with world.connect.lock:
        for tar_id in sorted(pending):
            tar = world.connect.tars[tar_id]
            if tar.account.id in on and tar.status == "pending":
                problems.append(f"{tar_id}: still pending")
    return problems
