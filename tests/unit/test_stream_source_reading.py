"""StreamSource through the real Pipeline over the scripted fake: discovery, lineage, polling, throttling."""

from __future__ import annotations

import itertools

import pytest

from bridge.source.stream import BACKOFF_BASE, BACKOFF_CAP, MIN_CALL_INTERVAL, backoff_delay
from tests.fake_streams import FakeAWS
from tests.manual_clock import ManualClock
from tests.polling import wait_for
from tests.stream_harness import (
    BridgeThread,
    Changes,
    MemorySink,
    assert_exactly_once_in_order,
    make_config,
    run_until_caught_up,
)

STEP = 1 / 64  # s of the manual clock per poll of `advance_until`: exact in binary, and slower than real time


@pytest.fixture
def clock() -> ManualClock:
    """The clock the source schedules by, moved only by the test."""
    return ManualClock()


@pytest.fixture
def clocked_changes(clock) -> Changes:
    """Changes on a fake that stamps its calls with `clock`: gaps between calls are in the source's time."""
    return Changes(FakeAWS(clock=clock))


def advance_until(clock: ManualClock, condition, what: str):
    """Move `clock` on by `STEP` at each poll until `condition` holds; returns its value.

    The clock runs slower than real time, so the dispatcher (which sleeps real seconds until the next call is
    due) never sleeps past a due call: a call comes at most a few steps after it is due, never before.
    """

    def moved_on():
        if result := condition():
            return result
        clock.advance(STEP)
        return None

    return wait_for(moved_on, 20, what)


def test_discovery_pages_describe_stream_until_no_last_evaluated_shard(tmp_path, changes):
    aws = changes.aws
    aws.page_size = 1
    aws.create_table("T")
    (root,) = aws.open_shards("T")
    changes.many("T", 10)
    for child in aws.split(root):
        changes.many("T", 10)
        aws.split(child)
    changes.many("T", 40)
    sink = MemorySink()

    run_until_caught_up(aws, make_config(tmp_path / "cp.json", [{"name": "T"}]), sink)

    assert_exactly_once_in_order(sink.events, changes.written)
    starts = [c.args["ExclusiveStartShardId"] for c in aws.calls if c.operation == "DescribeStream"]
    assert starts[:7] == [None, *sorted(starts[1:7])]  # a first page, then one page per further shard
    assert len(set(starts[1:7])) == 6


def test_parent_with_500_records_splitting_into_two_children_keeps_per_item_order(tmp_path, changes):
    aws = changes.aws
    aws.create_table("T")
    (parent,) = aws.open_shards("T")
    changes.many("T", 500)
    aws.split(parent)
    changes.many("T", 500)  # the same 20 items, now written to the children
    aws.fail_next("GetRecords", "LimitExceededException", times=3, shard_id=parent)  # children could overtake
    sink = MemorySink()

    run_until_caught_up(aws, make_config(tmp_path / "cp.json", [{"name": "T"}]), sink)

    assert_exactly_once_in_order(sink.events, changes.written)
    assert {e.shard_id for e in sink.events[500:]} == set(aws.open_shards("T"))


def test_children_are_found_when_the_parent_ends_without_waiting_for_periodic_discovery(tmp_path, changes):
    aws = changes.aws
    aws.create_table("T")
    (parent,) = aws.open_shards("T")
    changes.many("T", 30)
    sink = MemorySink()
    config = make_config(tmp_path / "cp.json", [{"name": "T"}], discovery_interval_s=3600)
    with BridgeThread(aws, config, sink):
        wait_for(lambda: sink.count() == 30, 20, "the parent's records")
        with aws.lock:
            aws.split(parent)
            changes.many("T", 30)
        wait_for(lambda: sink.count() == 60, 20, "the children's records")
    assert_exactly_once_in_order(sink.events, changes.written)


def test_children_start_at_trim_horizon_even_when_the_table_starts_at_latest(tmp_path, changes):
    aws = changes.aws
    aws.create_table("T")
    (parent,) = aws.open_shards("T")
    changes.many("T", 5)  # before the start: skipped by `latest`
    sink = MemorySink()
    config = make_config(tmp_path / "cp.json", [{"name": "T", "start_position": "latest"}])
    with BridgeThread(aws, config, sink):
        wait_for(lambda: aws.get_records_calls(parent), 20, "the first read")
        with aws.lock:
            changes.many("T", 5)
            aws.split(parent)
            changes.many("T", 30)  # written before any child is listed or read
        wait_for(lambda: sink.count() == 35, 20, "parent and children records")
    child_starts = {
        c.args["ShardIteratorType"] for c in aws.calls if c.operation == "GetShardIterator" and c.shard_id != parent
    }
    assert child_starts == {"TRIM_HORIZON"}
    assert_exactly_once_in_order(sink.events, changes.written[5:])


def test_get_records_asks_for_at_most_1000_records_and_reads_on_after_a_full_batch(tmp_path, clocked_changes, clock):
    changes = clocked_changes
    aws = changes.aws
    aws.create_table("T")
    changes.many("T", 2500)
    sink = MemorySink()
    config = make_config(tmp_path / "cp.json", [{"name": "T"}], poll_interval_ms=3000)
    with BridgeThread(aws, config, sink, clock):
        # A batch reaches the sink only after the end of its call was noted: the clock moves on from that end.
        wait_for(lambda: sink.count() == 1000, 20, "the first batch")
        clock.advance(MIN_CALL_INTERVAL)
        wait_for(lambda: sink.count() == 2000, 20, "the second batch")
        clock.advance(MIN_CALL_INTERVAL)
        wait_for(lambda: sink.count() == 2500, 20, "the third batch")

    assert_exactly_once_in_order(sink.events, changes.written)
    calls = aws.get_records_calls()
    assert [c.records for c in calls[:3]] == [1000, 1000, 500]
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls[:3])]
    # A full batch is followed as soon as the 5 calls/s limit allows, not after the poll interval (3 s).
    assert gaps == pytest.approx([MIN_CALL_INTERVAL, MIN_CALL_INTERVAL])


