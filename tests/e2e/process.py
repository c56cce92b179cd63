"""Running the `syncd` command as a real process, the way an operator or a unit file does."""

from __future__ import annotations

import os
import subprocess
import sys


def syncd(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`python -m syncd ARGS` with `env` over this process's environment; output captured."""
    return subprocess.run(
        [sys.executable, "-m", "syncd", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
