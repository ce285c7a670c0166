"""Kafka failures that must stop the bridge with one clear line instead of being retried forever, against the
real test broker: a SASL login the broker refuses (its SASL_PLAINTEXT listener accepts one PLAIN user), and a
topic deleted while the bridge runs."""

from __future__ import annotations

import os
import subprocess
import uuid
from contextlib import closing

import boto3
import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import SaslAuthenticationFailedError

from bridge.secret import Secret
from bridge.sinks.kafka import KafkaConfig
from bridge.sinks.kafka_client import client_options
from bridge.sinks.kafka_login import login_refusal
from tests.bridge_process import run_bridge, write_config
from tests.fault.bridge_runner import BridgeRunner, bridge_config
from tests.fault.changes import TABLE, create_table, stream_changes
from tests.fault.delivery import topic_event_ids
from tests.polling import wait_for

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


def test_the_sasl_login_check_reads_every_refusal_and_accepts_the_right_password(sasl_broker):
    """The broker sends its refusal just before it closes the connection; arriving with the close, it is still
    read (kafka-python 3.0 drops it then, so its own connection attempts often never see it)."""

    def sasl(password: str) -> KafkaConfig:
        return KafkaConfig(
            bootstrap_servers=sasl_broker.sasl_bootstrap,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            sasl_username=sasl_broker.SASL_USER,
            sasl_password=Secret(password),
        )

    refusals = [login_refusal(client_options(sasl(WRONG_PASSWORD))) for _ in range(5)]
    assert all(isinstance(refusal, SaslAuthenticationFailedError) for refusal in refusals), refusals
    assert login_refusal(client_options(sasl(sasl_broker.SASL_PASSWORD))) is None


@pytest.mark.parametrize("create_topics", [False, True], ids=["create_topics_off", "create_topics_on"])
def test_a_topic_deleted_mid_run_stops_the_bridge_naming_it_without_recreating_it(
    dynamodb, moto_endpoint, kafka_bootstrap, tmp_path, create_topics
):
    create_table(dynamodb)
    topic = f"deleted-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 3, 1)])
        config = bridge_config(
            tmp_path / "bridge.yaml",
            moto_endpoint,
            kafka_bootstrap,
            topic,
            sink={"create_topics": create_topics},
            shutdown_timeout_s=2,  # also the longest flush attempt: the retries come quickly
        )
        bridge = BridgeRunner(config, tmp_path / "bridge.log")
        _put(moto_endpoint, 0, 10)
        bridge.start()
        try:
            wait_for(
                lambda: len(topic_event_ids(kafka_bootstrap, topic)) >= 10, 60, "the first 10 records", interval=0.2
            )
            admin.delete_topics([topic])
            wait_for(lambda: topic not in admin.list_topics(), 30, "the topic to be deleted", interval=0.2)
            _put(moto_endpoint, 10, 1)
            try:
                code = bridge.wait(timeout=90)
            except subprocess.TimeoutExpired:
                code = None
        finally:
            bridge.stop()
        assert topic not in admin.list_topics(), "the bridge (or the broker, asked by it) recreated the topic"
    finally:
        admin.close()

    log = bridge.log.read_text()
    assert code is not None, f"the bridge still ran 90 s after its topic was deleted:\n{bridge.tail()}"
    assert code == 1, bridge.tail()
    assert "Traceback" not in log, bridge.tail()
    errors = [line for line in log.splitlines() if line.startswith("cdc-bridge: error:")]
    assert len(errors) == 1 and topic in errors[0] and "no longer exist" in errors[0], bridge.tail()

    # The checkpoint stayed before the record that never reached Kafka: once the topic is back (created by the
    # operator, or by the next start with `create_topics`), the next run delivers it.
    if not create_topics:
        with closing(KafkaAdminClient(bootstrap_servers=kafka_bootstrap)) as admin:
            admin.create_topics([NewTopic(topic, 3, 1)])
    again = run_bridge("run", "--config", str(config), "--until-caught-up")
    assert again.returncode == 0, again.stderr
    last = stream_changes(moto_endpoint)[-1][0]
    assert last in topic_event_ids(kafka_bootstrap, topic), "the next run sends the unacknowledged record"
