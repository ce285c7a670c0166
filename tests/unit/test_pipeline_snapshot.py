"""The pipeline with snapshots: a scripted source and scripted scans, recording sinks, no threads or AWS.

Which tables take a snapshot (new, resumed, asked for, after a gap), that rows reach every sink as `op: r`
events through the table's route, that the snapshot's positions are stored only after every sink flushed,
and that `initial_only` ends the run.
"""

from __future__ import annotations

import math
import threading

import pytest

from bridge.checkpoint import CheckpointStore, SegmentPosition, ShardCheckpoint, SnapshotCheckpoint
from bridge.pipeline import Pipeline
from bridge.source.scan import ScanPage
from tests.unit.test_pipeline import ARN, HookSink, ScriptedSource, batch, config, record


class Keeping(HookSink):
    """Keeps the change events themselves."""

    def write(self, events) -> None:
        if self.hook_write:
            self.hook_write(events)
        self.events.extend(events)


class Source(ScriptedSource):
    """The scripted source with a watermark the test sets and gap reports it scripts."""

    def __init__(self, batches=(), watermark_ms: float = math.inf, gaps: list[str] | None = None) -> None:
        super().__init__(list(batches))
        self.watermark_ms = watermark_ms
        self.gaps = gaps or []

    def watermark(self, table: str) -> float:
        return self.watermark_ms

    def resnapshots(self) -> list[str]:
        gaps, self.gaps = self.gaps, []
        return gaps


class Scans:
    """Builds scripted scans: each serves `pages_per_segment` pages per unfinished segment, then ends it."""

    def __init__(self, items_per_page: int = 2, pages_per_segment: int = 1) -> None:
        self.items_per_page = items_per_page
        self.pages_per_segment = pages_per_segment
        self.made: list[tuple[str, SnapshotCheckpoint]] = []

    def __call__(self, table, checkpoint: SnapshotCheckpoint):
        self.made.append((table.name, checkpoint))
        pages = []
        for segment, position in enumerate(checkpoint.segments):
            if position.done:
                continue
            for index in range(self.pages_per_segment):
                keys = [f"s{segment}-p{index}-{i}" for i in range(self.items_per_page)]
                last = {"pk": {"S": keys[-1]}} if index < self.pages_per_segment - 1 else None
                items = [{"pk": {"S": key}, "v": {"N": "1"}} for key in keys]
                pages.append(ScanPage(table.name, segment, items, last, 1_000, 1_000))
        return ListScan(pages)


class ListScan:
    def __init__(self, pages: list[ScanPage]) -> None:
        self.pages = pages

    def start(self) -> None:
        pass

    def get(self, timeout: float):
        return self.pages.pop(0) if self.pages else None

    def oldest_unhanded_ms(self) -> float:
        return math.inf

    def stop(self, timeout: float) -> None:
        pass


def run(tmp_path, source, scans, sinks=None, asked=(), until_caught_up=True, **table) -> list:
    sinks = sinks or [Keeping()]
    cfg = config(tmp_path, **{"snapshot": "initial", "snapshot_segments": 2, **table})
    Pipeline(cfg, source=source, sinks=sinks, scans=scans, snapshot=asked).run(until_caught_up=until_caught_up)
    return sinks[0].events


def stored(tmp_path) -> SnapshotCheckpoint | None:
    return CheckpointStore(tmp_path / "cp.json").read()[1].get("T")


def test_a_table_the_checkpoint_does_not_know_is_snapshotted_as_r_events_then_the_snapshot_is_done(tmp_path):
    events = run(tmp_path, Source(), Scans(items_per_page=3))

    assert sorted(e.keys["pk"] for e in events) == [f"s{s}-p0-{i}" for s in (0, 1) for i in range(3)]
    assert {e.op for e in events} == {"r"} and all(e.after["v"] == 1 and e.current_item for e in events)
    assert len({e.event_id for e in events}) == 6
    snapshot = stored(tmp_path)
    assert snapshot.done and snapshot.reason == "initial" and snapshot.items == 6


def test_rows_of_items_the_stream_changed_meanwhile_are_left_to_the_stream(tmp_path):
    stream = [batch([record(1, "s0-p0-1", 7)])]

    events = run(tmp_path, Source(stream), Scans(items_per_page=3))

    changed = [(e.op, e.after["v"]) for e in events if e.keys["pk"] == "s0-p0-1"]
    assert changed == [("u", 7)]  # the row, older than the change written before it, is dropped
    assert stored(tmp_path).items == 6  # it was read all the same


