"""The daemon's observer seam: the health and metrics server and sd_notify plug in here."""

from __future__ import annotations

from syncd.store.heartbeat import State
from syncd.sync.cycle import CycleResult


class Observer:
    """Hooks for the health and metrics server and sd_notify; every method here does nothing.

    Subclass and override. Methods are called from the daemon's threads (main, cycle, heartbeat):
    keep them quick, thread-safe and free of exceptions.
    """

    def ready(self) -> None:
        """The schema is current, the clients are built; the scheduler starts right after."""

    def cycle_finished(self, result: CycleResult) -> None:
        """A cycle ran and recorded its run (any outcome, `aborted` included)."""

    def cycle_failed(self, error: BaseException) -> None:
        """A cycle could not run or record its run (the database is unreachable, say)."""

    def beat(self, state: State) -> None:
        """A heartbeat row was written: the daemon is alive and in `state`."""

    def stopping(self) -> None:
        """A stop was asked for; the running cycle, if any, is being wound down."""


class Observers(Observer):
    """Several observers as one, called in order (health, metrics and sd_notify together)."""

    def __init__(self, *observers: Observer) -> None:
        self.observers = observers

    def ready(self) -> None:
        for observer in self.observers:
            observer.ready()

    def cycle_finished(self, result: CycleResult) -> None:
        for observer in self.observers:
            observer.cycle_finished(result)

    def cycle_failed(self, error: BaseException) -> None:
        for observer in self.observers:
            observer.cycle_failed(error)

    def beat(self, state: State) -> None:
        for observer in self.observers:
            observer.beat(state)

    def stopping(self) -> None:
        for observer in self.observers:
            observer.stopping()
