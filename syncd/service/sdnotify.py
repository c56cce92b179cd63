"""sd_notify(3) without a dependency: tell systemd we are ready, alive, or stopping.

systemd passes the socket in `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket, whose
first byte is NUL on the wire) to services of `Type=notify`, and `WATCHDOG_USEC` (with
`WATCHDOG_PID`) when the unit sets `WatchdogSec=`. Each message is one datagram of
newline-separated `KEY=value` lines. Without `NOTIFY_SOCKET` every call does nothing, so the
same code runs in a terminal, a container or a test.

A failed send is logged and otherwise ignored: systemd's own sd_notify only reports errors, and a
daemon must not stop because its supervisor went away.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

logger = logging.getLogger(__name__)


def _address(value: str) -> str | None:
    if value.startswith("@"):
        return "\0" + value[1:]  # Linux abstract namespace (sd_notify(3))
    if value.startswith("/"):
        return value
    return None  # vsock and other forms are not supported here


class Notifier:
    """Sends notifications to the socket named in `env` (default: the process environment)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET", "")
        self.address = _address(raw) if raw else None
        if raw and self.address is None:
            logger.warning("sd_notify_socket_unsupported", extra={"notify_socket": raw})
        self._watchdog_usec = env.get("WATCHDOG_USEC", "")
        self._watchdog_pid = env.get("WATCHDOG_PID", "")

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send `lines` as one message; True if it was sent."""
        if self.address is None:
            return False
        message = "\n".join(lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self.address)
        except OSError as exc:
            logger.warning("sd_notify_failed", extra={"error": type(exc).__name__})
            return False
        return True

    def ready(self) -> bool:
        """The service is up (systemd moves the unit to `active`)."""
        return self.notify("READY=1", f"MAINPID={os.getpid()}")

    def watchdog(self) -> bool:
        """Still alive: resets the unit's watchdog timer."""
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        """Shutting down: systemd waits for the exit instead of calling it a failure."""
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        """A one-line status shown by `systemctl status`."""
        return self.notify("STATUS=" + " ".join(text.split()))

    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings (half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3)
        advises), or None when the watchdog is off or meant for another process."""
        if not self._watchdog_usec.isdigit() or int(self._watchdog_usec) == 0:
            return None
        if self._watchdog_pid and self._watchdog_pid != str(os.getpid()):
            return None
        return int(self._watchdog_usec) / 2 / 1_000_000


_default: Notifier | None = None


def default() -> Notifier:
    """The notifier of the process environment, built on first use."""
    global _default  # one per process, built on first use, never at import
    if _default is None:
        _default = Notifier()
    return _default


def ready() -> bool:
    """`READY=1` to the process's notify socket, if any."""
    return default().ready()


def watchdog() -> bool:
    """`WATCHDOG=1` to the process's notify socket, if any."""
    return default().watchdog()


def stopping() -> bool:
    """`STOPPING=1` to the process's notify socket, if any."""
    return default().stopping()


def status(text: str) -> bool:
    """`STATUS=text` to the process's notify socket, if any."""
    return default().status(text)


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings for this process, or None."""
    return default().watchdog_interval()