def test_no_page_is_written_before_the_stream_was_read_past_it(tmp_path):
    source = Source(watermark_ms=-math.inf)
    sink = Keeping()
    cfg = config(tmp_path, snapshot="initial", snapshot_segments=1)
    pipeline = Pipeline(cfg, source=source, sinks=[sink], scans=Scans())
    polls = []

    def watermark(table):  # the stream falls behind for 50 polls, then catches up
        polls.append(table)
        return math.inf if len(polls) > 50 else -math.inf

    source.watermark = watermark
    pipeline.run(until_caught_up=True)

    assert len(polls) > 50 and len(sink.events) == 2


def test_the_stream_is_asked_once_for_each_moment_the_oldest_held_page_waits_for(tmp_path):
    pages: list[ScanPage] = []
    source = Source()
    cfg = config(tmp_path, snapshot="initial", snapshot_segments=1, snapshot_handoff_margin_ms=500)
    pipeline = Pipeline(cfg, source=source, sinks=[Keeping()], scans=lambda table, checkpoint: ListScan(pages))
    began = pipeline.tracker.snapshot("T").started_ms
    pages += [
        ScanPage("T", 0, [{"pk": {"S": "a"}}], {"pk": {"S": "a"}}, began + 900, began + 1_000),
        ScanPage("T", 0, [{"pk": {"S": "b"}}], None, began + 2_900, began + 3_000),
    ]
    polls = []

    def watermark(table):  # 20 polls behind both pages, 20 past the first only, then past both
        polls.append(table)
        return began if len(polls) <= 20 else began + 2_000 if len(polls) <= 40 else math.inf

    source.watermark = watermark
    pipeline.run(until_caught_up=True)

    assert len(polls) > 40
    assert source.wakes == [("T", began + 1_500), ("T", began + 3_500)]  # read_ms + margin of the oldest page


def test_the_snapshot_position_is_stored_only_after_every_sink_flushed(tmp_path):
    flushes = []  # (items the stored checkpoint says were written, rows the sink holds) at each flush

    def on_flush():
        snapshot = stored(tmp_path)
        flushes.append((snapshot.items if snapshot else 0, len(sink.events)))

    sink = Keeping(on_flush=on_flush)
    run(tmp_path, Source(), Scans(pages_per_segment=3), sinks=[sink], snapshot_segments=1, interval_s=0.0001)

    assert all(items <= rows for items, rows in flushes)
    assert any(items < rows for items, rows in flushes)  # what a flush confirms is stored after it, not before
    assert stored(tmp_path).done and stored(tmp_path).items == 6


def test_a_table_the_checkpoint_knows_takes_no_initial_snapshot_but_one_asked_for(tmp_path):
    CheckpointStore(tmp_path / "cp.json").save({(ARN, "shard-1"): ShardCheckpoint("5")})
    scans = Scans()

    assert run(tmp_path, Source(), scans) == [] and scans.made == []
    assert len(run(tmp_path, Source(), scans, asked=["T"])) == 4
    assert stored(tmp_path).reason == "requested" and stored(tmp_path).done


def test_never_takes_no_snapshot(tmp_path):
    scans = Scans()

    assert run(tmp_path, Source(), scans, snapshot="never") == [] and scans.made == []
    assert stored(tmp_path) is None


def test_an_unfinished_snapshot_resumes_where_each_segment_was(tmp_path):
    middle = {"pk": {"S": "s0-p0-1"}}
    unfinished = SnapshotCheckpoint(42, "initial", (SegmentPosition(middle, False, 10), SegmentPosition(None, True, 7)))
    CheckpointStore(tmp_path / "cp.json").save({}, {"T": unfinished})
    scans = Scans()

    events = run(tmp_path, Source(), scans)

    assert scans.made == [("T", unfinished)]
    assert sorted(e.keys["pk"] for e in events) == ["s0-p0-0", "s0-p0-1"]  # segment 1 is not read again
    assert [e.event_id for e in events] == ['snapshot-42-[{"S":"s0-p0-0"}]', 'snapshot-42-[{"S":"s0-p0-1"}]']
    assert stored(tmp_path).items == 19 and stored(tmp_path).done


