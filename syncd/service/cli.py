"""The `syncd` command line.

Exit codes: 0 done; 1 the run failed; 2 usage or configuration error; 3 done, but some records
failed (they are in the ledger).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from syncd import __version__
from syncd.config import ConfigError, Settings, load_settings
from syncd.service import logs

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3

Handler = Callable[[argparse.Namespace], int]


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    logs.configure(settings.log_level, secrets=logs.secret_values(settings))
    return settings


def cmd_db(args: argparse.Namespace) -> int:
    from syncd import bootstrap
    from syncd.store import migrate

    settings = _settings(args)
    engine = bootstrap.engine(settings)
    try:
        if args.db_command == "grant-readonly":
            from syncd.store.grants import RoleNotFoundError, grant_readonly

            try:
                print(grant_readonly(engine, args.role, create=args.create).summary())
            except RoleNotFoundError as exc:
                print(f"syncd: {exc}", file=sys.stderr)
                return EXIT_USAGE
            return EXIT_OK
        if args.db_command == "upgrade":
            migrate.upgrade(engine, args.revision)
            print(f"database at {migrate.current(engine)} (head {migrate.head()})")
            return EXIT_OK
        if args.db_command == "current":
            current = migrate.current(engine)
            print(f"{current or '(empty)'} (head {migrate.head()})")
            return EXIT_OK if current == migrate.head() else EXIT_FAILED
        differences = migrate.check(engine)
        current = migrate.current(engine)
        if current != migrate.head():
            print(
                f"database at {current or '(empty)'}, code expects {migrate.head()}: "
                "run `syncd db upgrade`"
            )
            return EXIT_FAILED
        for difference in differences:
            print(f"drift: {difference}")
        print("schema matches the code" if not differences else f"{len(differences)} differences")
        return EXIT_OK if not differences else EXIT_FAILED
    finally:
        engine.dispose()


def cmd_check(args: argparse.Namespace) -> int:
    from syncd.service.check import run

    logs.configure("WARNING")
    return run(args.config, sys.stdout)


def cmd_sync(args: argparse.Namespace) -> int:
    from syncd.service.oneshot import run_once
    from syncd.store.links import Selection

    return run_once(
        _settings(args),
        kind="sync",
        selection=Selection(),
        dry_run=args.dry_run,
        as_json=args.json,
        reconcile=args.reconcile,
        wait=args.wait,
    )


def cmd_resync(args: argparse.Namespace) -> int:
    from syncd.service.oneshot import run_once
    from syncd.store.links import Selection

    selection = Selection(
        full=args.full, accounts=tuple(args.account), since=args.since, ignore_backoff=True
    )
    return run_once(
        _settings(args),
        kind="resync",
        selection=selection,
        dry_run=args.dry_run,
        as_json=args.json,
        reconcile=True,
        wait=args.wait,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from syncd.service.daemon import run_daemon

    return run_daemon(_settings(args))


def cmd_crm(args: argparse.Namespace) -> int:
    from syncd import bootstrap

    settings = _settings(args)
    adapter = bootstrap.crm(settings, bootstrap.mapping(settings))
    try:
        done = adapter.setup()
    finally:
        getattr(adapter, "close", lambda: None)()
    for line in done or ["nothing to do: every property syncd needs exists"]:
        print(line)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from syncd import bootstrap
    from syncd.service.status import print_status

    settings = _settings(args)
    engine = bootstrap.engine(settings)
    try:
        return print_status(engine, as_json=args.json, runs=args.runs)
    finally:
        engine.dispose()


def cmd_accounts(args: argparse.Namespace) -> int:
    from syncd.service import accounts

    return accounts.run(_settings(args), args)


def cmd_sim(args: argparse.Namespace) -> int:
    serve: Callable[[argparse.Namespace], int] = args.serve
    return serve(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from syncd.service.demo import run_demo

    logs.configure("WARNING")
    return run_demo(args.cycles, args.accounts, args.interval, args.crm)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syncd", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    parser.add_argument("--config", type=Path, help="TOML settings file (SYNCD_* variables win)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = commands.add_parser("db", help="schema migrations (the daemon never migrates by itself)")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser("upgrade", help="migrate the database to the newest schema")
    upgrade.add_argument("revision", nargs="?", default="head")
    db_commands.add_parser("current", help="print the schema revision (exit 1 if behind)")
    db_commands.add_parser("check", help="compare the database schema with the code")
    grant = db_commands.add_parser(
        "grant-readonly", help="let ROLE read every table and view of syncd's (dashboards)"
    )
    grant.add_argument("role", metavar="ROLE", help="an existing role (see --create)")
    grant.add_argument(
        "--create", action="store_true", help="create ROLE first, as a NOLOGIN group role"
    )
    db.set_defaults(handler=cmd_db)

    run = commands.add_parser(
        "run", help="the daemon: a cycle every SYNCD_INTERVAL, a reconcile on its own schedule"
    )
    run.set_defaults(handler=cmd_run)

    sync = commands.add_parser("sync", help="one cycle now, then exit")
    sync.add_argument("--reconcile", action="store_true", help="also scan every account")
    _plan_options(sync)
    sync.set_defaults(handler=cmd_sync)

    resync = commands.add_parser("resync", help="manual one-shot resync (all, some, since)")
    resync.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="TA-…",
        help="only this account (repeatable)",
    )
    resync.add_argument("--since", type=_moment, help="only accounts changed since (ISO date)")
    resync.add_argument(
        "--full", action="store_true", help="ignore what syncd believes is synced; diff everything"
    )
    _plan_options(resync)
    resync.set_defaults(handler=cmd_resync)

    crm = commands.add_parser("crm", help="CRM administration")
    crm_commands = crm.add_subparsers(dest="crm_command", required=True)
    crm_commands.add_parser("setup", help="create or check the CRM properties syncd needs")
    crm.set_defaults(handler=cmd_crm)

    check = commands.add_parser(
        "check", help="configuration and reachability of Postgres, Connect and the CRM"
    )
    check.set_defaults(handler=cmd_check)

    status = commands.add_parser("status", help="last runs, backlog and failures")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--runs", type=int, default=5, metavar="N", help="last N runs (default 5)")
    status.set_defaults(handler=cmd_status)

    accounts = commands.add_parser("accounts", help="the per-account sync flag and overrides")
    from syncd.service.accounts import add_arguments as account_arguments

    account_arguments(accounts)
    accounts.set_defaults(handler=cmd_accounts)

    demo = commands.add_parser("demo", help="the whole job on this machine, nothing to configure")
    demo.add_argument("--cycles", type=int, default=0, help="stop after N cycles (default: Ctrl-C)")
    demo.add_argument(
        "--accounts", type=int, default=300, help="accounts the simulator starts with"
    )
    demo.add_argument("--interval", type=float, default=5.0, help="seconds between cycles")
    demo.add_argument(
        "--crm",
        choices=["hubspot", "salesforce"],
        default="hubspot",
        help="which CRM simulator to sync with",
    )
    demo.set_defaults(handler=cmd_demo)

    sim = commands.add_parser("sim", help="run one simulator on loopback")
    sims = sim.add_subparsers(dest="sim", required=True)
    from syncd.sim import connect, hubspot, salesforce

    for module, name, title in (
        (connect, "connect", "CloudBlue Connect"),
        (hubspot, "hubspot", "HubSpot CRM (companies and contacts)"),
        (salesforce, "salesforce", "Salesforce (Account and Contact)"),
    ):
        simulator = sims.add_parser(name, help=title)
        module.add_arguments(simulator)
        simulator.set_defaults(handler=cmd_sim, serve=module.serve)
    return parser


def _plan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (creates, updates by field, conflicts); write nothing",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wait while another syncd runs a cycle on the database (default); with "
        "--no-wait, exit 1 at once instead",
    )


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or datetime: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"syncd: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a failure no command handled (e.g. Postgres unreachable)
        # Logged, so that the secret filter sees the message and the traceback: a driver's
        # error may quote the database URL it was given.
        logging.getLogger("syncd").error(
            "command_failed",
            exc_info=True,
            extra={"command": args.command, "error": f"{type(exc).__name__}: {exc}"},
        )
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
