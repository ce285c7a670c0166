"""Kafka failures that must stop the bridge with one clear line instead of being retried forever, against the
real test broker: a SASL login the broker refuses (its SASL_PLAINTEXT listener accepts one PLAIN user), and a
topic deleted while the bridge runs."""

from __future__ import annotations

import os
import subprocess
import uuid

import boto3
import pytest

from tests.bridge_process import run_bridge, write_config
from tests.fault.changes import TABLE, create_table
from tests.fault.delivery import topic_event_ids

WRONG_PASSWORD = "not-the-password-3141"


def _put(endpoint: str, first: int, count: int) -> None:
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    for i in range(first, first + count):
        client.put_item(TableName=TABLE, Item={"pk": {"S": f"k{i % 5}"}, "v": {"N": str(i)}})


def _sasl_config(tmp_path, moto_endpoint, kafka_broker, topic: str) -> str:
    sink = {
        "type": "kafka",
        "bootstrap_servers": kafka_broker.sasl_bootstrap,
        "topic": topic,
        "create_topics": True,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_username": kafka_broker.SASL_USER,
        "sasl_password": "${TEST_KAFKA_PASSWORD}",
    }
    data = {
        "source": {"endpoint_url": moto_endpoint, "region": "us-east-1", "poll_interval_ms": 50},
        "tables": [{"name": TABLE}],
        "sinks": [sink],
        "checkpoint": {"path": str(tmp_path / "checkpoints.json"), "interval_s": 0.5},
    }
    return str(write_config(tmp_path / "bridge.yaml", data))


@pytest.fixture
def sasl_broker(kafka_broker):
    if kafka_broker is None:
        pytest.skip("the SASL listener exists only on the test run's own broker (KAFKA_BOOTSTRAP_SERVERS is set)")
    return kafka_broker


def test_the_sasl_listener_delivers_with_the_right_password(
    dynamodb, moto_endpoint, sasl_broker, kafka_bootstrap, tmp_path
):
    create_table(dynamodb)
    _put(moto_endpoint, 0, 5)
    topic = f"sasl-ok-{uuid.uuid4().hex[:8]}"
    config = _sasl_config(tmp_path, moto_endpoint, sasl_broker, topic)

    result = run_bridge(
        "run",
        "--config",
        config,
        "--until-caught-up",
        env={**os.environ, "TEST_KAFKA_PASSWORD": sasl_broker.SASL_PASSWORD},
    )

    assert result.returncode == 0, result.stderr
    assert len(topic_event_ids(kafka_bootstrap, topic)) == 5


def test_a_refused_sasl_login_stops_at_once_naming_brokers_mechanism_and_user_not_the_password(
    dynamodb, moto_endpoint, sasl_broker, tmp_path
):
    create_table(dynamodb)
    _put(moto_endpoint, 0, 5)
    config = _sasl_config(tmp_path, moto_endpoint, sasl_broker, f"sasl-bad-{uuid.uuid4().hex[:8]}")

    try:
        result = run_bridge(
            "run",
            "--config",
            config,
            "--until-caught-up",
            timeout=60,
            env={**os.environ, "TEST_KAFKA_PASSWORD": WRONG_PASSWORD},
        )
    except subprocess.TimeoutExpired as expired:
        stderr = expired.stderr.decode(errors="replace") if isinstance(expired.stderr, bytes) else expired.stderr
        pytest.fail(f"a refused login is still retried after 60 s:\n{(stderr or '')[-2000:]}")

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert WRONG_PASSWORD not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("cdc-bridge: error:")]
    assert len(errors) == 1, result.stderr
    line = errors[0]
    assert sasl_broker.sasl_bootstrap in line and "PLAIN" in line and repr(sasl_broker.SASL_USER) in line, line
    assert "not ready (attempt 2)" not in result.stderr, "a refused login is not a broker that is not ready yet"
