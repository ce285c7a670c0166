"""The handoff of one table's snapshot (bridge/source/snapshot.py): pages wait for the stream, stale rows go.

A scripted scan hands out pages; the test plays the pipeline: it reports stream events written (`saw`) and
the stream's watermark, and checks which pages may be written and which of their rows.
"""

from __future__ import annotations

import math

from bridge.checkpoint import SegmentPosition, SnapshotCheckpoint
from bridge.normalize import ChangeEvent, Position
from bridge.source.scan import ScanPage
from bridge.source.snapshot import Snapshot

MARGIN = 1000


class ScriptedScan:
    def __init__(self, pages: list[ScanPage], in_flight_ms: float = math.inf) -> None:
        self.pages = list(pages)
        self.in_flight_ms = in_flight_ms
        self.started = self.stopped = False

    def start(self) -> None:
        self.started = True

    def get(self, timeout: float) -> ScanPage | None:
        return self.pages.pop(0) if self.pages else None

    def oldest_unhanded_ms(self) -> float:
        return self.in_flight_ms

    def stop(self, timeout: float) -> None:
        self.stopped = True


def page(segment: int, read_ms: int, keys: list[str], last_key: dict | None = None) -> ScanPage:
    items = [{"pk": {"S": key}} for key in keys]
    return ScanPage("T", segment, items, last_key, read_ms - 50, read_ms)


def event(key: str, created_ms: int) -> ChangeEvent:
    return ChangeEvent(
        "u", "T", {"pk": key}, None, {"pk": key}, Position("arn", "s", "1"), "e", created_ms, False, "", ""
    )


def row(key: str) -> ChangeEvent:
    return ChangeEvent("r", "T", {"pk": key}, None, {"pk": key}, Position("arn", "seg", ""), "r", 0, False, "", "")


def snapshot(pages: list[ScanPage], segments: int = 1, started_ms: int = 10_000, **scan) -> Snapshot:
    checkpoint = SnapshotCheckpoint(started_ms, "initial", tuple(SegmentPosition() for _ in range(segments)))
    return Snapshot("T", checkpoint, ScriptedScan(pages, **scan), margin_ms=MARGIN)


def test_the_scan_starts_only_once_the_stream_was_read_after_the_snapshot_began():
    handoff = snapshot([page(0, 20_000, ["a"])])

    assert not handoff.begin(watermark_ms=9_999) and not handoff.scan.started
    assert handoff.ready(watermark_ms=math.inf) == []  # nothing is asked for before the stream is positioned
    assert handoff.begin(watermark_ms=10_000) and handoff.scan.started


def test_a_page_waits_until_the_stream_was_read_a_margin_past_the_moment_it_was_read():
    first, second = page(0, 20_000, ["a"], {"pk": {"S": "a"}}), page(0, 21_000, ["b"])
    handoff = snapshot([first, second])
    handoff.begin(10_000)

    assert handoff.ready(watermark_ms=20_999) == []
    assert handoff.ready(watermark_ms=21_000) == [first]
    assert handoff.ready(watermark_ms=21_500) == []
    assert handoff.ready(watermark_ms=22_000) == [second]


def test_the_stream_is_asked_past_the_oldest_page_and_the_pages_requested_before_it_was_read():
    first = page(0, 20_000, ["a"], {"pk": {"S": "a"}})  # requested at 19_950
    alongside = page(1, 20_030, ["b"], {"pk": {"S": "b"}})  # requested at 19_980, while the first was read
    after = page(0, 20_100, ["c"])  # requested at 20_050, once the first was in
    handoff = snapshot([first, alongside, after], segments=2)
    handoff.begin(10_000)
    assert handoff.deadline_ms() is None

    assert handoff.ready(watermark_ms=10_000) == []
    assert handoff.deadline_ms() == 20_030 + MARGIN
    assert handoff.ready(watermark_ms=20_030 + MARGIN) == [first, alongside]
    assert handoff.deadline_ms() == 20_100 + MARGIN
    assert handoff.ready(watermark_ms=20_100 + MARGIN) == [after]
    assert handoff.deadline_ms() is None


def test_rows_whose_item_changed_on_the_stream_during_the_snapshot_are_dropped_and_counted():
    handoff = snapshot([page(0, 20_000, ["a", "b", "c"])])
    handoff.begin(10_000)
    handoff.saw([event("b", 19_000), event("z", 20_500)])

    assert handoff.fresh([row("a"), row("b"), row("c")]) == [row("a"), row("c")]
    assert handoff.dropped == 1


def test_keys_older_than_every_page_held_or_in_flight_are_forgotten_but_no_earlier():
    pages = [page(0, 20_000, ["a"], {"pk": {"S": "a"}}), page(0, 60_000, ["b"])]
    handoff = snapshot(pages, in_flight_ms=math.inf)
    handoff.begin(10_000)
    handoff.saw([event("old", 5_000), event("recent", 59_000)])

    handoff.ready(watermark_ms=21_000)  # the first page is written; the second (started at 59,950) is held

    assert handoff.fresh([row("old")]) == [row("old")]  # a row read after its change holds that change
    assert handoff.fresh([row("recent")]) == []  # the held page may hold an older state of it


def test_a_page_in_flight_keeps_the_keys_it_may_be_older_than():
    handoff = snapshot([page(0, 20_000, ["a"], {"pk": {"S": "a"}})], in_flight_ms=15_000)
    handoff.begin(10_000)
    handoff.saw([event("k", 14_500)])

    handoff.ready(watermark_ms=21_000)

    assert handoff.fresh([row("k")]) == []


def test_each_segment_moves_to_its_page_and_the_snapshot_ends_when_every_segment_did():
    more = {"pk": {"S": "m"}}
    handoff = snapshot([page(0, 20_000, ["a", "b"], more), page(1, 20_000, ["c"]), page(0, 20_100, ["d"])], 2)
    handoff.begin(10_000)
    pages = handoff.ready(watermark_ms=30_000)

    checkpoints = []
    for written in pages:
        assert not handoff.finished()
        checkpoints.append(handoff.written(written, len(written.items)))

    assert checkpoints[0].segments == (SegmentPosition(more, False, 2), SegmentPosition(None, False, 0))
    assert checkpoints[1].segments[1] == SegmentPosition(None, True, 1)
    assert handoff.checkpoint.segments == (SegmentPosition(None, True, 3), SegmentPosition(None, True, 1))
    assert handoff.checkpoint.items == 4 and handoff.finished()


def test_at_most_max_pages_are_held_waiting_for_the_stream():
    pages = [page(0, 20_000 + i, [f"k{i}"], {"pk": {"S": f"k{i}"}}) for i in range(40)]
    handoff = snapshot(pages)
    handoff.max_pages = 5
    handoff.begin(10_000)

    assert handoff.ready(watermark_ms=0) == []
    assert len(handoff.held) == 5 and len(handoff.scan.pages) == 35
