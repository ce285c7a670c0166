"""Snapshots over the scripted fake: the real Pipeline, StreamSource and TableScan, for what moto cannot produce.

A stream that trims records while the scan still runs, a checkpoint older than the trim horizon, changes made
while a page is being read, throttled and denied Scans, a shard split in the middle of the handoff. Every test
checks what a consumer ends with: applying the events in order (upsert on r/c/u, delete on d) must give the
table's items as the fake holds them.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass

import pytest

from bridge.checkpoint import CheckpointStore, SnapshotCheckpoint
from bridge.errors import ConfigError, FatalError
from bridge.sinks.base import Sink
from tests.fake_streams import FakeAWS
from tests.polling import wait_for
from tests.stream_harness import PipelineThread, caught_up_within, make_config, pipeline

TABLE = "Orders"
RETENTION_S = 1.0  # the stream's 24 h retention, shortened


@dataclass(frozen=True)
class _NoSettings:
    pass


@dataclass(frozen=True)
class Got:
    """One event as the sink got it; `after` is None for a delete."""

    op: str
    key: str
    after: dict | None
    shard_id: str
    sequence_number: str


class MaterializingSink(Sink):
    """Keeps every event in the order written; `state()` is what a consumer applying them in order holds."""

    Config = _NoSettings

    def __init__(self) -> None:
        super().__init__(_NoSettings(), {})
        self.events: list[Got] = []
        self.lock = threading.Lock()

    def open(self) -> None:
        pass

    def write(self, events) -> None:
        with self.lock:
            for event in events:
                after = dict(event.after) if event.after is not None else None
                position = event.position
                self.events.append(
                    Got(event.op, event.partition_key, after, position.shard_id, position.sequence_number)
                )

    def flush(self, timeout: float) -> None:
        pass

    def close(self) -> None:
        pass

    def got(self) -> list[Got]:
        with self.lock:
            return list(self.events)

    def state(self) -> dict[str, dict]:
        """Each key's item after every event so far: upserted by r/c/u, deleted by d."""
        state: dict[str, dict] = {}
        for event in self.got():
            if event.op == "d":
                state.pop(event.key, None)
            else:
                state[event.key] = event.after
        return state

    def last(self) -> dict[str, Got]:
        """The last event of each key."""
        return {event.key: event for event in self.got()}


def world(items: int, page_items: int = 4) -> FakeAWS:
    """A table of `items` items (`k0`... with `v` = index) whose stream dates records by the wall clock."""
    aws = FakeAWS(wall_clock=time.time, scan_page_items=page_items)
    aws.create_table(TABLE)
    for index in range(items):
        aws.write(TABLE, f"k{index}", index, event="INSERT")
    return aws


def items(aws: FakeAWS) -> dict[str, dict]:
    """The fake's items as plain values, by key: what the consumer must end with."""
    return {key: {"pk": key, "v": int(item["v"]["N"])} for key, item in aws.items_of(TABLE).items()}


def snapshot_config(tmp_path, **table):
    return make_config(
        tmp_path / "cp.json",
        [
            {
                "name": TABLE,
                "snapshot": "initial",
                "snapshot_segments": 2,
                "snapshot_handoff_margin_ms": 300,
                **table,
            }
        ],
    )


def stored_snapshot(tmp_path) -> SnapshotCheckpoint | None:
    return CheckpointStore(tmp_path / "cp.json").read()[1].get(TABLE)


def snapshot_done(tmp_path, reason: str = "initial") -> bool:
    snapshot = stored_snapshot(tmp_path)
    return snapshot is not None and snapshot.done and snapshot.reason == reason


def converged(tmp_path, aws: FakeAWS, sink: MaterializingSink, reason: str = "initial"):
    """A `wait_for` condition: the snapshot is done and the consumer's state equals the table."""
    return lambda: snapshot_done(tmp_path, reason) and sink.state() == items(aws)


def stream_sequences(aws: FakeAWS, since: int = 0) -> set[str]:
    """Sequence numbers of the table's stream records, from the `since`-th written on."""
    records = sorted(aws.records_of(TABLE), key=lambda r: int(r["dynamodb"]["SequenceNumber"]))
    return {record["dynamodb"]["SequenceNumber"] for record in records[since:]}


