"""syncd's side of the side-by-side benchmarks, each run as a child process of bench/scenarios.py
so that its peak RSS is its own. Configured like `syncd` itself, from `SYNCD_*` variables.

    .venv/bin/python bench/workers.py resync   # one cycle with the full reconcile, no CRM
    .venv/bin/python bench/workers.py cycle    # one cycle as `syncd sync` runs it
    .venv/bin/python bench/workers.py cycles N # N cycles in one process, as the daemon runs them

Both go through `run_cycle` with the objects `syncd.bootstrap` builds, so changes to the phases
show up here without edits. Each prints one line of JSON: the cycle's own seconds, outcome,
error and counts.

`resync` is the Connect side of `syncd resync --full`: the pull with its full reconcile (every
account scanned and compared). The CRM side of a resync is the push, measured by bench/push.py;
here it would only add CRM reads to a comparison with a client that reads Connect alone.
`cycle` is what the daemon does every interval; timed without the process start and the CRM
property check that `syncd sync` adds (the daemon does that once, not every cycle).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from syncd import bootstrap  # noqa: E402
from syncd.config import Settings, load_settings  # noqa: E402
from syncd.store.links import Selection  # noqa: E402
from syncd.sync.cycle import CycleResult, run_cycle  # noqa: E402
from syncd.sync.push import PushOptions  # noqa: E402


def resync(settings: Settings) -> CycleResult:
    engine = bootstrap.engine(settings)
    try:
        with bootstrap.connect_client(settings) as client:
            return run_cycle(
                engine,
                client,
                bootstrap.pull_options(settings),
                kind="resync",
                trigger="bench",
                reconcile=True,
            )
    finally:
        engine.dispose()


def cycle(settings: Settings) -> CycleResult:
    engine = bootstrap.engine(settings)
    fields = bootstrap.mapping(settings)
    crm = bootstrap.crm(settings, fields)
    try:
        with bootstrap.connect_client(settings) as client:
            return run_cycle(
                engine,
                client,
                bootstrap.pull_options(settings),
                kind="sync",
                trigger="bench",
                crm=crm,
                mapping=fields,
                push=PushOptions(selection=Selection()),
                sync_default=settings.sync_default == "on",
                disabled_tar_policy=settings.disabled_tar_policy,
            )
    finally:
        getattr(crm, "close", lambda: None)()
        engine.dispose()


def _cycles(settings: Settings, repeat: int) -> dict[str, Any]:
    """`repeat` cycles in this one process, as the daemon runs them. The first pays the process's
    warm-up (first connections, statement caches); `seconds` is the median of the others."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = cycle(settings)
        runs.append((time.perf_counter() - started, result))
    warm = [seconds for seconds, _ in runs[1:]] or [runs[0][0]]
    failed = [r for _, r in runs if r.outcome != "success"]
    last = failed[0] if failed else runs[-1][1]
    return {
        "seconds": round(statistics.median(warm), 3),
        "outcome": last.outcome,
        "error": last.error,
        "cycles": [
            {"seconds": round(seconds, 3), "outcome": r.outcome, "counts": r.counts}
            for seconds, r in runs
        ],
    }


def main() -> None:
    name = sys.argv[1]
    settings = load_settings(None)
    if name == "cycles":
        print(json.dumps(_cycles(settings, int(sys.argv[2])), default=str), flush=True)
        return
    started = time.perf_counter()
    result = {"resync": resync, "cycle": cycle}[name](settings)
    seconds = time.perf_counter() - started
    answer: dict[str, Any] = {
        "seconds": round(seconds, 3),
        "outcome": result.outcome,
        "error": result.error,
        "counts": result.counts,
    }
    print(json.dumps(answer, default=str), flush=True)


if __name__ == "__main__":
    main()
