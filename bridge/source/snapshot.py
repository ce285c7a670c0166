"""One table's snapshot in progress: Scan pages held back until the stream was read past them (the handoff).

The problem: a scanned row is the item as it was when its page was read; a change of the same item that the
stream delivers before the row is newer, and so is one made while the page was read. A consumer that applies
events in partition order must never see a row after a newer change of its item (no regress), and must end
with every item (no gap). DBLog (Netflix, 2020) solves it with watermark writes into the source table; DynamoDB
has no place for them, so time stands in for the watermark:

1. The stream is read while the snapshot runs, from positions fixed before the first page is asked for (the
   scan starts only after every shard of the table was read once at or after the snapshot's start).
2. A page read at `read_ms` (this host's clock) is written only once the stream of its table was read past
   `read_ms + margin`: every unfinished shard handed on a record created after it, or answered "nothing more"
   to a call made after it (`StreamSource.watermark`). `margin` (`snapshot_handoff_margin_ms`) covers how late
   a stream record may appear after its write and how far this host's clock may be from AWS's.
3. Rows whose key had a stream event written during the snapshot are dropped: that event (written before the
   row) carries a state at least as new as the row's; every change after `read_ms + margin` is written after it.

Memory stays bounded: at most `max_pages` pages are held here and the scan reads ahead only `queue_pages`; the
keys seen are forgotten once no page still held (or in flight) started after them.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from bridge.checkpoint import SegmentPosition, SnapshotCheckpoint
from bridge.source.scan import ScanPage

log = logging.getLogger(__name__)
MAX_PAGES = 16  # pages held waiting for the stream (each up to 1 MB of items, kept as text)
ROUNDING_MS = 1000  # ApproximateCreationDateTime is rounded down to the second


class Snapshot:
    """The handoff state of one table's snapshot; used by the pipeline thread only.

    `scan` is a `TableScan` (or anything with its `start`, `get`, `oldest_unhanded_ms`, `finished`, `stop`),
    started by `begin` once the stream is positioned.
    """

    def __init__(
        self,
        table: str,
        checkpoint: SnapshotCheckpoint,
        scan,
        *,
        margin_ms: int,
        max_pages: int = MAX_PAGES,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = table
        self.checkpoint = checkpoint
        self.scan = scan
        self.margin_ms = margin_ms
        self.max_pages = max_pages
        self.wall_clock = wall_clock
        self.started = False
        self.began = time.monotonic()
        self.held: collections.deque[ScanPage] = collections.deque()
        self.seen: dict[Any, int] = {}  # key values -> creation ms of the latest stream event written for it
        self.seen_order: collections.deque[tuple[int, Any]] = collections.deque()
        self.dropped = 0  # rows dropped because the stream carried a change of their item

    @property
    def segments_left(self) -> int:
        """Segments not read to their end yet."""
        return sum(not segment.done for segment in self.checkpoint.segments)

    def begin(self, watermark_ms: float) -> bool:
        """Start the scan once the stream was read at or after the snapshot's start; True once started."""
        if not self.started and watermark_ms >= self.checkpoint.started_ms:
            self.scan.start()
            self.started = True
            self.began = time.monotonic()
        return self.started

    def saw(self, events) -> None:
        """Stream events of the table were written to the sinks: their items' rows read before now are stale."""
        for event in events:
            key = tuple(event.keys.values())
            created = event.approximate_creation_ms
            self.seen[key] = created
            self.seen_order.append((created, key))

    def ready(self, watermark_ms: float) -> list[ScanPage]:
        """Pages that may be written now (the stream was read `margin` past them), in the order they were read."""
        while self.started and len(self.held) < self.max_pages:
            page = self.scan.get(timeout=0)
            if page is None:
                break
            self.held.append(page)
        self._forget_old_keys()  # before pages leave `held`: the keys they are checked against stay
        pages = []
        while self.held and self.held[0].read_ms + self.margin_ms <= watermark_ms:
            pages.append(self.held.popleft())
        return pages

    def deadline_ms(self) -> float | None:
        """What the stream's watermark should reach next (epoch ms; None: no page held): past the oldest held
        page, and past the held pages whose Scan request was under way while that one was read. Those come in
        a few ms apart (one per segment); one read of the stream past all of them lets them go together, where
        asking for the oldest alone would keep the rest waiting for the next call the shards may make."""
        if not self.held:
            return None
        oldest = self.held[0].read_ms
        return max(page.read_ms for page in self.held if page.started_ms <= oldest) + self.margin_ms

    def fresh(self, events: list) -> list:
        """The rows of a page minus those whose item changed on the stream during the snapshot."""
        if not self.seen:
            return events
        kept = [event for event in events if tuple(event.keys.values()) not in self.seen]
        self.dropped += len(events) - len(kept)
        return kept

    def written(self, page: ScanPage, items: int) -> SnapshotCheckpoint:
        """The page's rows are written (`items` of them read): the checkpoint moves past it."""
        segments = list(self.checkpoint.segments)
        before = segments[page.segment]
        segments[page.segment] = SegmentPosition(page.last_key, page.last_key is None, before.items + items)
        self.checkpoint = dataclasses.replace(self.checkpoint, segments=tuple(segments))
        return self.checkpoint

    def finished(self) -> bool:
        """Every segment was read to its end and every page written."""
        return self.segments_left == 0 and not self.held

    def stop(self, timeout: float) -> None:
        """Stop the scan's threads (pages not written are read again by the next run)."""
        if self.started:
            self.scan.stop(timeout)

    def _forget_old_keys(self) -> None:
        """Drop seen keys older than every page still held or in flight: those pages already reflect them."""
        oldest = min([page.started_ms for page in self.held] + [self.scan.oldest_unhanded_ms()], default=math.inf)
        horizon = oldest - self.margin_ms - ROUNDING_MS
        order, seen = self.seen_order, self.seen
        while order and order[0][0] < horizon:
            created, key = order.popleft()
            if seen.get(key) == created:
                del seen[key]
