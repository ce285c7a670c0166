"""A recording double of the sink contract, for pipeline tests that need to see what a sink was handed."""

from __future__ import annotations

import threading

from bridge.errors import RetriableError
from bridge.sinks import Sink


class GatedSink(Sink):
    """Records written events; `flush` raises `RetriableError` while `gate` is closed."""

    def __init__(self) -> None:
        super().__init__(None, {})
        self.gate = threading.Event()
        self.events: list = []
        self.failed_flushes = 0

    def open(self) -> None:
        pass

    def write(self, events) -> None:
        self.events.extend(events)

    def flush(self, timeout: float) -> None:
        if not self.gate.is_set():
            self.failed_flushes += 1
            raise RetriableError("broker away")

    def close(self) -> None:
        pass
