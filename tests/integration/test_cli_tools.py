"""validate --connect, tail, checkpoints and per-table filters, run as users run them: the real CLI in a
subprocess against the moto server and the Kafka broker of the test session."""

from __future__ import annotations

import json
import uuid

import pytest

from bridge.commands.demo import create_phones
from tests.bridge_process import run_bridge, write_config


@pytest.fixture
def phones_config(tmp_path, moto_endpoint, kafka_bootstrap):
    """A config bridging Phones to a fresh topic (3 partitions) and to stdout."""
    topic = f"tools-{uuid.uuid4().hex[:8]}.{{table}}"

    def make(**table_options) -> tuple:
        config = {
            "source": {"endpoint_url": moto_endpoint, "poll_interval_ms": 50},
            "tables": [{"name": "Phones", **table_options}],
            "sinks": [
                {"type": "stdout", "topic": topic},
                {
                    "type": "kafka",
                    "bootstrap_servers": kafka_bootstrap,
                    "topic": topic,
                    "create_topics": True,
                    "partitions": 3,
                },
            ],
            "checkpoint": {"path": str(tmp_path / "checkpoints.json")},
        }
        return write_config(tmp_path / "bridge.yaml", config), topic.format(table="Phones")

    return make


def _without_ts(view: dict) -> dict:
    return {k: v for k, v in view.items() if k != "ts_ms"}


def test_validate_connect_reports_reachable_tables_and_brokers(dynamodb, phones_config, kafka_bootstrap):
    create_phones(dynamodb)
    config, topic = phones_config()
    result = run_bridge("validate", "--config", str(config), "--connect")
    assert result.returncode == 0, result.stderr
    assert "table Phones has stream arn:aws:dynamodb:" in result.stdout
    assert f"Kafka {kafka_bootstrap}: reachable, topics {topic} ({topic} will be created)" in result.stdout


def test_validate_connect_lists_every_unreachable_or_missing_thing_and_exits_2(dynamodb, tmp_path, moto_endpoint):
    dynamodb.create_table(
        TableName="NoStream",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    config = write_config(
        tmp_path / "c.yaml",
        {
            "source": {"endpoint_url": moto_endpoint},
            "tables": [{"name": "Missing"}, {"name": "NoStream"}],
            "sinks": [{"type": "kafka", "bootstrap_servers": "127.0.0.1:9"}],
        },
    )
    result = run_bridge("validate", "--config", str(config), "--connect")
    assert result.returncode == 2
    assert "tables[0].name: table 'Missing' does not exist" in result.stderr
    assert "tables[1].name: table 'NoStream' has no stream" in result.stderr
    assert "sinks[0].bootstrap_servers: no Kafka broker reachable at 127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


def test_tail_prints_the_topic_as_the_stdout_sink_printed_the_changes(dynamodb, phones_config):
    create_phones(dynamodb)
    config, topic = phones_config()
    run = run_bridge("run", "--config", str(config), "--until-caught-up")
    assert run.returncode == 0, run.stderr
    tail = run_bridge("tail", "--config", str(config), "--table", "Phones", "--from-beginning", "--max", "6")
    assert tail.returncode == 0, tail.stderr

    def by_sequence(text: str) -> list[dict]:
        views = [_without_ts(json.loads(line)) for line in text.splitlines()]
        return sorted(views, key=lambda v: v["source"]["sequence_number"])

    printed = by_sequence(run.stdout)
    assert len(printed) == 6 and printed[0]["topic"] == topic
    assert by_sequence(tail.stdout) == printed


def test_tail_exit_at_end_with_fields_and_pretty(dynamodb, phones_config):
    create_phones(dynamodb)
    config, _topic = phones_config()
    assert run_bridge("run", "--config", str(config), "--until-caught-up").returncode == 0
    compact = run_bridge(
        "tail", "--config", str(config), "--table", "Phones", "--from-beginning", "--exit-at-end", "--fields", "key,op"
    )
    assert compact.returncode == 0, compact.stderr
    views = [json.loads(line) for line in compact.stdout.splitlines()]
    assert sorted((v["key"], v["op"]) for v in views) == sorted(
        [("Motorola", "c"), ("Motorola", "c"), ("Goole", "c"), ("Google", "c"), ("Motorola", "u"), ("Goole", "d")]
    )
    assert [v["op"] for v in views if v["key"] == "Motorola"] == ["c", "c", "u"]  # one partition per key, in order
    pretty = run_bridge(
        "tail", "--config", str(config), "--table", "Phones", "--from-beginning", "--max", "1", "--format", "pretty"
    )
    assert pretty.stdout.startswith('{\n  "topic": ') and "\x1b[" not in pretty.stdout


def test_tail_of_an_unknown_table_exits_2_with_a_hint(tmp_path, kafka_bootstrap):
    config = write_config(
        tmp_path / "c.yaml",
        {"tables": [{"name": "Phones"}], "sinks": [{"type": "kafka", "bootstrap_servers": kafka_bootstrap}]},
    )
    result = run_bridge("tail", "--config", str(config), "--table", "Phone")
    assert result.returncode == 2
    assert "--table: 'Phone' is not a table of the config (did you mean 'Phones'?)" in result.stderr


def test_checkpoints_lists_each_shard_with_its_checkpoint(dynamodb, phones_config):
    create_phones(dynamodb)
    config, _topic = phones_config()
    assert run_bridge("run", "--config", str(config), "--until-caught-up").returncode == 0
    result = run_bridge("checkpoints", "--config", str(config))
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["TABLE", "STREAM", "SHARD", "CHECKPOINT", "FINISHED"]
    assert len(rows) == 1
    table, _stream, shard, sequence, finished = rows[0].split()
    assert table == "Phones" and shard.startswith("shardId-") and sequence.isdigit() and finished == "no"


def test_table_filters_apply_to_every_sink_and_the_checkpoint_still_moves(dynamodb, phones_config, kafka_bootstrap):
    from tests.kafka_topic import read_topic

    create_phones(dynamodb)
    config, topic = phones_config(include_ops=["u", "d"], exclude_attributes=["Size", "Company"])
    first = run_bridge("run", "--config", str(config), "--until-caught-up")
    assert first.returncode == 0, first.stderr
    views = [json.loads(line) for line in first.stdout.splitlines()]
    assert [(v["op"], v["key"]) for v in views] == [("u", "Motorola"), ("d", "Goole")]
    update, delete = views
    assert update["before"] == {"Model": "Lame Phone", "Colors": ["Blue", "Green", "Orange"]}
    assert update["keys"] == {"Company": "Motorola", "Model": "Lame Phone"}
    assert "Size" not in delete["before"] and delete["after"] is None
    assert len(read_topic(kafka_bootstrap, topic)) == 2
    again = run_bridge("run", "--config", str(config), "--until-caught-up")
    assert again.returncode == 0 and again.stdout == ""
