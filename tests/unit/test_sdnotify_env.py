"""What the sd_notify client reads from its environment (no socket is used here)."""

from __future__ import annotations

import os

from syncd.service.sdnotify import Notifier


def test_without_notify_socket_every_call_is_a_no_op() -> None:
    notifier = Notifier({})

    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.watchdog()
    assert not notifier.stopping()
    assert not notifier.status("syncing")
    assert notifier.watchdog_interval() is None


def test_an_abstract_socket_name_starts_with_a_nul_byte() -> None:
    assert Notifier({"NOTIFY_SOCKET": "@/org/freedesktop/systemd1/notify"}).address == (
        "\0/org/freedesktop/systemd1/notify"
    )
    assert Notifier({"NOTIFY_SOCKET": "/run/systemd/notify"}).address == "/run/systemd/notify"


def test_an_unsupported_socket_address_disables_notifications() -> None:
    assert not Notifier({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled


def test_the_watchdog_is_pinged_at_half_its_timeout() -> None:
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval() == 15.0


def test_a_watchdog_meant_for_another_process_is_ignored() -> None:
    own = {"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}
    other = {"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid() + 1)}

    assert Notifier(own).watchdog_interval() == 5.0
    assert Notifier(other).watchdog_interval() is None


def test_a_zero_or_garbled_watchdog_timeout_means_no_watchdog() -> None:
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_interval() is None
    assert Notifier({"WATCHDOG_USEC": "soon"}).watchdog_interval() is None
