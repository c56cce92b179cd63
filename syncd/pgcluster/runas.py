"""Who runs the server, and where its files go.

PostgreSQL refuses to run as root ("root execution of the PostgreSQL server is not permitted"), so
as root the server programs run as the `postgres` OS user, and the cluster's directory must be one
that user can reach: a private 0700 directory of root's (pytest's `tmp_path`, often TMPDIR) is not.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from syncd.pgcluster.errors import PgClusterError

OS_USER = "postgres"


@dataclass(frozen=True)
class OsUser:
    """An OS account the server programs run as."""

    name: str
    uid: int
    gid: int


def server_os_user() -> OsUser | None:
    """None to run as ourselves; as root, the `postgres` OS user (created if missing)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(OS_USER)
    except KeyError:
        _create_system_user(OS_USER)
        entry = pwd.getpwnam(OS_USER)
    return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _create_system_user(name: str) -> None:
    if not shutil.which("useradd"):
        raise PgClusterError(
            f"running as root, PostgreSQL needs a non-root OS user: create `{name}`"
        )
    command = ["useradd", "--system", "--no-create-home", "--shell", "/bin/false"]
    try:
        grp.getgrnam(name)
        command += ["--gid", name]  # --user-group fails when the group already exists
    except KeyError:
        command += ["--user-group"]
    result = subprocess.run(  # noqa: S603 - fixed program and arguments
        [*command, name], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise PgClusterError(f"useradd {name} failed: {result.stderr.strip()}")


def reachable_by(path: Path, user: OsUser) -> bool:
    """Whether `user` may traverse every directory down to and including `path`."""
    groups = set(os.getgrouplist(user.name, user.gid))
    for directory in [path, *path.parents]:
        st = directory.stat()
        if st.st_uid == user.uid:
            bit = stat.S_IXUSR
        elif st.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def make_cluster_dir(user: OsUser | None) -> Path:
    """A fresh private directory (`<tmp>/syncd-pg-*`) owned by `user`, which it can reach."""
    base = Path(tempfile.gettempdir()).resolve()
    if user is not None and not reachable_by(base, user):
        # TMPDIR may be a private directory of root's; /tmp is world-traversable on every Unix.
        base = Path("/tmp")  # noqa: S108 - only the parent of a fresh mkdtemp directory
        if not reachable_by(base, user):
            raise PgClusterError(f"no temporary directory that the `{user.name}` OS user can reach")
    root = Path(tempfile.mkdtemp(prefix="syncd-pg-", dir=base))
    if user is not None:
        os.chown(root, user.uid, user.gid)
    return root