def test_initial_only_ends_the_run_once_the_snapshot_is_done(tmp_path):
    events = run(tmp_path, Source(), Scans(), snapshot="initial_only", until_caught_up=False)

    assert len(events) == 4 and stored(tmp_path).done


def test_a_gap_on_a_resnapshot_table_takes_a_new_snapshot(tmp_path):
    CheckpointStore(tmp_path / "cp.json").save(
        {}, {"T": SnapshotCheckpoint(1, "initial", (SegmentPosition(None, True, 3),), True)}
    )
    scans = Scans()

    events = run(tmp_path, Source(gaps=["T"]), scans, on_trimmed="resnapshot")

    assert [name for name, _ in scans.made] == ["T"] and len(events) == 4
    assert stored(tmp_path).reason == "trimmed" and stored(tmp_path).done


@pytest.mark.parametrize("policy", ["skip", "dlq"])
def test_a_scanned_item_without_its_key_is_routed_by_the_tables_policy(tmp_path, policy):
    class Keyless(Scans):
        def __call__(self, table, checkpoint):
            scan = super().__call__(table, checkpoint)
            scan.pages[0].items[0].pop("pk")
            return scan

    events = run(
        tmp_path,
        Source(),
        Keyless(),
        on_poison=policy,
        dead_letter_path=str(tmp_path / "dlq.jsonl") if policy == "dlq" else None,
    )

    assert len(events) == 3
    if policy == "dlq":
        letter = (tmp_path / "dlq.jsonl").read_text()
        assert "snapshot-segment-0" in letter and "key attribute pk" in letter


class StartedScan(ListScan):
    """A scripted scan that says when it was started; `fail` is raised by its first `start`."""

    def __init__(self, pages: list[ScanPage], fail: BaseException | None = None) -> None:
        super().__init__(pages)
        self.began = threading.Event()
        self.fail = fail

    def start(self) -> None:
        fail, self.fail = self.fail, None
        if fail is not None:
            raise fail
        self.began.set()


class SlowOpening(Keeping):
    """A sink whose `open` takes until the scan began (at most `OPEN_WAIT_S`) and notes whether it had."""

    OPEN_WAIT_S = 5.0

    def __init__(self, scan: StartedScan) -> None:
        super().__init__()
        self.scan = scan
        self.scan_began_while_opening: bool | None = None

    def open(self) -> None:
        self.scan_began_while_opening = self.scan.began.wait(self.OPEN_WAIT_S)


def _one_page_scan(tmp_path, source, fail=None) -> tuple[Pipeline, StartedScan]:
    scan = StartedScan([ScanPage("T", 0, [{"pk": {"S": "a"}}], None, 1_000, 1_000)], fail)
    cfg = config(tmp_path, snapshot="initial", snapshot_segments=1)
    return Pipeline(cfg, source=source, sinks=[SlowOpening(scan)], scans=lambda table, checkpoint: scan), scan


def test_the_scan_begins_while_the_sinks_open_once_the_stream_is_positioned(tmp_path):
    pipeline, _ = _one_page_scan(tmp_path, Source())

    pipeline.run(until_caught_up=True)

    sink = pipeline.sinks[0]
    assert sink.scan_began_while_opening is True
    assert [e.keys["pk"] for e in sink.events] == ["a"]


def test_a_scan_whose_stream_is_not_positioned_while_the_sinks_open_begins_after_them(tmp_path):
    source = Source()
    opened = threading.Event()
    source.watermark = lambda table: math.inf if opened.is_set() else -math.inf
    pipeline, scan = _one_page_scan(tmp_path, source)
    sink = pipeline.given_sinks[0]
    sink.OPEN_WAIT_S = 0.2
    opening = sink.open

    def open_then_position() -> None:
        opening()
        opened.set()

    sink.open = open_then_position
    pipeline.run(until_caught_up=True)

    assert sink.scan_began_while_opening is False and scan.began.is_set()
    assert [e.keys["pk"] for e in sink.events] == ["a"]


def test_a_scan_that_cannot_start_while_the_sinks_open_fails_the_run(tmp_path):
    # its second `start` would work: the run fails with the first one's error, not after a retry in the loop
    pipeline, _ = _one_page_scan(tmp_path, Source(), fail=RuntimeError("no thread for segment 0"))
    pipeline.given_sinks[0].OPEN_WAIT_S = 0.2

    with pytest.raises(RuntimeError, match="no thread for segment 0"):
        pipeline.run(until_caught_up=True)
