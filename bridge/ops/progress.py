"""A live one-line progress display on stderr for `cdc-bridge run` in a terminal.

    cdc-bridge: 12,408 events · 1,520/s · lag 0.4 s · headroom 24.0 h · shards 4 active, 1 finished
    · snapshot Orders 40,210 of ~100,000 (40 %) 9,870/s ETA 6 s

Only when stderr is a terminal: redirected to a file or a log collector, stderr gets log lines only.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TextIO

from bridge.ops import metrics
from bridge.ops.lag import format_duration, worst

CLEAR = "\r\x1b[K"


def wants_progress(stream: TextIO) -> bool:
    """True when `stream` is an interactive terminal."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def progress_text(
    events: float, rate: float, lag: float | None, headroom: float | None, counts: dict, snapshots: dict | None = None
) -> str:
    """The progress line's text (no control characters); `snapshots` maps a running snapshot's table to
    (items read, items per second, the table's item count or None)."""
    active = sum(a for a, _ in counts.values())
    finished = sum(f for _, f in counts.values())
    text = (
        f"cdc-bridge: {events:,.0f} events · {rate:,.0f}/s · lag {format_duration(lag)} · "
        f"headroom {format_duration(headroom)} · shards {active} active, {finished} finished"
    )
    for table, (items, per_s, estimate) in sorted((snapshots or {}).items()):
        text += f" · snapshot {table} {items:,}"
        if estimate:
            eta = max(0, estimate - items) / per_s if per_s > 0 else None
            share = min(100, 100 * items // estimate)
            text += f" of ~{estimate:,} ({share} %) {per_s:,.0f}/s ETA {format_duration(eta)}"
        else:
            text += f" {per_s:,.0f}/s"
    return text


class ProgressLine:
    """Redraws the progress line on `tick()` (called about once a second) from the bridge's metrics."""

    def __init__(self, stream: TextIO, clock: Callable[[], float]) -> None:
        self.stream = stream
        self.clock = clock
        self.lock = threading.Lock()
        self.shown = False
        self.last = (clock(), metrics.total("cdc_bridge_records_written_total"))
        self.snapshot_items: dict[str, int] = {}

    def tick(self) -> None:
        now = self.clock()
        events = metrics.total("cdc_bridge_records_written_total")
        then, before = self.last
        rate = (events - before) / (now - then) if now > then else 0.0
        self.last = (now, events)
        lag, headroom = worst(metrics.LAG.snapshot())
        snapshots = {}
        for table, (items, segments_left, estimate) in metrics.snapshots().items():
            before = self.snapshot_items.get(table, items)
            self.snapshot_items[table] = items
            if segments_left:
                snapshots[table] = (items, (items - before) / (now - then) if now > then else 0.0, estimate)
        text = progress_text(events, rate, lag, headroom, metrics.LAG.counts(), snapshots)
        with self.lock:
            self.stream.write(CLEAR + text[: self._width() - 1])
            self.stream.flush()
            self.shown = True

    def _width(self) -> int:
        """Columns of the terminal (a longer line would wrap and break the redraw); 200 when unknown."""
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            columns = 0
        return max(40, columns) if columns else 200

    def clear(self) -> None:
        """Erase the line (before a log line, and at the end)."""
        with self.lock:
            if self.shown:
                self.stream.write(CLEAR)
                self.stream.flush()
                self.shown = False
