"""sd_notify datagrams, received on a real unix datagram socket as systemd would."""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.service import sdnotify
from syncd.service.sdnotify import Notifier


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket at a short path (unix socket paths are limited to 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="sdn") as directory:
        path = str(Path(directory) / "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            sock.settimeout(5)
            yield sock, path


def received(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_ready_watchdog_status_and_stopping_arrive_as_datagrams(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})

    assert notifier.ready()
    assert received(sock) == ["READY=1", f"MAINPID={os.getpid()}"]
    assert notifier.watchdog()
    assert received(sock) == ["WATCHDOG=1"]
    assert notifier.status("cycle 12 done:\n3 accounts pushed")
    assert received(sock) == ["STATUS=cycle 12 done: 3 accounts pushed"]
    assert notifier.stopping()
    assert received(sock) == ["STOPPING=1"]


def test_an_abstract_socket_receives_the_notification() -> None:
    name = f"syncd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)

        assert Notifier({"NOTIFY_SOCKET": "@" + name}).watchdog()

        assert received(sock) == ["WATCHDOG=1"]


def test_the_module_functions_use_the_process_environment(
    listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setattr(sdnotify, "_default", None)

    assert sdnotify.stopping()

    assert received(sock) == ["STOPPING=1"]
    monkeypatch.setattr(sdnotify, "_default", None)


def test_a_vanished_socket_is_reported_but_does_not_raise() -> None:
    with tempfile.TemporaryDirectory(prefix="sdn") as directory:
        notifier = Notifier({"NOTIFY_SOCKET": str(Path(directory) / "gone")})

        assert notifier.enabled
        assert not notifier.ready()