def test_a_snapshot_that_outlives_the_stream_retention_loses_nothing(tmp_path, caplog):
    aws = world(items=40)
    (shard,) = aws.open_shards(TABLE)
    seeded = len(aws.records_of(TABLE))  # before the bridge: the snapshot covers them, the stream starts after
    config = snapshot_config(tmp_path, snapshot_max_read_units_per_s=4)  # a page is 1 unit: 4 pages a second
    sink = MaterializingSink()
    trimmed_during_scan = 0

    with caplog.at_level(logging.INFO), PipelineThread(pipeline(aws, config, sink)) as bridge:
        answered, step = 0, 0
        while not snapshot_done(tmp_path):
            wait_for(
                lambda seen=answered: len(aws.scan_calls()) > seen or snapshot_done(tmp_path),
                10,
                "another Scan call or the end",
            )
            answered = len(aws.scan_calls())
            aws.write(TABLE, f"k{step % 40}", 1000 + step)
            aws.write(TABLE, f"new{step}", step, event="INSERT")
            if step % 3 == 2:
                aws.write(TABLE, f"k{(step * 7) % 40}", 0, event="REMOVE")
            aws.trim_older_than(TABLE, RETENTION_S)
            with aws.lock:
                trimmed_during_scan = aws.stream_of(TABLE).shards[shard].trimmed - seeded
            step += 1
        wait_for(converged(tmp_path, aws, sink), 10, "the consumer's state to equal the table")

    assert bridge.error is None
    scans = aws.scan_calls(TABLE)
    assert scans[-1].at - scans[0].at > RETENTION_S  # the scan outlived the retention ...
    assert trimmed_during_scan > 0  # ... and changes made during it were trimmed before it ended
    assert sink.state() == items(aws)
    assert stream_sequences(aws, since=seeded) <= {e.sequence_number for e in sink.got()}
    assert "TrimmedDataAccessException" not in [c.error for c in aws.calls]
    assert not [r for r in caplog.records if "DATA GAP" in r.getMessage()]


def checkpointed_sequences(tmp_path) -> list[str | None]:
    return [shard.sequence_number for shard in CheckpointStore(tmp_path / "cp.json").read()[0].values()]


def _checkpoint_older_than_the_trim_horizon(tmp_path, aws: FakeAWS, sink: MaterializingSink, on_trimmed: str):
    """A run takes the initial snapshot and reads some changes; while it is away the table changes (new items
    too) and the stream trims the first changes it did not read. Returns the config."""
    config = snapshot_config(tmp_path, on_trimmed=on_trimmed)
    with PipelineThread(pipeline(aws, config, sink)) as bridge:
        wait_for(lambda: snapshot_done(tmp_path), 10, "the initial snapshot")
        last = [aws.write(TABLE, f"k{index}", 100 + index) for index in range(10)][-1]
        wait_for(lambda: checkpointed_sequences(tmp_path) == [last], 10, "a checkpoint at the last change read")
    assert bridge.error is None
    for index in range(10):
        aws.write(TABLE, f"k{index}", 200 + index)
    for index in range(5):
        aws.write(TABLE, f"new{index}", 300 + index, event="INSERT")
    first_kept = aws.write(TABLE, "k5", 400)
    aws.write(TABLE, "new5", 305, event="INSERT")
    aws.trim(TABLE, before=first_kept)
    return config


def test_a_checkpoint_older_than_the_trim_horizon_takes_a_new_snapshot_with_on_trimmed_resnapshot(tmp_path, caplog):
    aws = world(items=20)
    sink = MaterializingSink()  # one consumer across both runs
    config = _checkpoint_older_than_the_trim_horizon(tmp_path, aws, sink, "resnapshot")
    assert sink.state() != items(aws)  # the changes trimmed away reach it through the new snapshot only

    with caplog.at_level(logging.INFO):
        caught_up_within(aws, config, sink, timeout=10)

    assert [r for r in caplog.records if "DATA GAP" in r.getMessage()]
    snapshot = stored_snapshot(tmp_path)
    assert snapshot.reason == "trimmed" and snapshot.done
    assert sink.state() == items(aws)


def test_a_checkpoint_older_than_the_trim_horizon_is_fatal_with_on_trimmed_fail(tmp_path):
    aws = world(items=20)
    config = _checkpoint_older_than_the_trim_horizon(tmp_path, aws, MaterializingSink(), "fail")

    with pytest.raises(FatalError, match="trimmed"):
        caught_up_within(aws, config, MaterializingSink(), timeout=10)


