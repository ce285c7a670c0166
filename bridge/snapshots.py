"""Which tables of a run take a snapshot, and the snapshots in progress (see bridge/source/snapshot.py).

A table takes one when `cdc-bridge run --snapshot TABLE` asks for it (a new one, the stream goes on from its
checkpoint), when the checkpoint holds an unfinished one (it resumes where each segment was), when the stream
lost records and the table has `on_trimmed: resnapshot`, or - with `snapshot: initial` / `initial_only` - when
the checkpoint knows nothing of the table; the stream then starts at its latest position, fixed before the
first Scan page. A table whose checkpoint holds a snapshot but no stream position (its stream had no record
before a crash, or during a whole run) reads its stream from the trim horizon, so no change is missed, and
skips the records created before its snapshot began (minus the handoff margin and a second of rounding):
the snapshot's rows hold their effect, and replaying them after the rows would take items back in time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson

from bridge.checkpoint import CheckpointTracker, SegmentPosition, SnapshotCheckpoint
from bridge.config import Config, TableConfig
from bridge.normalize import ScannedItem
from bridge.ops import metrics
from bridge.source.discovery import TableInfo
from bridge.source.scan import ScanPage
from bridge.source.snapshot import Snapshot

log = logging.getLogger(__name__)
STARTING_POLL_S = 0.005  # how often `starting` asks whether a snapshot's stream is positioned


def new_snapshot(table: TableConfig, reason: str, now_ms: int) -> SnapshotCheckpoint:
    """A snapshot of `table` that starts now, every segment at its start."""
    return SnapshotCheckpoint(now_ms, reason, tuple(SegmentPosition() for _ in range(table.snapshot_segments)))


@dataclass(frozen=True)
class StreamStart:
    """Where the stream of a snapshot table starts when the checkpoint holds no position of it: `latest` or
    `trim_horizon`, and when the table's snapshot began (epoch ms; None: no record is skipped), before which
    its records are carried by the snapshot (`TableStream.superseded_for`)."""

    position: str
    snapshot_started_ms: int | None = None


def plan(config: Config, tracker: CheckpointTracker, requested: set[str], now_ms: int) -> dict[str, StreamStart]:
    """Record in `tracker` the snapshots this run takes; returns how the stream of each table with a snapshot
    and no stored stream position starts, by table name."""
    starts = {}
    for table in config.tables:
        existing = tracker.snapshot(table.name)
        positioned = tracker.positioned(table.name)
        initial = table.snapshot != "never" and not tracker.knows(table.name)
        if table.name in requested or initial:
            reason = "requested" if table.name in requested else "initial"
            tracker.snapshot_written(table.name, new_snapshot(table, reason, now_ms))
            if not positioned:
                starts[table.name] = StreamStart("latest")
            continue
        if existing is None:
            continue
        if not existing.done and len(existing.segments) != table.snapshot_segments:
            log.warning(
                "table %s: the snapshot in the checkpoint has %d segments; it resumes with them "
                "(snapshot_segments: %d applies to the next one)",
                table.name,
                len(existing.segments),
                table.snapshot_segments,
            )
        if not positioned:
            starts[table.name] = StreamStart("trim_horizon", existing.started_ms)
    return starts


class Snapshots:
    """The snapshots in progress of one run, driven by the pipeline thread.

    `make_scan(table, checkpoint)` builds a table's `TableScan` for the segments' positions.
    """

    def __init__(
        self,
        config: Config,
        tracker: CheckpointTracker,
        make_scan: Callable[[TableConfig, SnapshotCheckpoint], object],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.tracker = tracker
        self.make_scan = make_scan
        self.wall_clock = wall_clock
        self.running: dict[str, Snapshot] = {}
        self.infos: dict[str, TableInfo] = {}
        self.woken: dict[str, float] = {}  # by table: the latest deadline passed to `ready`'s `wake`

    def open(self, infos: list[TableInfo]) -> None:
        """Start the snapshots the checkpoint holds unfinished (after `plan`, once the tables are described)."""
        self.infos = {info.name: info for info in infos}
        for table in self.config.tables:
            snapshot = self.tracker.snapshot(table.name)
            if snapshot is not None and not snapshot.done:
                self._run(table, snapshot)

    def request(self, name: str, reason: str) -> None:
        """Take a new snapshot of table `name` now (a running one is dropped: the new one covers it)."""
        table = self.config.table(name)
        old = self.running.pop(name, None)
        if old is not None:
            old.stop(self.config.shutdown_timeout_s)
        snapshot = new_snapshot(table, reason, round(self.wall_clock() * 1000))
        self.tracker.snapshot_written(name, snapshot)
        self._run(table, snapshot)

    def _run(self, table: TableConfig, checkpoint: SnapshotCheckpoint) -> None:
        scan = self.make_scan(table, checkpoint)
        self.running[table.name] = snapshot = Snapshot(
            table.name, checkpoint, scan, margin_ms=table.snapshot_handoff_margin_ms, wall_clock=self.wall_clock
        )
        self._progress(snapshot)

    def _estimate(self, name: str) -> int | None:
        info = self.infos.get(name)
        return info.item_count if info is not None else None

    def _progress(self, snapshot: Snapshot) -> None:
        checkpoint, estimate = snapshot.checkpoint, self._estimate(snapshot.table)
        metrics.snapshot_progress(snapshot.table, checkpoint.items, snapshot.segments_left, estimate)

    def ready(
        self, watermark: Callable[[str], float], wake: Callable[[str, float], None]
    ) -> Iterator[tuple[Snapshot, ScanPage]]:
        """Pages that may be written now, with their snapshot; scans start once their stream is positioned.

        `watermark(table)` is how far the table's stream was read (epoch ms); `wake(table, epoch_ms)` is told,
        once each, how far it should be read next for held pages to go (`StreamSource.watermark`, `wake_at`,
        `Snapshot.deadline_ms`)."""
        for name, snapshot in list(self.running.items()):
            mark = watermark(name)
            self._begin(snapshot, mark)
            for page in snapshot.ready(mark):
                yield snapshot, page
            deadline = snapshot.deadline_ms()
            if deadline is not None and deadline != self.woken.get(name):
                self.woken[name] = deadline
                wake(name, deadline)

    @contextlib.contextmanager
    def starting(self, watermark: Callable[[str], float]) -> Iterator[None]:
        """While the body runs (the pipeline opens its sinks), a thread begins each scan as soon as its stream is
        positioned, so the scan reads its first pages and their handoff margin runs meanwhile; `ready` begins
        those still waiting after. The pipeline thread touches no snapshot until the body is done."""
        done = threading.Event()
        failed: list[BaseException] = []

        def begin_positioned() -> None:
            waiting = [snapshot for snapshot in self.running.values() if not snapshot.started]
            try:
                while waiting:
                    waiting = [snapshot for snapshot in waiting if not self._begin(snapshot, watermark(snapshot.table))]
                    if done.wait(STARTING_POLL_S):
                        return
            except BaseException as error:  # raised in the pipeline thread once the body is done
                failed.append(error)

        thread = threading.Thread(target=begin_positioned, name="snapshot-start", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
        if failed:
            raise failed[0]

    def _begin(self, snapshot: Snapshot, watermark_ms: float) -> bool:
        """Begin `snapshot`'s scan if its stream is positioned (logged once); True once it has begun."""
        if snapshot.started or not snapshot.begin(watermark_ms):
            return snapshot.started
        checkpoint = snapshot.checkpoint
        count = self._estimate(snapshot.table)
        log.info(
            "snapshot of table %s %s (%s): %d segment(s), %s items in the table",
            snapshot.table,
            "resumed" if checkpoint.items or any(s.done for s in checkpoint.segments) else "started",
            checkpoint.reason,
            len(checkpoint.segments),
            f"about {count}" if count is not None else "an unknown number of",
        )
        return True

    def stream_arn(self, name: str) -> str:
        """The stream of table `name` read during its snapshot (named in its rows' `source`)."""
        return self.infos[name].stream_arn

    def event_ids(self, snapshot: Snapshot, page: ScanPage) -> Iterator[str]:
        """The `event_id`s of a page's rows: `snapshot-<start ms>-<key attributes as wire JSON>`.

        One id per item and snapshot, whatever page holds it: a page read again after a restart gives its
        rows the ids they had, so a consumer that skips an `event_id` it applied skips exactly those."""
        prefix = f"snapshot-{snapshot.checkpoint.started_ms}-"
        names = self.infos[snapshot.table].key_names if snapshot.table in self.infos else ()
        for item in page.items:
            attributes = item.key if type(item) is ScannedItem else item  # as text: its key attributes parsed
            key = [attributes.get(name) for name in names] if type(attributes) is dict else None
            yield prefix + orjson.dumps(key).decode()

    def written(self, snapshot: Snapshot, page: ScanPage) -> None:
        """Every row of `page` was written (or dropped): store the segment's new position at the next commit."""
        checkpoint = snapshot.written(page, len(page.items))
        self.tracker.snapshot_written(snapshot.table, checkpoint)
        self._progress(snapshot)
        if snapshot.finished():
            done = dataclasses.replace(checkpoint, done=True)
            self.tracker.snapshot_written(snapshot.table, done)
            del self.running[snapshot.table]
            snapshot.stop(0.0)
            seconds = time.monotonic() - snapshot.began
            log.info(
                "snapshot of table %s done: %d items read, %d rows left to the stream's newer changes, in %.1f s",
                snapshot.table,
                done.items,
                snapshot.dropped,
                seconds,
            )

    def saw(self, table: str, events: list) -> None:
        """Stream events of `table` were written (the running snapshot drops its stale rows of them)."""
        snapshot = self.running.get(table)
        if snapshot is not None and events:
            snapshot.saw(events)

    def all_done(self) -> bool:
        """No snapshot is running."""
        return not self.running

    def stop(self, timeout: float) -> None:
        """Stop every scan (what was not written is read again by the next run)."""
        for snapshot in self.running.values():
            snapshot.stop(timeout)
