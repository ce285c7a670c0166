"""SIGTERM drains (flush, checkpoint, exit 0); a second signal exits at once without a checkpoint past
unacknowledged data; a bridge started while the broker is down waits for it and then delivers everything."""

from __future__ import annotations

import signal
import uuid

import boto3

from tests.bridge_process import run_bridge
from tests.fault.bridge_runner import BridgeRunner, bridge_config
from tests.fault.changes import TABLE, create_table
from tests.fault.delivery import topic_event_ids as _event_ids
from tests.polling import wait_for


def _put(endpoint: str, first: int, count: int) -> None:
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    for i in range(first, first + count):
        client.put_item(TableName=TABLE, Item={"pk": {"S": f"k{i % 7}"}, "v": {"N": str(i)}})


def test_sigterm_flushes_writes_the_checkpoint_and_exits_0(dynamodb, moto_endpoint, kafka_bootstrap, tmp_path):
    create_table(dynamodb)
    topic = f"stop-{uuid.uuid4().hex[:8]}"
    # No periodic checkpoint during the run: only the drain on SIGTERM can write it.
    checkpoint = tmp_path / "checkpoints.json"
    config = bridge_config(
        tmp_path / "bridge.yaml", moto_endpoint, kafka_bootstrap, topic, checkpoint={"interval_s": 3600}
    )
    _put(moto_endpoint, 0, 60)
    bridge = BridgeRunner(config, tmp_path / "bridge.log")
    bridge.start()
    try:
        wait_for(lambda: len(_event_ids(kafka_bootstrap, topic)) >= 60, 60, "60 records on the topic", interval=0.2)
        assert not checkpoint.exists()
        bridge.signal(signal.SIGTERM)
        assert bridge.wait(timeout=40) == 0, bridge.tail()
    finally:
        bridge.stop()
    assert checkpoint.exists(), "the drain must write the checkpoint"
    again = run_bridge("run", "--config", str(config), "--until-caught-up")
    assert again.returncode == 0, again.stderr
    ids = _event_ids(kafka_bootstrap, topic)
    assert len(ids) == 60 == len(set(ids)), "a restart after a drain re-sends nothing"


def test_second_signal_exits_at_once_and_a_start_without_broker_waits_for_it(
    dynamodb, moto_endpoint, kafka_broker, kafka_bootstrap, tmp_path
):
    create_table(dynamodb)
    topic = f"stop2-{uuid.uuid4().hex[:8]}"
    config = bridge_config(tmp_path / "bridge.yaml", moto_endpoint, kafka_bootstrap, topic, shutdown_timeout_s=3)
    checkpoint = tmp_path / "checkpoints.json"
    bridge = BridgeRunner(config, tmp_path / "bridge.log")
    broker_down = False
    try:
        _put(moto_endpoint, 0, 30)
        bridge.start()
        wait_for(lambda: len(_event_ids(kafka_bootstrap, topic)) >= 30, 60, "the first 30 records", interval=0.2)
        wait_for(checkpoint.exists, 10, "the first checkpoint", interval=0.2)
        kafka_broker.stop()
        broker_down = True
        _put(moto_endpoint, 30, 30)
        wait_for(lambda: "flush attempt 1 failed" in bridge.log.read_text(), 30, "a failed flush", interval=0.2)
        held = checkpoint.read_text()

        bridge.signal(signal.SIGTERM)
        wait_for(lambda: "SIGTERM received: draining" in bridge.log.read_text(), 5, "the drain to start", interval=0.2)
        bridge.signal(signal.SIGTERM)
        assert bridge.wait(timeout=5) == 128 + signal.SIGTERM, bridge.tail()
        assert "second SIGTERM: exiting at once" in bridge.log.read_text()
        assert checkpoint.read_text() == held, "no checkpoint past unacknowledged records"

        waiting = BridgeRunner(config, tmp_path / "waiting.log")
        waiting.env = bridge.env
        waiting.start()
        bridge = waiting
        wait_for(lambda: "not ready (attempt 2)" in waiting.log.read_text(), 40, "two startup attempts", interval=0.2)
        kafka_broker.start()
        broker_down = False
        wait_for(lambda: len(set(_event_ids(kafka_bootstrap, topic))) >= 60, 60, "all 60 records", interval=0.2)
        waiting.signal(signal.SIGTERM)
        assert waiting.wait(timeout=40) == 0, waiting.tail()
    finally:
        bridge.stop()
        if broker_down:
            kafka_broker.start()
    assert len(set(_event_ids(kafka_bootstrap, topic))) == 60
