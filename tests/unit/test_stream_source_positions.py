"""Where reading starts and what the checkpoint keeps: start positions, many tables, pruning, bad files."""

from __future__ import annotations

import time

import pytest

from bridge.checkpoint import CheckpointStore
from bridge.errors import ConfigError
from tests.polling import wait_for
from tests.stream_harness import (
    BridgeThread,
    MemorySink,
    assert_exactly_once_in_order,
    make_config,
    pipeline,
    run_until_caught_up,
)


def test_latest_start_skips_records_written_before_the_first_run(tmp_path, changes):
    aws = changes.aws
    aws.create_table("T")
    (shard,) = aws.open_shards("T")
    changes.many("T", 10)
    sink = MemorySink()
    config = make_config(tmp_path / "cp.json", [{"name": "T", "start_position": "latest"}])
    with BridgeThread(aws, config, sink):
        wait_for(lambda: aws.get_records_calls(shard), 20, "the first read")
        changes.many("T", 10)
        wait_for(lambda: sink.count() == 10, 20, "the new records")
    assert_exactly_once_in_order(sink.events, changes.written[10:])


def test_a_latest_start_whose_first_run_read_nothing_resumes_with_what_was_written_meanwhile(tmp_path, changes):
    aws = changes.aws
    aws.create_table("T")
    aws.wall_clock = lambda: time.time() - 60  # records dated by when they were written: a minute ago
    changes.many("T", 10)  # before the first run: a latest start skips them, now and on every later run
    aws.wall_clock = time.time
    config = make_config(tmp_path / "cp.json", [{"name": "T", "start_position": "latest"}])
    run_until_caught_up(aws, config, MemorySink())  # reads nothing: only when the shard was quiet is stored
    changes.many("T", 10)  # while no bridge runs
    sink = MemorySink()

    run_until_caught_up(aws, config, sink)

    assert_exactly_once_in_order(sink.events, changes.written[10:])


def test_trim_horizon_start_reads_every_record_kept(tmp_path, changes):
    aws = changes.aws
    aws.create_table("T")
    changes.many("T", 10)
    sink = MemorySink()

    run_until_caught_up(aws, make_config(tmp_path / "cp.json", [{"name": "T"}]), sink)

    assert_exactly_once_in_order(sink.events, changes.written)


def test_existing_checkpoint_wins_over_a_latest_start_position(tmp_path, changes):
    aws = changes.aws
    aws.create_table("T")
    changes.many("T", 10)
    run_until_caught_up(aws, make_config(tmp_path / "cp.json", [{"name": "T"}]), MemorySink())
    changes.many("T", 10)  # while the bridge is away
    sink = MemorySink()

    run_until_caught_up(aws, make_config(tmp_path / "cp.json", [{"name": "T", "start_position": "latest"}]), sink)

    assert_exactly_once_in_order(sink.events, changes.written[10:])


def test_many_tables_each_read_from_its_own_stream_and_start_position(tmp_path, changes):
    aws = changes.aws
    for name in ("A", "B", "C"):
        aws.create_table(name)
        changes.many(name, 10)
    (a_parent,) = aws.open_shards("A")
    aws.split(a_parent)
    changes.many("A", 10)
    tables = [{"name": "A"}, {"name": "B", "start_position": "latest"}, {"name": "C"}]
    sink = MemorySink()
    with BridgeThread(aws, make_config(tmp_path / "cp.json", tables), sink):
        wait_for(lambda: sink.count() == 30 and aws.get_records_calls(aws.open_shards("B")[0]), 20, "A and C")
        for name in ("A", "B", "C"):
            changes.many(name, 5)
        wait_for(lambda: sink.count() == 45, 20, "every table's new records")
    expected = [w for w in changes.written if w[0] != "B"] + changes.written[-10:-5]
    assert_exactly_once_in_order(sink.events, expected)
    for event in sink.events:
        assert event.stream_arn == aws.stream_of(event.table).arn
    assert {arn for arn, _ in CheckpointStore(tmp_path / "cp.json").load()} == {
        aws.stream_of(name).arn for name in ("A", "B", "C")
    }


def test_finished_shards_no_longer_listed_are_pruned_from_the_checkpoint(tmp_path, changes):
    aws = changes.aws
    arn = aws.create_table("T")
    (parent,) = aws.open_shards("T")
    changes.many("T", 10)
    aws.split(parent)
    changes.many("T", 10)
    config = make_config(tmp_path / "cp.json", [{"name": "T"}])
    run_until_caught_up(aws, config, MemorySink())
    assert CheckpointStore(tmp_path / "cp.json").load()[(arn, parent)].finished
    aws.trim("T", before=changes.write("T", "k0"))  # the parent is no longer listed
    sink = MemorySink()

    run_until_caught_up(aws, config, sink)

    assert [e.value for e in sink.events] == [changes.written[-1][2]]
    assert {shard for _, shard in CheckpointStore(tmp_path / "cp.json").load()} == set(aws.open_shards("T"))


@pytest.mark.parametrize(
    "content",
    [
        '{"version": 1, "streams": ',
        "[]",
        '{"version": 3, "streams": {}}',
        '{"version": 2, "streams": {}, "snapshots": {"T": {"started_ms": 1, "reason": "initial"}}}',
        '{"version": 1, "streams": {"arn": {"s": {"sequence_number": 5, "finished": false}}}}',
        '{"version": 1, "streams": {"arn": {"s": {"sequence_number": "5"}}}}',
    ],
)
def test_corrupt_checkpoint_file_is_a_startup_error_naming_the_file(tmp_path, changes, content):
    changes.aws.create_table("T")
    path = tmp_path / "cp.json"
    path.write_text(content)

    with pytest.raises(ConfigError, match=r"cp\.json"):
        pipeline(changes.aws, make_config(path, [{"name": "T"}]), MemorySink())
