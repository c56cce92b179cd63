"""The machinery of bench/scenarios.py: simulator processes, contestant processes, Postgres, the
machine's description and the results files.

Every contestant runs as a child process: its wall time is measured around the process, its
peak RSS is the child's own (`os.wait4`, `ru_maxrss`), and its requests are counted by the
simulators it talks to (`bench/simproc.py`), never by the contestant itself.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from syncd.pgcluster import PgCluster, create_database, drop_database  # noqa: E402
from syncd.store import migrate  # noqa: E402

PYTHON = sys.executable


class BenchError(RuntimeError):
    """A contestant or a simulator failed: the benchmark's numbers would mean nothing."""


class Sim:
    """A simulator process (`bench/simproc.py`), driven through its stdin."""

    def __init__(self, system: str, *options: str) -> None:
        self.system = system
        self.process = subprocess.Popen(
            [PYTHON, str(BENCH / "simproc.py"), system, *options],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=BENCH,
        )
        first = self._line()
        self.url: str = first["url"]
        self.summary: dict[str, Any] = first["summary"]

    def _line(self) -> Any:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise BenchError(f"the {self.system} simulator ended (status {self.process.poll()})")
        return json.loads(line)

    def command(self, line: str) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self._line()
        if isinstance(answer, dict) and "error" in answer:
            raise BenchError(f"{self.system} simulator, {line.split()[0]}: {answer['error']}")
        return answer

    def counts(self) -> dict[str, Any]:
        """Requests served since the last call (and the simulator's CPU seconds meanwhile)."""
        answer: dict[str, Any] = self.command("counts")
        return answer

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Sim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Run:
    """One contestant's run: what it printed, its wall time and peak RSS, the requests it made."""

    name: str
    wall_seconds: float
    """The process's wall time, start-up included."""
    peak_rss_mb: float
    """Peak resident set size in MB (10**6 bytes), as the targets state it."""
    output: dict[str, Any]
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    """System (`connect`, `crm`) → the simulator's counts."""

    @property
    def seconds(self) -> float:
        """The work's own seconds, as the contestant measured them (start-up and imports left
        out) when it reports them, else the process's wall time."""
        own = self.output.get("seconds")
        return float(own) if isinstance(own, int | float) else self.wall_seconds

    def total(self, system: str | None = None, kind: str | None = None) -> int:
        systems = [system] if system else list(self.requests)
        found = 0
        for name in systems:
            counts = self.requests.get(name, {})
            found += counts.get("by_kind", {}).get(kind, 0) if kind else counts.get("total", 0)
        return found

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": self.seconds}


def _inherited() -> dict[str, str]:
    # A developer's shell may hold a real deployment's settings: only the harness's own reach
    # the contestants.
    return {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}


def run_child(name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Run:
    """Run a contestant (through `bench/spawn.py`, for its own peak RSS); its last stdout line
    must be JSON. Raises `BenchError` when it fails."""
    with tempfile.TemporaryDirectory() as scratch:
        usage_file = Path(scratch) / "usage.json"
        errors_file = Path(scratch) / "stderr"
        with errors_file.open("w") as errors:
            started = time.perf_counter()
            done = subprocess.run(
                [PYTHON, "-S", str(BENCH / "spawn.py"), str(usage_file), *argv],
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
                env={**_inherited(), **(env or {})},
                cwd=REPO,
                check=False,
            )
            seconds = time.perf_counter() - started
        stderr = errors_file.read_text()
        usage = json.loads(usage_file.read_text()) if usage_file.exists() else {}
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode not in (0, 3) or not lines:
        tail = "\n".join(stderr.splitlines()[-15:])
        raise BenchError(f"{name} failed with status {done.returncode}:\n{tail}")
    peak = round(usage.get("maxrss_kib", 0) * 1024 / 1e6, 1)
    return Run(name, round(seconds, 3), peak, json.loads(lines[-1]))


def machine() -> dict[str, Any]:
    """Cores, RAM, CPU model, OS and Python of this machine."""
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    total_kib = next(
        (int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal")), 0
    )
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in cpuinfo.splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cores": os.cpu_count(),
        "ram_gib": round(total_kib / 1024 / 1024, 1),
        "cpu": model,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


class Postgres:
    """Databases for the contestants: on the server at `admin_url`, or a private cluster."""

    def __init__(self, admin_url: str | None) -> None:
        self.admin_url = admin_url
        self.cluster: PgCluster | None = None
        self.created: list[str] = []
        self.kept: list[str] = []

    def __enter__(self) -> Postgres:
        if self.admin_url is None:
            self.cluster = PgCluster()
            self.cluster.start()
            self.admin_url = self.cluster.url
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.admin_url is not None
        try:
            self.release()
            for name in self.kept:
                drop_database(self.admin_url, name)
        finally:
            if self.cluster is not None:
                self.cluster.close()

    def database(self, name: str, *, keep: bool = False) -> str:
        """A fresh database at syncd's newest schema, dropped by `release` (or, with `keep`, when
        the harness ends)."""
        assert self.admin_url is not None
        name = f"bench_{name}"
        drop_database(self.admin_url, name)
        url = create_database(self.admin_url, name)
        (self.kept if keep else self.created).append(name)
        migrate.upgrade(url)
        return url

    def release(self) -> None:
        """Drop the databases made so far (a million accounts take gigabytes)."""
        assert self.admin_url is not None
        while self.created:
            drop_database(self.admin_url, self.created.pop())

    def version(self) -> str:
        import psycopg

        from syncd.pgcluster.admin import conninfo

        assert self.admin_url is not None
        with psycopg.connect(conninfo(self.admin_url)) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "unknown"


@contextmanager
def timed(label: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    print(f"  {label}: {time.perf_counter() - started:.1f} s", flush=True)


def write_results(directory: Path, scenario: str, payload: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{scenario}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"
