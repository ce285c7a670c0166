"""SIGTERM while the broker is frozen (SIGSTOP: its sockets stay open, nothing answers): the stop keeps to
`shutdown_timeout_s` plus the bounded close of the Kafka producers (the sink's and the dead-letter one), ends
with exit 1 and no traceback, says once how many records were left unacknowledged, and holds the checkpoint
before them, so the next run delivers them."""

from __future__ import annotations

import os
import re
import signal
import time
import uuid

import boto3
import pytest

from tests.bridge_process import run_bridge
from tests.fault.bridge_runner import BridgeRunner, bridge_config
from tests.fault.changes import TABLE, create_table
from tests.fault.delivery import topic_event_ids, topic_records
from tests.polling import wait_for

SHUTDOWN_TIMEOUT_S = 3
MAX_REQUEST = 4000
UNCONFIRMED = re.compile(r"kafka sink closed with (\d+) record\(s\) not acknowledged")


def _put(endpoint: str, first: int, count: int) -> None:
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    for i in range(first, first + count):
        client.put_item(TableName=TABLE, Item={"pk": {"S": f"k{i % 7}"}, "v": {"N": str(i)}})


def _sigterm_while_frozen(bridge: BridgeRunner, broker, checkpoint, while_frozen) -> tuple[int | None, str, float]:
    """After the first checkpoint: freeze the broker, `while_frozen()` (changes that then wait in a producer),
    wait for the flush it fails, SIGTERM the bridge; returns its exit code, the checkpoint held and the stop time."""
    wait_for(checkpoint.exists, 10, "the first checkpoint", interval=0.2)
    os.kill(broker.process.pid, signal.SIGSTOP)
    try:
        while_frozen()
        wait_for(
            lambda: "flush attempt 1 failed" in bridge.log.read_text(),
            30,
            "a flush the frozen broker fails",
            interval=0.2,
        )
        held = checkpoint.read_text()
        bridge.signal(signal.SIGTERM)
        signalled = time.monotonic()
        # A bound that catches a stop hanging on the broker, far above the deadline plus the producers' close.
        code = bridge.wait(timeout=SHUTDOWN_TIMEOUT_S + 30)
        return code, held, time.monotonic() - signalled
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)


def test_sigterm_with_a_frozen_broker_stops_in_time_without_traceback_and_holds_the_checkpoint(
    dynamodb, moto_endpoint, kafka_broker, kafka_bootstrap, tmp_path
):
    if kafka_broker is None:
        pytest.skip("freezes the test run's own broker (KAFKA_BOOTSTRAP_SERVERS is set)")
    create_table(dynamodb)
    topic = f"frozen-{uuid.uuid4().hex[:8]}"
    config = bridge_config(
        tmp_path / "bridge.yaml", moto_endpoint, kafka_bootstrap, topic, shutdown_timeout_s=SHUTDOWN_TIMEOUT_S
    )
    checkpoint = tmp_path / "checkpoints.json"
    bridge = BridgeRunner(config, tmp_path / "bridge.log")
    try:
        _put(moto_endpoint, 0, 20)
        bridge.start()
        wait_for(lambda: len(topic_event_ids(kafka_bootstrap, topic)) >= 20, 60, "the first 20 records", interval=0.2)
        code, held, stop_s = _sigterm_while_frozen(
            bridge, kafka_broker, checkpoint, lambda: _put(moto_endpoint, 20, 10)
        )
    finally:
        bridge.stop()

    log = bridge.log.read_text()
    assert code == 1, bridge.tail()
    assert "Traceback" not in log, bridge.tail()
    unconfirmed = [found for found in map(UNCONFIRMED.search, log.splitlines()) if found]
    assert len(unconfirmed) == 1, bridge.tail()
    # The 10 changes made while the broker was frozen, or the first of them: reading pauses at the failed flush.
    assert 1 <= int(unconfirmed[0].group(1)) <= 10, unconfirmed[0].string
    assert "the checkpoint stays before them" in unconfirmed[0].string
    assert checkpoint.read_text() == held, "no checkpoint past the records the broker never acknowledged"
    print(f"stop took {stop_s:.1f} s with shutdown_timeout_s={SHUTDOWN_TIMEOUT_S}")

    again = run_bridge("run", "--config", str(config), "--until-caught-up")
    assert again.returncode == 0, again.stderr
    assert len(set(topic_event_ids(kafka_bootstrap, topic))) == 30, "the next run delivers what was unconfirmed"


def test_sigterm_with_a_frozen_broker_and_a_dead_letter_waiting_closes_the_dlq_producer_too(
    dynamodb, moto_endpoint, kafka_broker, kafka_bootstrap, tmp_path
):
    if kafka_broker is None:
        pytest.skip("freezes the test run's own broker (KAFKA_BOOTSTRAP_SERVERS is set)")
    create_table(dynamodb)
    topic = f"frozen-dlq-{uuid.uuid4().hex[:8]}"
    config = bridge_config(
        tmp_path / "bridge.yaml",
        moto_endpoint,
        kafka_bootstrap,
        topic,
        table={"on_poison": "dlq"},
        sink={"max_request_size": MAX_REQUEST},
        shutdown_timeout_s=SHUTDOWN_TIMEOUT_S,
    )
    checkpoint = tmp_path / "checkpoints.json"
    bridge = BridgeRunner(config, tmp_path / "bridge.log")
    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    try:
        # Too large for max_request_size: poison, so its dead letter goes to the dead-letter producer.
        big = {"pk": {"S": "big"}, "blob": {"S": "x" * 3 * MAX_REQUEST}}
        _put(moto_endpoint, 0, 5)
        client.put_item(TableName=TABLE, Item=big)  # the dead-letter producer learns its topic's partitions
        bridge.start()
        wait_for(
            lambda: len(topic_records(kafka_bootstrap, f"{topic}.dlq")) == 1, 60, "the first dead letter", interval=0.2
        )
        # its dead letter then waits in the producer
        code, held, _ = _sigterm_while_frozen(
            bridge, kafka_broker, checkpoint, lambda: client.put_item(TableName=TABLE, Item=big)
        )
    finally:
        bridge.stop()

    log = bridge.log.read_text()
    assert code == 1, bridge.tail()
    assert "Traceback" not in log, bridge.tail()
    unconfirmed = [line for line in log.splitlines() if "dead-letter producer closed with" in line]
    assert len(unconfirmed) == 1 and "1 dead letter(s) not acknowledged" in unconfirmed[0], bridge.tail()
    assert checkpoint.read_text() == held, "no checkpoint past a dead letter the broker never acknowledged"
