"""What an operator sees of a running bridge: /metrics, /healthz, /ready, `status`, logs and the progress line.

Real moto server and real Kafka broker; the bridge runs as the real `cdc-bridge` command in a subprocess.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.bridge_process import Bridge, run_bridge, write_config
from tests.kafka_topic import read_topic
from tests.services import free_port
from tests.tables import create_stream_table

DAY = 24 * 3600.0


def create_orders(dynamodb, name: str = "Orders") -> None:
    create_stream_table(dynamodb, name, key="id")


def put(dynamodb, table: str, item_id: str, note: str = "x") -> None:
    dynamodb.put_item(TableName=table, Item={"id": {"S": item_id}, "note": {"S": note}})


def kafka_sink(bootstrap: str, topic: str) -> dict:
    return {"type": "kafka", "bootstrap_servers": bootstrap, "topic": topic, "create_topics": True, "partitions": 1}


def make_config(tmp_path: Path, moto_endpoint: str, tables: list[str], sinks: list[dict], **metrics) -> Path:
    data = {
        "source": {"endpoint_url": moto_endpoint, "region": "us-east-1", "poll_interval_ms": 50},
        "tables": [{"name": name} for name in tables],
        "sinks": sinks,
        "checkpoint": {"path": str(tmp_path / "checkpoints.json"), "interval_s": 0.2},
        "metrics": {"host": "127.0.0.1", **metrics},
    }
    return write_config(tmp_path / "bridge.yaml", data)


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    status, text = http_get(port, "/metrics")
    if status != 200:
        return {}
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def samples_named(samples: dict, name: str) -> dict[tuple, float]:
    return {labels: value for (n, labels), value in samples.items() if n == name}


def test_metrics_count_delivered_records_per_table_and_iterator_age_falls_to_zero(
    tmp_path, dynamodb, moto_endpoint, kafka_bootstrap
):
    create_orders(dynamodb, "Orders")
    create_orders(dynamodb, "Refunds")
    for i in range(5):
        put(dynamodb, "Orders", f"o{i}")
    put(dynamodb, "Orders", "o0", "changed")
    dynamodb.delete_item(TableName="Orders", Key={"id": {"S": "o1"}})
    for i in range(3):
        put(dynamodb, "Refunds", f"r{i}")
    topic = f"obs-{uuid.uuid4().hex[:8]}.{{table}}"
    port = free_port()
    config = make_config(
        tmp_path, moto_endpoint, ["Orders", "Refunds"], [kafka_sink(kafka_bootstrap, topic)], port=port
    )

    bridge = Bridge(config)
    try:

        def caught_up():
            samples = scrape(port)
            written = samples_named(samples, "cdc_bridge_records_written_total")
            ages = samples_named(samples, "cdc_bridge_iterator_age_seconds")
            done = sum(written.values()) == 10 and len(ages) == 2 and all(age == 0 for age in ages.values())
            return samples if done else None

        samples = bridge.expect(caught_up, "10 records written and every iterator age at 0")
        orders = read_topic(kafka_bootstrap, topic.format(table="Orders"))
        refunds = read_topic(kafka_bootstrap, topic.format(table="Refunds"))
        ops = [dict(r.headers)["op"].decode() for r in orders]
        assert len(orders) == 7 and len(refunds) == 3
        for op in "cud":
            assert sample(samples, "cdc_bridge_records_written_total", table="Orders", op=op) == ops.count(op)
        assert sample(samples, "cdc_bridge_records_written_total", table="Refunds", op="c") == len(refunds)
        assert sample(samples, "cdc_bridge_records_read_total", table="Orders") == 7
        bridge.expect(
            lambda: sample(scrape(port), "cdc_bridge_kafka_send_latency_seconds_count") == 2,
            "an acknowledgement latency for each table's batch (one read each, topics of one partition)",
        )
        assert sample(samples, "cdc_bridge_shards", table="Orders", state="active") == 1
        # the records were already waiting when the bridge started: when read, their age was above zero
        assert sample(samples, "cdc_bridge_read_record_age_seconds_count") == 2
        assert sample(samples, "cdc_bridge_read_record_age_seconds_sum") > 0
        assert sample(samples, "cdc_bridge_get_records_calls_total", table="Orders") >= 2

        for i in range(4):
            put(dynamodb, "Refunds", f"late{i}")
        bridge.expect(
            lambda: sample(scrape(port), "cdc_bridge_records_written_total", table="Refunds", op="c") == 7,
            "the later records counted",
        )
        assert len(read_topic(kafka_bootstrap, topic.format(table="Refunds"))) == 7

        def all_checkpointed():
            samples = scrape(port)
            headrooms = samples_named(samples, "cdc_bridge_retention_headroom_seconds")
            return sample(samples, "cdc_bridge_checkpoint_age_seconds") == 0 and list(headrooms.values()) == [DAY, DAY]

        # caught up and checkpointed: no record is at risk, so both shards have DynamoDB's full 24 h of headroom
        bridge.expect(all_checkpointed, "the checkpoint to cover everything, leaving 24 h of headroom")
        assert http_get(port, "/healthz")[0] == 200
    finally:
        assert bridge.stop() == 0, bridge.stderr


def test_ready_turns_503_while_the_broker_is_down_and_200_when_it_is_back(
    tmp_path, dynamodb, moto_endpoint, kafka_bootstrap, kafka_broker
):
    if kafka_broker is None:
        pytest.skip("needs the test run's own broker to stop and start (KAFKA_BOOTSTRAP_SERVERS is external)")
    create_orders(dynamodb)
    put(dynamodb, "Orders", "o1")
    topic = f"ready-{uuid.uuid4().hex[:8]}.{{table}}"
    port = free_port()
    config = make_config(tmp_path, moto_endpoint, ["Orders"], [kafka_sink(kafka_bootstrap, topic)], port=port)
    data = yaml.safe_load(config.read_text())
    write_config(config, {**data, "shutdown_timeout_s": 1})  # flush attempts give up (and retry) after 1 s

    bridge = Bridge(config)
    try:
        bridge.expect(lambda: http_get(port, "/ready")[0] == 200, "/ready to answer 200")
        kafka_broker.stop()
        try:
            _, body = bridge.expect(
                lambda: (answer := http_get(port, "/ready"))[0] == 503 and answer, "/ready to answer 503"
            )
            not_ready = [f"sinks[0] KafkaSink: no connection to a Kafka broker at {kafka_bootstrap}"]
            assert json.loads(body) == {"ready": False, "not_ready": not_ready}
            assert http_get(port, "/healthz")[0] == 200  # alive, just not ready
            put(dynamodb, "Orders", "o2")  # waits in the producer while the broker is away
            bridge.expect(
                lambda: sample(scrape(port), "cdc_bridge_sink_errors_total", sink="kafka", error="FlushTimeout"),
                "a failed flush counted as a sink error",
            )
            assert http_get(port, "/ready")[0] == 503
        finally:
            kafka_broker.start()
        bridge.expect(lambda: http_get(port, "/ready") == (200, '{"ready": true}\n'), "/ready to answer 200 again")
        bridge.expect(
            lambda: (
                sample(scrape(port), "cdc_bridge_checkpoint_age_seconds") == 0
                and sample(scrape(port), "cdc_bridge_records_written_total", table="Orders", op="c") == 2
            ),
            "the record written during the outage checkpointed",
        )
        assert len(read_topic(kafka_bootstrap, topic.format(table="Orders"))) == 2
    finally:
        assert bridge.stop() == 0, bridge.stderr


def test_retention_warning_is_logged_and_flagged_when_headroom_is_below_threshold(tmp_path, dynamodb, moto_endpoint):
    create_orders(dynamodb)
    put(dynamodb, "Orders", "o1")
    # a 24 h threshold: any record that is not yet checkpointed is closer than that to DynamoDB's trimming
    config = make_config(tmp_path, moto_endpoint, ["Orders"], [{"type": "stdout"}], retention_warning_hours=24)

    result = run_bridge("run", "--config", str(config), "--until-caught-up")

    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "retention headroom of shard" in line]
    assert warnings and " WARNING " in warnings[0] and "table Orders" in warnings[0]
    assert "(threshold 24.0 h)" in warnings[0]
    later = result.stderr.split(warnings[0], 1)[1]
    assert "retention headroom of shard" in later and "is above the threshold again" in later


def test_status_shows_checkpoint_iterator_age_and_headroom_per_shard(tmp_path, dynamodb, moto_endpoint):
    create_orders(dynamodb)
    put(dynamodb, "Orders", "o1")
    config = make_config(tmp_path, moto_endpoint, ["Orders"], [{"type": "stdout"}])

    def status() -> list[dict]:
        result = run_bridge("status", "--config", str(config), "--format", "json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["shards"]

    (before,) = status()
    assert before["table"] == "Orders" and before["checkpoint"] is None and before["state"] == "behind"
    assert 0 <= before["iterator_age_s"] < 3600 and before["headroom_s"] == DAY - before["iterator_age_s"]

    assert run_bridge("run", "--config", str(config), "--until-caught-up").returncode == 0
    (after,) = status()
    stored = json.loads((tmp_path / "checkpoints.json").read_text())["streams"]
    (sequence,) = [entry["sequence_number"] for shards in stored.values() for entry in shards.values()]
    assert after["shard_id"] == before["shard_id"] and after["checkpoint"] == sequence
    assert after["state"] == "caught up" and after["iterator_age_s"] == 0 and after["headroom_s"] == DAY
    assert after["finished"] is False

    put(dynamodb, "Orders", "o2")
    (behind,) = status()
    assert behind["state"] == "behind" and behind["checkpoint"] == sequence and behind["headroom_s"] < DAY

    text = run_bridge("status", "--config", str(config))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith("table Orders  stream arn:aws:dynamodb:")
    assert lines[1].split() == ["shard", "checkpoint", "finished", "state", "iterator", "age", "headroom"]
    assert lines[2].split()[:4] == [after["shard_id"], sequence, "no", "behind"]


def test_json_logs_are_one_object_per_line_with_lifecycle_events_and_no_payloads(tmp_path, dynamodb, moto_endpoint):
    create_orders(dynamodb)
    secret = f"payload-{uuid.uuid4().hex}"
    put(dynamodb, "Orders", "o1", secret)
    config = make_config(tmp_path, moto_endpoint, ["Orders"], [{"type": "stdout"}])

    result = run_bridge("--log-format", "json", "run", "--config", str(config), "--until-caught-up")

    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    messages = [entry["message"] for entry in entries]
    assert any(m.startswith("table Orders: stream ") for m in messages)
    assert any(m.startswith("shard ") and " of Orders started" in m for m in messages)
    assert any(m.startswith("checkpoint written") for m in messages)
    assert all({"ts", "level", "logger", "message"} <= set(entry) for entry in entries)
    assert secret in result.stdout and secret not in result.stderr
    assert "events ·" not in result.stderr  # no progress line when stderr is not a terminal

    missing = make_config(tmp_path, moto_endpoint, ["Nope"], [{"type": "stdout"}])
    failed = run_bridge("--log-format", "json", "run", "--config", str(missing), "--until-caught-up")
    assert failed.returncode == 2
    last = [json.loads(line) for line in failed.stderr.splitlines()][-1]
    assert last["level"] == "ERROR" and last["message"].startswith("cdc-bridge: config error: table 'Nope'")


def test_progress_line_is_shown_when_stderr_is_a_terminal(tmp_path, dynamodb, moto_endpoint):
    create_orders(dynamodb)
    put(dynamodb, "Orders", "o1")
    config = make_config(tmp_path, moto_endpoint, ["Orders"], [{"type": "stdout"}])
    primary, secondary = os.openpty()
    output: list[bytes] = []

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                return
            if not chunk:
                return
            output.append(chunk)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    bridge = Bridge(config, stderr=secondary)
    os.close(secondary)
    try:
        bridge.expect(
            lambda: (
                "\r\x1b[Kcdc-bridge: 1 events · " in (text := b"".join(output).decode(errors="replace"))
                and " · lag 0.0 s · " in text
            ),
            "a progress line with the delivered event and no lag",
        )
    finally:
        assert bridge.stop() == 0, b"".join(output).decode(errors="replace")
        reader.join(timeout=5)
        os.close(primary)
    assert "shards 1 active, 0 finished" in b"".join(output).decode()
