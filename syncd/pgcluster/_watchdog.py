"""Watchdog of a throwaway PostgreSQL cluster (see `syncd.pgcluster`).

Run as a script by `PgCluster`, with a pipe from its owner on standard input. It waits for that
pipe to close. If the owner said `close` first, the owner cleaned up and there is nothing to do;
if the pipe closed without it (the owner was killed, even with SIGKILL, since the kernel closes
the pipe either way), or the watchdog itself gets SIGTERM, it stops the server and removes the
cluster's directory, so a killed test run or demo never leaves a postmaster behind.

Standard library only, and run by file path with `python -I`: it must work from a checkout, an
editable install or a wheel, whatever `sys.path` the owner had.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys

CLOSE = "close"


class _Terminated(Exception):
    pass


def _terminated(signum: int, frame: object) -> None:
    raise _Terminated


def main() -> int:
    """Block until the owner goes away; clean up unless it said `close`."""
    # Terminal signals are for the owner; the watchdog must outlive it to be of any use.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Ended on purpose (a supervisor stopping what a run left behind): clean up on the way out.
    signal.signal(signal.SIGTERM, _terminated)
    spec = json.loads(sys.argv[1])
    try:
        for line in sys.stdin:
            if line.strip() == CLOSE:
                return 0
    except _Terminated:
        pass
    _clean_up(spec)
    return 0


def _clean_up(spec: dict[str, str]) -> None:
    """Stop the server at once (no data here is worth a clean shutdown) and remove its files."""
    data_dir = spec["data_dir"]
    owner = pwd.getpwnam(spec["user"]) if spec.get("user") else None
    if os.path.exists(os.path.join(data_dir, "postmaster.pid")):
        subprocess.run(  # noqa: S603 - fixed program, arguments from our owner
            [spec["pg_ctl"], "stop", "-D", data_dir, "-m", "immediate", "-w", "-t", "30"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=spec["root"],
            check=False,
            user=owner.pw_uid if owner else None,
            group=owner.pw_gid if owner else None,
            extra_groups=[] if owner else None,
        )
    shutil.rmtree(spec["root"], ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
