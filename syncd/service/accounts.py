"""`syncd accounts list / show / enable / disable / reset`: the per-account sync flag.

`enable` and `disable` set the operator's override, `reset` clears it (the flag then follows the
products' capability again). Each records who (`--by`, default the OS user), when, why and the
old and new value in `sync_overrides`, and decides the account's flag at once, so the next push
already honours it.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from syncd import bootstrap
from syncd.config import Settings
from syncd.domain.records import ACCOUNT_ID
from syncd.store import migrate
from syncd.store.account_views import AccountLine, account_detail, iter_accounts
from syncd.store.flags import OverrideChange, UnknownAccount, set_override

EXIT_OK, EXIT_USAGE = 0, 2
OVERRIDES = {"enable": True, "disable": False, "reset": None}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommands of `syncd accounts`."""
    commands = parser.add_subparsers(dest="accounts_command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", help="every account with its flag and CRM state")
    listing.add_argument(
        "--flag", choices=["on", "off"], help="only accounts syncd writes (on) or does not (off)"
    )
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    show = commands.add_parser("show", help="one account: mirror, CRM link, flag and history")
    show.add_argument("account", metavar="TA-…")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    for name, title in (
        ("enable", "sync this account whatever its products say (sets the override)"),
        ("disable", "never write this account (sets the override)"),
        ("reset", "clear the override: the flag follows the products again"),
    ):
        command = commands.add_parser(name, help=title)
        command.add_argument("account", metavar="TA-…")
        command.add_argument("--reason", required=True, help="why (kept in the history)")
        command.add_argument("--by", help="who (default: the OS user)")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run one `syncd accounts` subcommand; return the exit code."""
    engine = bootstrap.engine(settings)
    try:
        migrate.require_current(engine)
        command: str = args.accounts_command
        if command == "list":
            flag = None if args.flag is None else args.flag == "on"
            return _list(engine, flag, args.json)
        if not ACCOUNT_ID.fullmatch(args.account):
            return _usage(f"{args.account!r} is not a tier account id (TA-####-####-####)")
        if command == "show":
            return _show(engine, args.account, args.json)
        reason = args.reason.strip()
        if not reason:
            return _usage("--reason must say why")
        actor = (args.by or _os_user()).strip()
        if not actor:
            return _usage("--by must name who makes the change")
        with engine.begin() as conn:
            change = set_override(
                conn,
                args.account,
                OVERRIDES[command],
                actor=actor,
                reason=reason,
                default=settings.sync_default == "on",
            )
        print(_describe_change(change, actor))
        return EXIT_OK
    except UnknownAccount as exc:
        return _usage(f"{exc} (is the id right? `syncd sync` mirrors new accounts)")
    finally:
        engine.dispose()


def _usage(message: str) -> int:
    print(f"syncd: {message}", file=sys.stderr)
    return EXIT_USAGE


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


def _on_off(value: bool | None, unset: str = "-") -> str:
    return unset if value is None else "on" if value else "off"


def _describe_change(change: OverrideChange, actor: str) -> str:
    return (
        f"{change.account_id}: sync {_on_off(change.enabled)} ({change.source}); override "
        f"{_on_off(change.old_override, 'none')} -> {_on_off(change.new_override, 'none')}; "
        f"recorded as by {actor}"
    )


def _list(engine: Engine, flag: bool | None, as_json: bool) -> int:
    with engine.connect() as conn:
        lines = iter_accounts(conn, flag)
        try:
            if as_json:
                _print_json(lines)
            else:
                _print_table(lines)
            sys.stdout.flush()
        except BrokenPipeError:
            # `syncd accounts list | head`: the reader left; stop quietly, as cat does.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


def _line_json(line: AccountLine) -> dict[str, Any]:
    return {
        "id": line.id,
        "name": line.name,
        "flag": _on_off(line.enabled, "undecided"),
        "source": line.source,
        "override": line.override,
        "version": line.version,
        "synced_version": line.synced_version,
        "last_error": line.last_error,
    }


def _print_json(lines: Iterable[AccountLine]) -> None:
    # One JSON array, written as it streams: a million accounts never sit in memory.
    sys.stdout.write("[")
    for index, line in enumerate(lines):
        sys.stdout.write(("," if index else "") + "\n" + json.dumps(_line_json(line)))
    sys.stdout.write("\n]\n")


def _cut(text: str | None, width: int) -> str:
    value = (text or "").replace("\n", " ")
    return value if len(value) <= width else value[: width - 3] + "..."


def _print_table(lines: Iterable[AccountLine]) -> None:
    row = "{:<17}  {:<4} {:<10} {:>8} {:>6}  {:<40}  {}"
    print(row.format("account", "flag", "source", "mirrored", "synced", "name", "last error"))
    count = 0
    for line in lines:
        count += 1
        synced = "-" if line.synced_version is None else str(line.synced_version)
        source = line.source or "undecided"
        print(
            row.format(
                line.id,
                _on_off(line.enabled),
                source,
                line.version,
                synced,
                _cut(line.name, 40),
                _cut(line.last_error, 80),
            ).rstrip()
        )
    print(f"{count} accounts")


def _show(engine: Engine, account_id: str, as_json: bool) -> int:
    with engine.connect() as conn:
        detail = account_detail(conn, account_id)
    if detail is None:
        raise UnknownAccount(account_id)
    if as_json:
        print(json.dumps(detail, default=str, indent=2))
    else:
        for text in _show_lines(detail):
            print(text)
    return EXIT_OK


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S%z") if value else "-"


def _product_line(product: dict[str, Any]) -> str:
    if product["read_at"]:
        said = _on_off(product["capability"], "unknown")
        capability = f"capability {said} (read {_when(product['read_at'])})"
    else:
        capability = "not read yet"
    evidence = [f"{product['tars']} TARs"] if product["tars"] else []
    evidence += ["pending TAR"] if product["pending"] else []
    evidence += ["unsupported TAR"] if product["unsupported"] else []
    evidence += [f"asset {product['asset_id']}"] if product["asset_id"] else []
    return f"  {product['product_id']}  {capability}; {', '.join(evidence)}"


def _link_line(link: dict[str, Any] | None) -> str:
    if link is None:
        return "crm: not written yet"
    synced = "-" if link["synced_version"] is None else link["synced_version"]
    return (
        f"crm: {link['crm']} {link['crm_id'] or '-'}, {link['state']}, synced version {synced} "
        f"at {_when(link['synced_at'])}; last error: {link['last_error'] or '-'}"
    )


def _section(title: str, lines: list[str]) -> list[str]:
    return [f"{title}:", *lines] if lines else [f"{title}: none"]


def _show_lines(detail: dict[str, Any]) -> list[str]:
    account, flag = detail["account"], detail["flag"]
    decided = flag["source"] or "not decided yet"
    versions = ", ".join(
        f"{v['version']} ({v['source']}, {_when(v['seen_at'])})" for v in detail["versions"]
    )
    return [
        f"{account['id']}  {account['name']}",
        f"  {account['type']}, version {account['version']} "
        f"(mirrored {_when(account['mirrored_at'])}), parent {account['parent_id'] or '-'}, "
        f"external id {account['external_id'] or '-'}",
        f"flag: {_on_off(flag['enabled'], 'undecided')} ({decided}), decided "
        f"{_when(flag['decided_at'])}; override {_on_off(flag['override'], 'none')}",
        *_section("products", [_product_line(p) for p in detail["products"]]),
        _link_line(detail["crm_link"]),
        f"versions seen (newest first): {versions or 'none'}",
        *_section(
            "pending requests",
            [
                f"  {r['id']}  {r['product_id']}  version {r['account_version']}  "
                f"{_when(r['created_at'])}"
                for r in detail["pending_requests"]
            ],
        ),
        *_section(
            "last errors",
            [
                f"  {_when(e['at'])}  {e['phase']} {e['outcome']} {e['error_kind']}: "
                f"{_cut(e['message'], 120)}"
                for e in detail["ledger_errors"]
            ],
        ),
        *_section(
            "override history",
            [
                f"  {_when(o['at'])}  by {o['actor']}: {_on_off(o['old_value'], 'none')} -> "
                f"{_on_off(o['new_value'], 'none')}  ({o['reason']})"
                for o in detail["overrides"]
            ],
        ),
    ]
