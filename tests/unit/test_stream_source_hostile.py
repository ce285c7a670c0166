"""The stream reader under hostile DynamoDB Streams answers (issue "Nothing lost under hostile input").

Each test scripts the fake endpoint to answer badly - a page cut off, a wrong type, paging that never ends,
a call that never returns - and asserts on what reached the sink and the checkpoint: nothing lost, no shard
finished that was not closed, no thread dying in silence, a stop that keeps its deadline.
"""

from __future__ import annotations

import threading
import time

import pytest

from bridge.checkpoint import CheckpointStore
from bridge.commands.status import table_status
from bridge.errors import ConfigError, FatalError
from bridge.source.aws_errors import MALFORMED_LIMIT, RetriableError
from tests.stream_harness import (
    BridgeThread,
    Changes,
    MemorySink,
    assert_exactly_once_in_order,
    caught_up_within,
    make_config,
    pipeline,
)

NEVER = float("inf")


@pytest.fixture
def quick_backoff(monkeypatch):
    """Retries within 0.2 s: the tests that retry until the limit then take a second, not half a minute."""
    monkeypatch.setattr("bridge.source.stream.BACKOFF_CAP", 0.2)


def replicate_everything(tmp_path, changes: Changes) -> MemorySink:
    """Table T read until caught up: every change written arrives exactly once, in order per item."""
    sink = MemorySink()
    caught_up_within(changes, make_config(tmp_path / "cp.json", [{"name": "T"}]), sink)
    assert_exactly_once_in_order(sink.events, changes.written)
    return sink


def only_checkpoint(path):
    ((_, checkpoint),) = CheckpointStore(path).load().items()
    return checkpoint


# -- a bad 200 answer never finishes a shard -------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [{}, {"ResponseMetadata": {"HTTPStatusCode": 200}}, {"message": '{"Records": [{"eventID": "cut'}],
    ids=["empty", "metadata only", "cut off"],
)
def test_an_answer_without_records_is_retried_and_does_not_finish_the_shard(tmp_path, changes, answer):
    changes.aws.create_table("T")
    changes.many("T", 30)
    changes.aws.answer_next("GetRecords", lambda _: dict(answer), times=2)
    replicate_everything(tmp_path, changes)
    assert only_checkpoint(tmp_path / "cp.json").finished is False


def test_no_next_iterator_on_a_shard_listed_open_is_not_its_end(tmp_path, changes):
    aws = changes.aws
    aws.create_table("T")
    changes.many("T", 10)
    aws.answer_next("GetRecords", lambda answer: {**answer, "NextShardIterator": None})
    with aws.lock:
        changes.many("T", 10)  # after the page that claims the end
    replicate_everything(tmp_path, changes)
    assert only_checkpoint(tmp_path / "cp.json").finished is False


def test_a_closed_shard_is_still_finished_at_its_end(tmp_path, changes):
    aws = changes.aws
    aws.create_table("T")
    (shard,) = aws.open_shards("T")
    changes.many("T", 10)
    aws.close(shard)
    replicate_everything(tmp_path, changes)
    assert only_checkpoint(tmp_path / "cp.json").finished is True


def test_records_that_is_not_a_list_is_retried_then_stops_naming_the_shard(tmp_path, changes, quick_backoff):
    aws = changes.aws
    aws.create_table("T")
    (shard,) = aws.open_shards("T")
    changes.many("T", 5)
    aws.answer_next("GetRecords", lambda answer: {**answer, "Records": {"not": "a list"}}, times=NEVER)
    with pytest.raises(FatalError, match=shard) as raised:
        caught_up_within(changes, make_config(tmp_path / "cp.json", [{"name": "T"}]), MemorySink())
    assert "`Records` is a dict" in str(raised.value)
    calls = [c for c in aws.get_records_calls() if c.error is None]
    assert len(calls) == MALFORMED_LIMIT


def test_a_few_unusable_pages_are_retried_and_nothing_is_lost(tmp_path, changes):
    changes.aws.create_table("T")
    changes.many("T", 20)
    changes.aws.answer_next("GetRecords", lambda answer: {**answer, "Records": "garbage"}, times=3)
    replicate_everything(tmp_path, changes)


