"""StreamSource through the real Pipeline over the scripted fake: expired iterators, trimming, stream changes."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from bridge.checkpoint import CheckpointStore
from bridge.config import DiscoverConfig, TableTemplate
from bridge.errors import ConfigError, FatalError
from tests.polling import wait_for
from tests.stream_harness import (
    BridgeThread,
    MemorySink,
    assert_exactly_once_in_order,
    make_config,
    run_until_caught_up,
)


def test_expired_iterator_is_renewed_after_the_last_record_read(tmp_path, changes):
    aws = changes.aws
    aws.create_table("T")
    (shard,) = aws.open_shards("T")
    changes.many("T", 40)
    sink = MemorySink()
    with BridgeThread(aws, make_config(tmp_path / "cp.json", [{"name": "T"}]), sink):
        wait_for(lambda: sink.count() == 40, 20, "the first records")
        with aws.lock:
            aws.expire_iterators()
            changes.many("T", 40)
        wait_for(lambda: sink.count() >= 80, 20, "records after the expiry")
        last_before = changes.aws.stream_of("T").shards[shard].records[39]["dynamodb"]["SequenceNumber"]
    assert_exactly_once_in_order(sink.events, changes.written)
    assert "ExpiredIteratorException" in [c.error for c in aws.calls]
    renewals = [c.args for c in aws.calls if c.operation == "GetShardIterator"][1:]
    assert renewals[0] == {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": last_before}


def _checkpoint_then_trim(tmp_path, changes, on_trimmed: str):
    aws = changes.aws
    aws.create_table("T")
    changes.many("T", 10)
    config = make_config(tmp_path / "cp.json", [{"name": "T", "on_trimmed": on_trimmed}])
    run_until_caught_up(aws, config, MemorySink())
    ((_, checkpoint),) = CheckpointStore(tmp_path / "cp.json").load().items()
    changes.many("T", 10)  # written while the bridge is away ...
    first_kept = changes.write("T", "k0")
    changes.many("T", 9)
    aws.trim("T", before=first_kept)  # ... and trimmed before it comes back
    return config, checkpoint.sequence_number


def test_trimmed_checkpoint_stops_with_an_error_naming_shard_checkpoint_and_lost_window(tmp_path, changes):
    config, checkpoint = _checkpoint_then_trim(tmp_path, changes, "fail")
    (shard,) = changes.aws.open_shards("T")
    sink = MemorySink()

    with pytest.raises(FatalError) as error:
        run_until_caught_up(changes.aws, config, sink)

    message = str(error.value)
    assert shard in message and checkpoint in message and "trimmed" in message and "trim horizon" in message
    assert "on_trimmed: resnapshot" in message and "resume_from_trim_horizon" in message
    assert sink.events == []
    assert CheckpointStore(tmp_path / "cp.json").load()[(changes.aws.stream_of("T").arn, shard)].sequence_number == (
        checkpoint
    )


def test_trimmed_checkpoint_resumes_at_trim_horizon_with_a_loud_gap_when_configured(tmp_path, changes, caplog):
    config, checkpoint = _checkpoint_then_trim(tmp_path, changes, "resume_from_trim_horizon")
    sink = MemorySink()

    with caplog.at_level(logging.ERROR):
        run_until_caught_up(changes.aws, config, sink)

    assert_exactly_once_in_order(sink.events, changes.written[20:])
    gap = [r.getMessage() for r in caplog.records if "DATA GAP" in r.getMessage()]
    assert len(gap) == 1 and checkpoint in gap[0]


def test_new_stream_is_followed_only_after_the_old_stream_is_drained(tmp_path, changes):
    aws = changes.aws
    old_arn = aws.create_table("T")
    (old_shard,) = aws.open_shards("T")
    changes.many("T", 20)
    sink = MemorySink()
    with BridgeThread(aws, make_config(tmp_path / "cp.json", [{"name": "T"}]), sink) as bridge:
        wait_for(lambda: sink.count() == 20, 20, "the old stream's first records")
        with aws.lock:
            aws.fail_next("GetRecords", "LimitExceededException", times=3, shard_id=old_shard)
            changes.many("T", 20)  # still on the old stream, read late because of the throttling
            new_arn = aws.new_stream("T")
            changes.many("T", 20)
        wait_for(lambda: sink.count() == 60 or bridge.error, 20, "both streams' records")
    assert bridge.error is None
    assert_exactly_once_in_order(sink.events, changes.written)
    assert [e.stream_arn for e in sink.events] == [old_arn] * 40 + [new_arn] * 20


def test_restart_reads_the_old_stream_of_the_checkpoint_to_its_end_before_the_new_one(tmp_path, changes):
    aws = changes.aws
    old_arn = aws.create_table("T")
    changes.many("T", 10)
    config = make_config(tmp_path / "cp.json", [{"name": "T", "start_position": "latest"}])
    with BridgeThread(aws, config, MemorySink()) as bridge:
        wait_for(lambda: aws.get_records_calls(), 20, "the first read")
        changes.many("T", 10)
        stored = CheckpointStore(tmp_path / "cp.json")
        wait_for(lambda: any(c.sequence_number for c in stored.load().values()), 20, "a checkpointed record")
    assert bridge.error is None
    changes.many("T", 10)  # on the old stream while the bridge is away
    new_arn = aws.new_stream("T")
    changes.many("T", 10)
    sink = MemorySink()

    run_until_caught_up(aws, config, sink)

    assert_exactly_once_in_order(sink.events, changes.written[20:])
    assert [e.stream_arn for e in sink.events] == [old_arn] * 10 + [new_arn] * 10


def test_stream_that_is_gone_with_unread_records_stops_with_an_error(tmp_path, changes):
    aws = changes.aws
    old_arn = aws.create_table("T")
    changes.many("T", 10)
    config = make_config(tmp_path / "cp.json", [{"name": "T"}])
    run_until_caught_up(aws, config, MemorySink())
    changes.many("T", 10)
    aws.new_stream("T")
    aws.drop_stream(old_arn)  # disabled more than 24 h ago

    with pytest.raises(FatalError, match="no longer exists") as error:
        run_until_caught_up(aws, config, MemorySink())
    assert old_arn in str(error.value)


def test_deleted_table_is_a_clear_error_once_its_stream_is_drained(tmp_path, changes):
    aws = changes.aws
    aws.create_table("T")
    (shard,) = aws.open_shards("T")
    changes.many("T", 10)
    sink = MemorySink()
    bridge = BridgeThread(aws, make_config(tmp_path / "cp.json", [{"name": "T"}]), sink)
    with bridge:
        wait_for(lambda: sink.count() == 10, 20, "the first records")
        with aws.lock:
            aws.fail_next("GetRecords", "LimitExceededException", times=2, shard_id=shard)
            changes.many("T", 10)
            aws.delete_table("T")
        error = bridge.ended()
    assert isinstance(error, FatalError) and "table T was deleted" in str(error)
    assert_exactly_once_in_order(sink.events, changes.written)


def test_a_deleted_table_found_by_discover_is_read_to_its_end_and_removed_while_the_others_go_on(
    tmp_path, changes, caplog
):
    aws = changes.aws
    aws.create_table("T")
    aws.create_table("U")
    (shard,) = aws.open_shards("T")
    changes.many("T", 10)
    changes.many("U", 5)
    config = make_config(tmp_path / "cp.json", [{"name": "U"}])
    template = TableTemplate(snapshot="never")
    config = dataclasses.replace(config, discover=DiscoverConfig(include=("T",), template=template))
    sink = MemorySink()
    caplog.set_level(logging.INFO)
    with BridgeThread(aws, config, sink) as bridge:
        wait_for(lambda: sink.count() == 15, 20, "the first records")
        with aws.lock:
            aws.fail_next("GetRecords", "LimitExceededException", times=2, shard_id=shard)
            changes.many("T", 10)
            aws.delete_table("T")
        wait_for(lambda: "table T removed" in caplog.text, 20, "the deleted table to be removed")
        changes.many("U", 5)
        wait_for(bridge.delivered(sink, 30), 20, "the other table's records after the removal")
    assert bridge.error is None
    assert "table T was deleted; every change its stream still held was delivered" in caplog.text
    assert_exactly_once_in_order(sink.events, changes.written)


def test_shard_trimmed_away_before_it_was_read_to_its_end_stops_with_an_error(tmp_path, changes):
    aws = changes.aws
    aws.create_table("T")
    (parent,) = aws.open_shards("T")
    changes.many("T", 10)
    config = make_config(tmp_path / "cp.json", [{"name": "T"}])
    run_until_caught_up(aws, config, MemorySink())
    changes.many("T", 10)
    aws.split(parent)
    first_kept = changes.write("T", "k0")
    aws.trim("T", before=first_kept)  # the whole parent, with 10 unread records, is gone

    with pytest.raises(FatalError, match=f"shard {parent} .*trimmed away"):
        run_until_caught_up(aws, config, MemorySink())


def test_shard_trimmed_away_while_it_is_being_read_stops_with_an_error(tmp_path, changes):
    aws = changes.aws
    aws.create_table("T")
    (parent,) = aws.open_shards("T")
    changes.many("T", 10)
    sink = MemorySink()
    bridge = BridgeThread(aws, make_config(tmp_path / "cp.json", [{"name": "T"}]), sink)
    with bridge:
        wait_for(lambda: sink.count() == 10, 20, "the first records")
        with aws.lock:
            aws.fail_next("GetRecords", "LimitExceededException", times=1, shard_id=parent)
            changes.many("T", 10)
            aws.split(parent)
            aws.trim("T", before=changes.write("T", "k0"))
        error = bridge.ended()
    assert isinstance(error, FatalError)
    assert f"shard {parent}" in str(error) and "trimmed away" in str(error)
    assert sink.count() == 10


def test_table_deleted_while_the_bridge_was_away_is_a_clear_startup_error(tmp_path, changes):
    aws = changes.aws
    aws.create_table("T")
    changes.many("T", 5)
    config = make_config(tmp_path / "cp.json", [{"name": "T"}])
    run_until_caught_up(aws, config, MemorySink())
    aws.delete_table("T")

    with pytest.raises(ConfigError, match="table 'T' does not exist"):
        run_until_caught_up(aws, config, MemorySink())
