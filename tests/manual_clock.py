"""A clock that stands still until the test moves it on, for asserting on a schedule instead of wall-clock gaps."""

from __future__ import annotations

import threading


class ManualClock:
    """A monotonic clock (a callable returning seconds) that only `advance` moves.

    Give the same one to `StreamSource(clock=...)` and `FakeAWS(clock=...)`: the calls the fake records are
    then stamped in the time the source schedules them by, and their gaps are exact, however slow the machine.
    """

    def __init__(self, start: float = 1024.0) -> None:
        self.lock = threading.Lock()
        self.now = start

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds
