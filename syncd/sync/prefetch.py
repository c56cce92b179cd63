"""Fetch the next page while the current one is being written."""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_END = object()


def prefetch(source: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Iterate `source` in a worker thread, at most `depth` items ahead of the consumer.

    An exception in the worker is raised to the consumer at the point it happened; a consumer
    that stops early stops the worker after its current item.
    """
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.05)
            except queue.Full:
                continue
            return True
        return False

    def work() -> None:
        try:
            for item in source:
                if not put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, who raises it
            put(_Failed(exc))
            return
        put(_END)

    # The worker runs in a copy of the caller's context: its log lines carry the bound run id.
    context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(work,), name="prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join(timeout=60)
