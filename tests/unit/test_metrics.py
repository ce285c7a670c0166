"""The Prometheus metrics the pipeline, source and sinks record (bridge.ops.metrics)."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from botocore.exceptions import ClientError
from prometheus_client import CollectorRegistry, generate_latest

from bridge.checkpoint import ShardCheckpoint
from bridge.errors import RetriableError
from bridge.ops import metrics
from bridge.ops.lag import RETENTION_S, LagTracker
from bridge.ops.logs import Every

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2026-01-01T00:00:00.000"


@dataclass(frozen=True)
class Event:
    table: str
    op: str


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def record(sequence: int, created: float) -> dict:
    return {"dynamodb": {"SequenceNumber": str(sequence), "ApproximateCreationDateTime": created}}


def retriable(code: str) -> RetriableError:
    cause = ClientError({"Error": {"Code": code, "Message": "slow down"}}, "GetRecords")
    try:
        raise RetriableError(str(cause)) from cause
    except RetriableError as error:
        return error


def test_events_written_are_counted_per_table_and_op():
    table = unique("Orders")
    batches_before = metrics.value("cdc_bridge_batch_size_count") or 0

    metrics.events_written([Event(table, "c"), Event(table, "c"), Event(table, "u"), Event(table, "d")])
    metrics.events_written([Event(table, "c")])

    assert metrics.value("cdc_bridge_records_written_total", {"table": table, "op": "c"}) == 3
    assert metrics.value("cdc_bridge_records_written_total", {"table": table, "op": "u"}) == 1
    assert metrics.value("cdc_bridge_records_written_total", {"table": table, "op": "d"}) == 1
    assert metrics.value("cdc_bridge_batch_size_count") == batches_before + 2


def test_records_read_count_calls_records_and_set_the_shards_iterator_age():
    table, shard = unique("Orders"), unique("shard")
    now = time.time()

    metrics.shard_started(table, ARN, shard)
    metrics.records_read(table, ARN, shard, [record(1, now - 120), record(2, now - 60)])
    metrics.records_read(table, ARN, shard, [])
    metrics.get_records_failed(table, retriable("LimitExceededException"))
    metrics.get_records_failed(table, retriable("InternalServerError"))
    metrics.records_read(table, ARN, shard, [])

    assert metrics.value("cdc_bridge_records_read_total", {"table": table}) == 2
    assert metrics.value("cdc_bridge_get_records_calls_total", {"table": table}) == 5
    assert metrics.value("cdc_bridge_get_records_retries_total", {"table": table, "reason": "throttled"}) == 1
    assert metrics.value("cdc_bridge_get_records_retries_total", {"table": table, "reason": "error"}) == 1
    assert metrics.value("cdc_bridge_iterator_age_seconds", {"table": table, "shard": shard}) == 0.0
    headroom = metrics.value("cdc_bridge_retention_headroom_seconds", {"table": table, "shard": shard})
    assert RETENTION_S - 200 < headroom < RETENTION_S - 120 + 1
    assert metrics.value("cdc_bridge_shards", {"table": table, "state": "active"}) == 1


def test_checkpoint_written_frees_headroom_and_finishes_shards():
    table, shard = unique("Orders"), unique("shard")
    now = time.time()
    metrics.records_read(table, ARN, shard, [record(7, now - 3600)])
    metrics.records_read(table, ARN, shard, [])
    metrics.events_written([Event(table, "c")])
    assert metrics.value("cdc_bridge_checkpoint_age_seconds") >= 0

    metrics.checkpoint_written({(ARN, shard): ShardCheckpoint("7")})
    assert metrics.value("cdc_bridge_retention_headroom_seconds", {"table": table, "shard": shard}) == RETENTION_S
    assert metrics.value("cdc_bridge_checkpoint_age_seconds") == 0.0
    assert metrics.value("cdc_bridge_last_checkpoint_timestamp_seconds") >= now

    metrics.checkpoint_written({(ARN, shard): ShardCheckpoint("7", finished=True)})
    assert metrics.value("cdc_bridge_retention_headroom_seconds", {"table": table, "shard": shard}) is None
    assert metrics.value("cdc_bridge_shards", {"table": table, "state": "active"}) == 0
    assert metrics.value("cdc_bridge_shards", {"table": table, "state": "finished"}) == 1


def test_poison_sink_errors_and_send_latency_are_recorded():
    table = unique("Orders")
    sends_before = metrics.value("cdc_bridge_kafka_send_latency_seconds_count") or 0

    metrics.poison_record(table, "skip")
    metrics.sink_error("kafka", TimeoutError("no ack"))
    metrics.kafka_send_latency(0.004)

    assert metrics.value("cdc_bridge_poison_records_total", {"table": table, "policy": "skip"}) == 1
    assert metrics.value("cdc_bridge_sink_errors_total", {"sink": "kafka", "error": "TimeoutError"}) >= 1
    assert metrics.value("cdc_bridge_kafka_send_latency_seconds_count") == sends_before + 1
    assert metrics.value("cdc_bridge_kafka_send_latency_seconds_bucket", {"le": "0.005"}) >= 1


def test_retention_warning_flag_follows_the_threshold():
    tracker = LagTracker(warning_s=6 * 3600)
    registry = CollectorRegistry()
    registry.register(metrics.LagCollector(tracker))
    now = time.time()

    tracker.read("Orders", ARN, "shard-1", [record(1, now - 20 * 3600)], now=now)
    assert registry.get_sample_value("cdc_bridge_retention_warning") == 1.0
    assert registry.get_sample_value("cdc_bridge_retention_warning_threshold_seconds") == 6 * 3600

    tracker.warning_s = 3 * 3600
    assert registry.get_sample_value("cdc_bridge_retention_warning") == 0.0


def test_every_metric_is_prefixed_and_exposed_as_text():
    text = generate_latest(metrics.REGISTRY).decode()
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    ours = {name for name in names if not name.startswith("process_")}
    assert ours and all(name.startswith("cdc_bridge_") for name in ours)
    assert "cdc_bridge_iterator_age_seconds" in names and "cdc_bridge_retention_headroom_seconds" in names


def test_checkpoint_written_logs_at_info_at_most_once_per_interval(caplog, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(metrics, "_checkpoint_log", Every(60.0, clock=lambda: clock[0]))
    caplog.set_level(logging.DEBUG, logger="bridge.ops.metrics")

    for step in range(5):
        clock[0] = 1000.0 + step * 20
        metrics.checkpoint_written({})

    levels = [r.levelno for r in caplog.records if "checkpoint written" in r.getMessage()]
    assert levels == [logging.INFO, logging.DEBUG, logging.DEBUG, logging.INFO, logging.DEBUG]


def test_a_failing_table_is_a_source_problem_until_its_next_successful_read():
    table = unique("Orders")
    metrics.get_records_failed(table, retriable("LimitExceededException"))
    assert not [p for p in metrics.source_problems() if table in p]  # throttling is not an outage

    metrics.get_records_failed(table, retriable("InternalServerError"))
    (problem,) = [p for p in metrics.source_problems() if table in p]
    assert problem.startswith(f"source: GetRecords of table {table} failing: ")

    metrics.records_read(table, ARN, unique("shard"), [])
    assert not [p for p in metrics.source_problems() if table in p]
