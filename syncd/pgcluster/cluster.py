"""The throwaway cluster itself: initdb, pg_ctl start/stop, cleanup. See the package docstring."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from syncd.pgcluster import admin
from syncd.pgcluster.binaries import find_bindir
from syncd.pgcluster.errors import PgClusterError
from syncd.pgcluster.runas import OsUser, make_cluster_dir, server_os_user

SUPERUSER = "postgres"
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",  # no socket file: nothing to clean, no directory to pick
    # Throwaway data: durability costs time and buys nothing here.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}
_WATCHDOG = Path(__file__).with_name("_watchdog.py")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PgCluster:
    """A throwaway PostgreSQL cluster. Use as a context manager, or call start() and close()."""

    def __init__(self, *, bindir: Path | None = None, timeout: float = 60) -> None:
        self._bindir = bindir
        self._timeout = timeout
        self._user: OsUser | None = None
        self._root: Path | None = None
        self._port: int | None = None
        self._started_once = False
        self._closed = False
        self._watchdog: subprocess.Popen[str] | None = None

    # -- addresses -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise PgClusterError("the cluster has not been started")
        return self._port

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the `postgres` database, as the superuser."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @property
    def data_dir(self) -> Path:
        return self._require_root() / "data"

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database `name` (a copy of `template` if given); return its URL."""
        return admin.create_database(self.url, name, template=template)

    def drop_database(self, name: str) -> None:
        """Drop database `name` if it exists, ending its sessions first."""
        admin.drop_database(self.url, name)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        if self._root is None or self._closed:
            return False
        return self._pg_ctl("status").returncode == 0

    def start(self) -> None:
        """Create the cluster on first use, start the server and wait until it takes queries."""
        if self._closed:
            raise PgClusterError("the cluster is closed")
        if self._root is None:
            self._init()
        if self.running:
            return
        for _attempt in range(3):
            if self._port is None:
                self._port = _free_port()
            result = self._pg_ctl(
                "start", "-l", str(self._log), "-o", f"-p {self._port}", new_session=True
            )
            if result.returncode == 0:
                break
            log = self._log_tail()
            # Between _free_port() and the bind another process may take the port: pick again.
            if not self._started_once and "could not bind" in log:
                self._port = None
                continue
            raise PgClusterError(f"pg_ctl start failed: {result.stdout}{result.stderr}\n{log}")
        else:
            raise PgClusterError(f"pg_ctl start found no free port:\n{self._log_tail()}")
        self._started_once = True
        self._wait_ready()

    def stop(self) -> None:
        """Stop the server (fast shutdown: sessions are cut, not waited for); keep the data."""
        if not self.running:
            return
        result = self._pg_ctl("stop", "-m", "fast")
        if result.returncode != 0 and self.running:
            raise PgClusterError(f"pg_ctl stop failed: {result.stdout}{result.stderr}")

    def restart(self) -> None:
        """Stop and start again on the same port, with the same data."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove the cluster's directory. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._root is not None:
                if (self.data_dir / "postmaster.pid").exists():
                    result = self._pg_ctl("stop", "-m", "fast")
                    if result.returncode != 0 and self._pg_ctl("status").returncode == 0:
                        raise PgClusterError(f"pg_ctl stop failed: {result.stdout}{result.stderr}")
                if self._root.exists():  # gone if the watchdog was stopped and cleaned up
                    shutil.rmtree(self._root)
        except BaseException:
            self._release_watchdog(cleaned=False)  # the watchdog finishes the job
            raise
        self._release_watchdog(cleaned=True)

    def __enter__(self) -> PgCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    @property
    def _log(self) -> Path:
        return self._require_root() / "postgres.log"

    def _require_root(self) -> Path:
        if self._root is None:
            raise PgClusterError("the cluster has not been started")
        return self._root

    def _init(self) -> None:
        bindir = self._bindir or find_bindir()
        self._bindir = bindir
        self._user = server_os_user()
        self._root = make_cluster_dir(self._user)
        self._start_watchdog()
        result = self._run(
            [
                str(bindir / "initdb"),
                *("-D", str(self.data_dir), "-U", SUPERUSER, "--auth", "trust"),
                *("--encoding", "UTF8", "--locale", "C", "--no-sync"),
            ]
        )
        if result.returncode != 0:
            raise PgClusterError(f"initdb failed: {result.stdout}{result.stderr}")
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# syncd.pgcluster: throwaway test/demo cluster\n")
            conf.writelines(f"{key} = {value}\n" for key, value in SETTINGS.items())

    def _start_watchdog(self) -> None:
        spec = {
            "pg_ctl": str(self._require_bindir() / "pg_ctl"),
            "data_dir": str(self.data_dir),
            "root": str(self._root),
            "user": self._user.name if self._user else None,
        }
        # -I: the script needs only the standard library, whatever sys.path we were given.
        command = [sys.executable, "-I", str(_WATCHDOG), json.dumps(spec)]
        self._watchdog = subprocess.Popen(  # noqa: S603 - our own script, our own arguments
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # out of the terminal's reach: Ctrl-C must not kill it
            text=True,
        )

    def _release_watchdog(self, *, cleaned: bool) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is None or watchdog.stdin is None:
            return
        with contextlib.suppress(BrokenPipeError):
            if cleaned:
                watchdog.stdin.write("close\n")
            watchdog.stdin.close()
        watchdog.wait(timeout=self._timeout)

    def _require_bindir(self) -> Path:
        assert self._bindir is not None
        return self._bindir

    def _pg_ctl(self, *args: str, new_session: bool = False) -> subprocess.CompletedProcess[str]:
        command = [str(self._require_bindir() / "pg_ctl"), args[0], "-D", str(self.data_dir)]
        if args[0] != "status":
            command += ["-w", "-t", str(int(self._timeout))]
        return self._run([*command, *args[1:]], new_session=new_session)

    def _run(
        self, command: list[str], *, new_session: bool = False
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_MESSAGES"] = "C"  # server messages are matched on below ("could not bind")
        user = self._user
        return subprocess.run(  # noqa: S603 - the server programs, with our arguments
            command,
            cwd=self._root,  # root's cwd may be closed to the postgres user; initdb needs one
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=self._timeout + 30,
            check=False,
            # The postmaster must not die with the terminal's Ctrl-C before close() stops it.
            start_new_session=new_session,
            user=user.uid if user else None,
            group=user.gid if user else None,
            extra_groups=[] if user else None,
        )

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self._log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _wait_ready(self) -> None:
        # pg_ctl -w returns once the postmaster says it is ready; confirm over TCP anyway.
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                admin.ping(self.url)
                return
            except admin.OperationalError:
                if time.monotonic() > deadline:
                    raise PgClusterError(f"server not ready:\n{self._log_tail()}") from None
                time.sleep(0.05)