def test_rows_read_before_a_change_of_their_item_never_follow_that_change(tmp_path):
    aws = world(items=24)
    stale: list[tuple[str, int]] = []

    def change_the_page_items(answer: dict) -> dict:
        """The items of the page are changed between their read and the answer: the page's rows are stale."""
        for item in answer["Items"]:
            key, value = item["pk"]["S"], int(item["v"]["N"])
            stale.append((key, value))
            aws.write(TABLE, key, value + 1000)
        return answer

    aws.answer_next("Scan", change_the_page_items, times=3)
    sink = MaterializingSink()

    caught_up_within(aws, snapshot_config(tmp_path), sink, timeout=10)

    assert stale, "no page was read before its items changed"
    final = items(aws)
    assert {key: event.after for key, event in sink.last().items()} == final
    for key, value in stale:
        assert final[key]["v"] == value + 1000
        assert sink.last()[key].op == "u"  # the stale row, if written at all, came before the change


def test_throttled_scans_delay_the_snapshot_with_warnings_naming_table_and_segment(tmp_path, caplog):
    aws = world(items=20, page_items=5)
    aws.fail_next("Scan", "ProvisionedThroughputExceededException", times=16)
    sink = MaterializingSink()

    with caplog.at_level(logging.WARNING, logger="bridge.source.scan"):
        caught_up_within(aws, snapshot_config(tmp_path, snapshot_segments=4), sink, timeout=10)

    assert [c.error for c in aws.scan_calls(TABLE)].count("ProvisionedThroughputExceededException") == 16
    warnings = [r.getMessage() for r in caplog.records if r.name == "bridge.source.scan" and r.levelname == "WARNING"]
    assert len(warnings) == 16
    assert all(re.match(rf"table {TABLE} segment [0-3]: .*ProvisionedThroughputExceeded", w) for w in warnings)
    assert snapshot_done(tmp_path) and sink.state() == items(aws)


def test_a_denied_scan_stops_the_run_with_a_config_error_naming_the_table(tmp_path):
    aws = world(items=5)
    aws.fail_next("Scan", "AccessDeniedException")

    with pytest.raises(ConfigError, match=f"table {TABLE}") as error:
        caught_up_within(aws, snapshot_config(tmp_path), MaterializingSink(), timeout=10)

    assert "access denied" in str(error.value) and "AccessDeniedException" in str(error.value)
    assert not snapshot_done(tmp_path)


def test_a_shard_split_during_the_snapshot_still_lets_rows_through_and_loses_nothing(tmp_path):
    aws = world(items=24)
    (parent,) = aws.open_shards(TABLE)
    seeded = len(aws.records_of(TABLE))
    around_split: list[str] = []  # stream changes written while the first page was read
    children: list[str] = []

    def split_while_reading(answer: dict) -> dict:
        around_split.extend(aws.write(TABLE, f"k{index}", 500 + index) for index in range(3))
        children.extend(aws.split(parent))
        around_split.extend(aws.write(TABLE, f"k{index}", 600 + index) for index in range(3, 12))
        around_split.append(aws.write(TABLE, "new0", 1, event="INSERT"))
        return answer

    aws.answer_next("Scan", split_while_reading)
    sink = MaterializingSink()

    caught_up_within(aws, snapshot_config(tmp_path), sink, timeout=10)

    got = sink.got()
    rows = [index for index, event in enumerate(got) if event.op == "r"]
    changes = [index for index, event in enumerate(got) if event.sequence_number in around_split]
    assert rows and len(changes) == len(around_split)
    shards = {got[index].shard_id for index in changes}
    assert shards <= {parent, *children} and shards & set(children)
    assert max(changes) < min(rows)  # every page was read after them: its rows wait for the children's reads
    assert stream_sequences(aws, since=seeded) <= {event.sequence_number for event in got}
    assert snapshot_done(tmp_path) and sink.state() == items(aws)


def test_a_run_after_a_snapshot_whose_stream_had_no_record_delivers_new_changes_and_no_older_ones(tmp_path):
    aws = FakeAWS(scan_page_items=4)  # records dated 2026-01-01: long before the snapshot
    aws.create_table(TABLE)
    for version in (1, 2):
        aws.write(TABLE, "a", version)
    config = snapshot_config(tmp_path)
    first = MaterializingSink()
    caught_up_within(aws, config, first)
    assert [(e.op, e.after["v"]) for e in first.got()] == [("r", 2)]
    ((_, quiet),) = CheckpointStore(tmp_path / "cp.json").load().items()  # the stream had no record:
    assert quiet.sequence_number is None and quiet.quiet_ms > time.time() * 1000 - 60_000  # only when it was quiet

    aws.wall_clock = time.time  # from now on records are dated by the wall clock, as AWS dates them
    aws.write(TABLE, "a", 3)
    second = MaterializingSink()
    caught_up_within(aws, config, second)

    assert [(e.key, e.op, e.after["v"]) for e in second.got()] == [("a", "u", 3)]