def test_empty_shard_is_polled_at_the_poll_interval(tmp_path, clocked_changes, clock):
    changes = clocked_changes
    aws = changes.aws
    aws.create_table("T")
    (shard,) = aws.open_shards("T")
    changes.many("T", 3)
    sink = MemorySink()
    config = make_config(tmp_path / "cp.json", [{"name": "T"}], poll_interval_ms=400)
    with BridgeThread(aws, config, sink, clock):
        advance_until(clock, lambda: [c.records for c in aws.get_records_calls(shard)].count(0) >= 4, "empty polls")
    calls = aws.get_records_calls(shard)
    after_empty = [b.at - a.at for a, b in itertools.pairwise(calls) if a.records == 0]
    assert len(after_empty) >= 3
    assert min(after_empty) >= 0.4


def test_never_more_than_five_get_records_calls_per_second_per_shard(tmp_path, clocked_changes, clock):
    changes = clocked_changes
    aws = changes.aws
    aws.create_table("T")
    (shard,) = aws.open_shards("T")
    changes.many("T", 6000)  # six full batches: the reader wants to go again at once
    sink = MemorySink()
    config = make_config(tmp_path / "cp.json", [{"name": "T"}], poll_interval_ms=1)
    with BridgeThread(aws, config, sink, clock):
        advance_until(clock, lambda: sink.count() == 6000 and len(aws.get_records_calls(shard)) >= 7, "the tip")

    calls = aws.get_records_calls(shard)
    assert len(calls) >= 7
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    assert min(gaps) >= 0.2  # AWS's limit: 5 calls per second per shard
    assert_exactly_once_in_order(sink.events, changes.written)


def test_throttling_and_server_errors_are_retried_until_the_records_arrive(tmp_path, changes):
    aws = changes.aws
    aws.create_table("T")
    changes.many("T", 50)
    aws.fail_next("GetRecords", "LimitExceededException", times=2)
    aws.fail_next("GetRecords", "ProvisionedThroughputExceededException", times=1)
    aws.fail_next("GetRecords", "InternalServerError", times=1)
    aws.fail_next("GetShardIterator", "ThrottlingException", times=1)
    aws.fail_next("DescribeStream", "LimitExceededException", times=2)
    sink = MemorySink()

    run_until_caught_up(aws, make_config(tmp_path / "cp.json", [{"name": "T"}]), sink)

    assert_exactly_once_in_order(sink.events, changes.written)
    errors = [c.error for c in aws.calls if c.error]
    assert errors.count("LimitExceededException") == 4 and "InternalServerError" in errors


def test_throttled_shard_does_not_stall_the_other_shards(tmp_path, changes, monkeypatch):
    aws = changes.aws
    aws.create_table("T")
    (root,) = aws.open_shards("T")
    slow, fast = aws.split(root)
    changes.many("T", 3000)
    aws.fail_next("GetRecords", "LimitExceededException", times=10**6, shard_id=slow)
    monkeypatch.setattr("bridge.source.stream.backoff_delay", lambda failures: 60.0)
    sink = MemorySink()
    config = make_config(tmp_path / "cp.json", [{"name": "T"}], max_workers=1)
    fast_written = len(aws.stream_of("T").shards[fast].records)
    with BridgeThread(aws, config, sink):
        wait_for(lambda: sink.count() == fast_written, 20, "the unthrottled shard's records")
    assert fast_written > 1000  # several calls on the one worker, while the other shard waits out its backoff
    assert {e.shard_id for e in sink.events} == {fast}
    assert [c.error for c in aws.calls if c.shard_id == slow and c.operation == "GetRecords"] == [
        "LimitExceededException"
    ]


def test_backoff_is_exponential_with_full_jitter_and_capped():
    assert backoff_delay(1, uniform=lambda low, high: low) == 0.0
    assert [backoff_delay(n, uniform=lambda low, high: high) for n in (1, 2, 3)] == [
        BACKOFF_BASE * 2,
        BACKOFF_BASE * 4,
        BACKOFF_BASE * 8,
    ]
    assert backoff_delay(50, uniform=lambda low, high: high) == BACKOFF_CAP
    assert all(0 <= backoff_delay(4) <= BACKOFF_BASE * 16 for _ in range(100))


def test_periodic_discovery_finds_children_listed_late(tmp_path, changes):
    aws = changes.aws
    aws.create_table("T")
    (parent,) = aws.open_shards("T")
    changes.many("T", 10)
    children = aws.split(parent)
    changes.many("T", 10)
    for child in children:
        aws.stream_of("T").shards[child].listed = False  # DescribeStream does not show them yet
    sink = MemorySink()
    config = make_config(tmp_path / "cp.json", [{"name": "T"}], discovery_interval_s=0.5)
    with BridgeThread(aws, config, sink):
        wait_for(lambda: sink.count() == 10, 20, "the parent's records")
        listings = len([c for c in aws.calls if c.operation == "DescribeStream"])
        wait_for(lambda: len([c for c in aws.calls if c.operation == "DescribeStream"]) > listings + 1, 20, "lists")
        for child in children:
            aws.stream_of("T").shards[child].listed = True
        wait_for(lambda: sink.count() == 20, 20, "the children's records")
    assert_exactly_once_in_order(sink.events, changes.written)
