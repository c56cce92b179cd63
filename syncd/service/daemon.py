"""`syncd run`: the daemon. A cycle at start and every `SYNCD_INTERVAL` seconds, a reconcile every
`SYNCD_RECONCILE_INTERVAL`, each under the writer lock, and a heartbeat row all along
(`syncd.service.scheduler` is the loop).

Exit codes: 0 stopped by SIGTERM or SIGINT once the running cycle ended (within
`SYNCD_SHUTDOWN_GRACE`); 1 the grace period ran out first (the run is marked `aborted`), or the
database or the CRM could not be reached at start; 2 a configuration error, or a database schema
that is not the one this syncd needs (the daemon never migrates: `syncd db upgrade` does);
130 / 143 a second SIGINT / SIGTERM ended it at once (128 + the signal number).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from syncd import bootstrap
from syncd.config import Settings
from syncd.connect.errors import ConnectError
from syncd.crm.port import CrmError
from syncd.service.observer import Observer, Observers
from syncd.service.scheduler import Daemon
from syncd.service.signals import stop_signals
from syncd.service.telemetry import telemetry
from syncd.store import migrate
from syncd.sync.cycle import CycleResult, run_cycle

__all__ = ["Daemon", "Observer", "run_daemon"]

EXIT_FAILED = 1


def run_daemon(settings: Settings, observer: Observer | None = None) -> int:
    """Run the daemon until a signal stops it; returns the exit code (see the module's doc).

    A ConfigError (bad setting, schema behind) propagates: the CLI reports it with exit code 2.
    """
    stop = threading.Event()
    with stop_signals(lambda _signum: stop.set()):
        engine = bootstrap.engine(settings)
        try:
            return _start(settings, engine, stop, observer or Observer())
        except OperationalError as exc:
            # psycopg's message names host, port and user, never the password.
            print(
                f"syncd run: cannot use the database {settings.database_url_masked}: {exc.orig}",
                file=sys.stderr,
            )
            return EXIT_FAILED
        except (ConnectError, CrmError) as exc:
            print(f"syncd run: {exc}", file=sys.stderr)
            return EXIT_FAILED
        finally:
            engine.dispose()


def _start(settings: Settings, engine: Engine, stop: threading.Event, observer: Observer) -> int:
    migrate.require_current(engine)
    fields = bootstrap.mapping(settings)
    with ExitStack() as stack:
        budget = bootstrap.retry_budget(settings)  # shared by both clients, reset every cycle
        client = stack.enter_context(bootstrap.connect_client(settings, budget=budget))
        crm = bootstrap.checked_crm(settings, fields, budget=budget)
        stack.callback(getattr(crm, "close", lambda: None))
        clients = bootstrap.http_clients(client, crm)
        observer = Observers(stack.enter_context(telemetry(settings, engine, clients)), observer)
        options = bootstrap.pull_options(settings)

        def cycle(kind: str, should_stop: Callable[[], bool]) -> CycleResult:
            return run_cycle(
                engine,
                client,
                options,
                kind=kind,
                trigger="schedule",
                reconcile=kind == "reconcile",
                crm=crm,
                mapping=fields,
                sync_default=settings.sync_default == "on",
                disabled_tar_policy=settings.disabled_tar_policy,
                writeback_concurrency=settings.writeback_concurrency,
                should_stop=should_stop,
                retry_budget=budget,
            )

        daemon = Daemon(
            engine,
            cycle,
            interval=settings.interval,
            reconcile_interval=settings.reconcile_interval,
            shutdown_grace=settings.shutdown_grace,
            stop=stop,
            observer=observer,
        )
        stack.callback(daemon.lock.close)
        if stop.is_set():  # a signal during the start: nothing is running yet
            return 0
        return daemon.run()
