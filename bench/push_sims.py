"""The CRM simulators the push benchmark writes to, each in a process of its own.

`Crm` starts `push.py --serve-sim NAME` (a hidden option) as a child process, which runs
`serve_sim`: the simulator `syncd sim NAME` serves, with a latency added to every request and
optionally under cProfile. Their rate limits are off, so both contestants are bound by their own
requests, not by the simulated quota.
"""

from __future__ import annotations

import argparse
import cProfile
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PUSH = Path(__file__).resolve().with_name("push.py")
"""The benchmark's script, whose hidden `--serve-sim` option runs `serve_sim`."""
TOKEN = "bench-token"

SIM_OPTIONS = {
    "hubspot": [
        "--token",
        TOKEN,
        "--setup",
        "--burst-limit",
        "0",
        "--daily-limit",
        "0",
        "--search-rate",
        "0",
    ],
    "salesforce": ["--token", TOKEN, "--daily-limit", "100000000"],
}


class Crm:
    """A CRM simulator in a process of its own, served by `serve_sim` (what `syncd sim NAME`
    serves, plus the latency and the profile), stopped with SIGINT so a profile gets written."""

    def __init__(self, name: str, latency_ms: float, profile: Path | None = None) -> None:
        command = [str(PUSH), "--serve-sim", name, "--sim-latency", str(latency_ms)]
        if profile:
            command += ["--sim-profile", str(profile)]
        command += ["--port", "0", *SIM_OPTIONS[name]]
        self.process = subprocess.Popen(
            [sys.executable, *command], stdout=subprocess.PIPE, text=True, cwd=REPO
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        self.url = next(word for word in line.split() if word.startswith("http://")).rstrip(",")

    def __enter__(self) -> Crm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def serve_sim(name: str, latency_ms: float, profile: Path | None, options: list[str]) -> None:
    """Serve a simulator whose every request waits `latency_ms` first. With `profile`, every
    request's handling (parsing, dispatch, JSON encoding) runs under one cProfile: cProfile sees
    only the thread that enables it, and the server answers each connection in a thread of its
    own, so requests are then profiled one at a time (the latency is slept outside the lock)."""
    from syncd.sim import base

    module: Any
    if name == "hubspot":
        from syncd.sim import hubspot as module

        build = module.build
    else:
        from syncd.sim import salesforce as module

        build = module.build_server
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    server = build(parser.parse_args(options))
    server.faults.latency = latency_ms / 1000
    print(f"{name} simulator ({latency_ms:g} ms latency) on {server.url}", flush=True)
    if profile is None:
        server.serve_forever()
        return
    profiler = cProfile.Profile()
    lock = threading.Lock()
    handle = base._Handler._handle

    def profiled(self: Any) -> None:
        time.sleep(latency_ms / 1000)  # waited here, outside the profile's lock
        with lock:
            profiler.runcall(handle, self)

    server.faults.latency = 0.0  # slept above instead
    # `do_GET` and the others are the handler's `_handle`, bound at class creation.
    for method in ("do_GET", "do_POST", "do_PUT", "do_PATCH", "do_DELETE"):
        setattr(base._Handler, method, profiled)
    try:
        server.serve_forever()
    finally:
        profiler.dump_stats(str(profile))
