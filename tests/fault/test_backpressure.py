"""While a sink cannot confirm a flush (its broker is away), the pipeline reads nothing more and holds
its checkpoint; when the sink recovers it resumes and delivers everything in order.

The sink here is a recording double of the sink contract (no Kafka involved): it makes the pipeline's
behaviour observable - how many events it was handed while flushes failed.
"""

from __future__ import annotations

import threading

import boto3

from bridge.config import parse_config
from bridge.errors import FatalError
from bridge.pipeline import Pipeline
from tests.fault.changes import TABLE, create_table
from tests.fault.recording_sink import GatedSink
from tests.polling import wait_for


def _put(endpoint: str, first: int, count: int) -> None:
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    for i in range(first, first + count):
        client.put_item(TableName=TABLE, Item={"pk": {"S": f"k{i % 5}"}, "v": {"N": str(i)}})


def test_failing_flush_pauses_reading_and_holds_the_checkpoint_until_the_sink_recovers(
    dynamodb, moto_endpoint, tmp_path
):
    create_table(dynamodb)
    checkpoint = tmp_path / "checkpoints.json"
    config = parse_config(
        f"""
source: {{endpoint_url: "{moto_endpoint}", poll_interval_ms: 50}}
tables: [{{name: {TABLE}, snapshot: never}}]
sinks: [{{type: stdout}}]
checkpoint: {{path: "{checkpoint}", interval_s: 0.2}}
"""
    )
    sink = GatedSink()
    pipeline = Pipeline(config, sinks=[sink])
    runner = threading.Thread(target=pipeline.run, daemon=True)
    _put(moto_endpoint, 0, 50)
    runner.start()
    try:
        wait_for(lambda: sink.failed_flushes >= 1, 30, "a failed flush", interval=0.2)
        handed = len(sink.events)
        _put(moto_endpoint, 50, 50)
        attempts = sink.failed_flushes
        wait_for(lambda: sink.failed_flushes >= attempts + 2, 30, "two more flush attempts", interval=0.2)
        assert len(sink.events) == handed, "no more events may be read while the flush fails"
        assert not checkpoint.exists(), "no checkpoint before the sink confirmed"

        sink.gate.set()
        wait_for(lambda: len(sink.events) == 100, 30, "all 100 events after recovery", interval=0.2)
        wait_for(checkpoint.exists, 10, "the checkpoint after recovery", interval=0.2)
    finally:
        pipeline.request_stop()
        runner.join(timeout=30)
    assert [int(e.after["v"]) for e in sink.events] == list(range(100))


def test_stop_gives_up_at_shutdown_timeout_without_writing_the_checkpoint(dynamodb, moto_endpoint, tmp_path):
    create_table(dynamodb)
    checkpoint = tmp_path / "checkpoints.json"
    config = parse_config(
        f"""
source: {{endpoint_url: "{moto_endpoint}", poll_interval_ms: 50}}
tables: [{{name: {TABLE}, snapshot: never}}]
sinks: [{{type: stdout}}]
checkpoint: {{path: "{checkpoint}", interval_s: 0.2}}
shutdown_timeout_s: 1
"""
    )
    sink = GatedSink()
    pipeline = Pipeline(config, sinks=[sink])
    failure: list[BaseException] = []

    def run() -> None:
        try:
            pipeline.run()
        except BaseException as error:
            failure.append(error)

    _put(moto_endpoint, 0, 10)
    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    wait_for(lambda: sink.failed_flushes >= 1, 30, "a failed flush", interval=0.2)
    pipeline.request_stop()
    runner.join(timeout=30)

    assert not runner.is_alive()
    (error,) = failure
    assert isinstance(error, FatalError) and "did not acknowledge within shutdown_timeout_s (1 s)" in str(error)
    assert not checkpoint.exists()