def test_a_shard_iterator_answer_without_an_iterator_is_retried(tmp_path, changes):
    changes.aws.create_table("T")
    changes.many("T", 20)
    changes.aws.answer_next("GetShardIterator", lambda _: {}, times=2)
    replicate_everything(tmp_path, changes)


# -- malformed records are poison, not a dead thread or a traceback -------------------------------------------


def _append(*records):
    return lambda answer: {**answer, "Records": [*answer["Records"], *records]}


MALFORMED_RECORDS = {
    "not an object": "not an object",
    "a list": [1, 2],
    "no dynamodb": {"eventName": "MODIFY", "eventID": "x"},
    "sequence not digits": {"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "abc", "Keys": {"pk": {"S": "z"}}}},
    "sequence as a number": {"eventName": "MODIFY", "dynamodb": {"SequenceNumber": 7, "Keys": {"pk": {"S": "z"}}}},
    "dynamodb a list": {"eventName": "MODIFY", "dynamodb": []},
    "eventName a list": {"eventName": [], "dynamodb": {"SequenceNumber": "1", "Keys": {"pk": {"S": "z"}}}},
    "userIdentity a string": {
        "eventName": "REMOVE",
        "userIdentity": "dynamodb",
        "dynamodb": {"SequenceNumber": "99999999999999999999999", "Keys": {"pk": {"S": "z"}}},
    },
}


@pytest.mark.parametrize("record", MALFORMED_RECORDS.values(), ids=MALFORMED_RECORDS.keys())
def test_a_malformed_record_at_the_end_of_a_page_is_skipped_under_skip_and_the_rest_delivered(
    tmp_path, changes, record
):
    changes.aws.create_table("T")
    changes.many("T", 10)
    changes.aws.answer_next("GetRecords", _append(record))
    with changes.aws.lock:
        changes.many("T", 10)
    run = pipeline(changes.aws, make_config(tmp_path / "cp.json", [{"name": "T", "on_poison": "skip"}]), MemorySink())
    sink = run.given_sinks[0]
    outcome = threading.Thread(target=run.run, kwargs={"until_caught_up": True}, daemon=True)
    outcome.start()
    outcome.join(30)
    assert not outcome.is_alive(), "--until-caught-up did not return"
    assert_exactly_once_in_order(sink.events, changes.written)
    assert sum(run.poison_counts.values()) == 1


@pytest.mark.parametrize("record", MALFORMED_RECORDS.values(), ids=MALFORMED_RECORDS.keys())
def test_a_malformed_record_stops_the_run_under_fail_with_the_reason(tmp_path, changes, record):
    changes.aws.create_table("T")
    changes.many("T", 10)
    changes.aws.answer_next("GetRecords", _append(record))
    with pytest.raises(FatalError, match="poison record"):
        caught_up_within(changes, make_config(tmp_path / "cp.json", [{"name": "T"}]), MemorySink())
    assert CheckpointStore(tmp_path / "cp.json").load() == {}  # the page holding it is read again next time


# -- listings that never end, answers that never come -----------------------------------------------------------


def _repeat_paging(answer):
    return {"StreamDescription": {**answer["StreamDescription"], "LastEvaluatedShardId": "shardId-again"}}


def test_describe_stream_paging_that_repeats_for_ever_stops_with_a_clear_error(tmp_path, changes, quick_backoff):
    changes.aws.create_table("T")
    changes.aws.answer_next("DescribeStream", _repeat_paging, times=NEVER)
    with pytest.raises(FatalError, match="paging repeats"):
        caught_up_within(changes, make_config(tmp_path / "cp.json", [{"name": "T"}]), MemorySink())


def test_describe_stream_paging_that_repeats_a_few_times_is_listed_again(tmp_path, changes):
    changes.aws.create_table("T")
    changes.many("T", 10)
    changes.aws.answer_next("DescribeStream", _repeat_paging, times=2)
    replicate_everything(tmp_path, changes)


def test_stop_keeps_its_deadline_while_get_records_is_stalled(tmp_path, changes):
    aws = changes.aws
    aws.create_table("T")
    changes.many("T", 10)
    stalled, release = threading.Event(), threading.Event()

    def stall(answer):
        stalled.set()
        release.wait(60)
        return answer

    aws.answer_next("GetRecords", stall)
    config = make_config(tmp_path / "cp.json", [{"name": "T"}], shutdown_timeout_s=1)
    bridge = BridgeThread(aws, config, MemorySink()).__enter__()
    try:
        assert stalled.wait(20), "GetRecords was not called"
        started = time.monotonic()
        bridge.pipeline.request_stop()
        bridge.thread.join(10)
        assert not bridge.thread.is_alive(), "the stop waited for the stalled call"
        assert time.monotonic() - started < 5
    finally:
        release.set()
    assert bridge.error is None


# -- DescribeTable denied or failing ----------------------------------------------------------------------------


def test_describe_table_access_denied_is_a_one_line_config_error(tmp_path, changes):
    changes.aws.create_table("T")
    changes.aws.fail_next("DescribeTable", "AccessDeniedException")
    with pytest.raises(ConfigError, match="describing table T: access denied"):
        caught_up_within(changes, make_config(tmp_path / "cp.json", [{"name": "T"}]), MemorySink())


def test_describe_table_5xx_at_start_is_retried(tmp_path, changes):
    changes.aws.create_table("T")
    changes.many("T", 10)
    changes.aws.fail_next("DescribeTable", "InternalServerError", times=3)
    replicate_everything(tmp_path, changes)


def test_describe_table_without_a_key_schema_is_retried_then_fatal(tmp_path, changes, quick_backoff):
    changes.aws.create_table("T")
    without_keys = lambda answer: {"Table": {k: v for k, v in answer["Table"].items() if k != "KeySchema"}}  # noqa: E731
    changes.aws.answer_next("DescribeTable", without_keys, times=NEVER)
    with pytest.raises(FatalError, match="KeySchema"):
        caught_up_within(changes, make_config(tmp_path / "cp.json", [{"name": "T"}]), MemorySink())


def test_status_reports_describe_table_failures_as_bridge_errors(tmp_path, changes):
    changes.aws.create_table("T")
    config = make_config(tmp_path / "cp.json", [{"name": "T"}])
    changes.aws.fail_next("DescribeTable", "AccessDeniedException")
    with pytest.raises(ConfigError, match="access denied"):
        table_status(config, changes.aws.dynamodb, changes.aws.streams, {})
    changes.aws.fail_next("DescribeTable", "ServiceUnavailable", times=1)
    with pytest.raises(RetriableError, match="ServiceUnavailable"):
        table_status(config, changes.aws.dynamodb, changes.aws.streams, {})


# -- caught up, shard by shard; parent cycles -------------------------------------------------------------------


def test_until_caught_up_returns_with_many_open_shards(tmp_path, changes):
    aws = changes.aws
    aws.create_table("T", shards=80)
    changes.many("T", 800, keys=400)

    def network_latency(answer):  # as over HTTP: 4 workers cannot keep 80 shards idle at one instant
        time.sleep(0.02)
        return answer

    aws.answer_next("GetRecords", network_latency, times=NEVER)
    sink = MemorySink()
    config = make_config(tmp_path / "cp.json", [{"name": "T"}], max_workers=4, poll_interval_ms=50)
    caught_up_within(changes, config, sink, timeout=60)
    assert_exactly_once_in_order(sink.events, changes.written)


def test_shards_in_a_parent_cycle_are_all_read(tmp_path, changes):
    aws = changes.aws
    aws.create_table("T", shards=2)
    first, second = aws.open_shards("T")
    with aws.lock:
        shards = aws.stream_of("T").shards
        shards[first].parent, shards[second].parent = second, first
    changes.many("T", 40)
    sink = replicate_everything(tmp_path, changes)
    assert {event.shard_id for event in sink.events} == {first, second}
