"""config: typed sections with defaults; errors name the file, line, field path and expectation."""

from __future__ import annotations

import pytest

from bridge.config import check_template, parse_config
from bridge.errors import ConfigError

VALID = """
tables:
  - name: Phones
sinks:
  - type: stdout
"""


def test_minimal_config_gets_defaults():
    config = parse_config(VALID)
    assert config.tables[0].start_position == "trim_horizon"
    assert config.tables[0].include_ops == ("c", "u", "d") and config.tables[0].exclude_attributes == ()
    assert config.sinks[0].type == "stdout" and config.sinks[0].settings.format == "json"
    assert config.checkpoint.path == ".cdc-bridge/checkpoints.json"


def test_filters_are_read_per_table():
    config = parse_config(
        "tables: [{name: A, include_ops: [d], drop_ttl_deletes: true, exclude_attributes: [Email]}, {name: B}]\n"
        "sinks: [{type: stdout}]\n"
    )
    assert config.table("A").include_ops == ("d",) and config.table("A").drop_ttl_deletes is True
    assert config.table("A").exclude_attributes == ("Email",) and config.table("B").include_ops == ("c", "u", "d")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "tables: [{name: T}]\nsinks: [{type: stdout}]\nsorce: {}\n",
            "line 3: sorce: unknown key (did you mean 'source'?)",
        ),
        (
            "tables: [{name: T, start_position: middle}]\nsinks: [{type: stdout}]\n",
            "tables[0].start_position: expected one of",
        ),
        (
            "tables: [{name: T}]\nsinks: [{type: kafak}]\n",
            "sinks[0].type: unknown sink type 'kafak' (did you mean 'kafka'?)",
        ),
        ("tables: [{name: T}]\nsinks: [{type: kafka}]\n", "sinks[0].bootstrap_servers: missing required key"),
        ("tables: [{name: T}, {name: T}]\nsinks: [{type: stdout}]\n", "tables[1].name: table 'T' is listed twice"),
        ("tables: []\nsinks: [{type: stdout}]\n", "tables: expected at least one table"),
        ("tables: [{name: T}]\nsinks: [{type: stdout, topic: 'x.{tabel}'}]\n", "sinks[0].topic: template 'x.{tabel}'"),
        (
            "tables: [{name: T}]\nsinks: [{type: stdout}]\nsource: {poll_interval_ms: fast}\n",
            "source.poll_interval_ms: expected a whole number",
        ),
        ("tables: {name: T}\nsinks: [{type: stdout}]\n", "tables: expected a list"),
        ("tables: [{name: T}\n", "not valid YAML"),
        ("tables: [{name: T}]\nsinks: [{type: stdout}]\ntables: [{name: U}]\n", "line 3: tables: key given twice"),
        ("tables: [{name: T, include_ops: [c, x]}]\nsinks: [{type: stdout}]\n", "tables[0].include_ops[1]: expected"),
        ("tables: [{name: T, include_ops: []}]\nsinks: [{type: stdout}]\n", "tables[0].include_ops: expected at least"),
        (
            "tables: [{name: T}]\nsinks: [{type: kafka, bootstrap_servers: k, tombstones: true}]\n",
            "tables[0].key: `tombstones: true` on sinks[0] needs `key: primary`",
        ),
        (
            "tables: [{name: A}, {name: B}]\nsinks: [{type: file, path: 'out/{date}'}]\n",
            "sinks[0].path: template 'out/{date}' needs {table}",
        ),
    ],
)
def test_bad_configs_are_config_errors_naming_the_field(text, expected):
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "bridge.yaml")
    assert expected in str(caught.value)
    assert str(caught.value).startswith("bridge.yaml")


def test_env_interpolation_reports_every_missing_variable_with_its_field(monkeypatch):
    monkeypatch.setenv("BROKERS", "k:9092")
    monkeypatch.delenv("TABLE", raising=False)
    monkeypatch.delenv("T2", raising=False)
    text = "tables: [{name: '${TABLE}'}]\nsinks: [{type: kafka, bootstrap_servers: '${BROKERS}', topic: '${T2}'}]\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "c.yaml")
    assert "T2 (in sinks[0].topic, line 2); TABLE (in tables[0].name, line 1)" in str(caught.value)
    monkeypatch.setenv("TABLE", "Phones")
    monkeypatch.setenv("T2", "cdc.{table}")
    config = parse_config(text)
    assert config.sinks[0].settings.bootstrap_servers == "k:9092"
    assert parse_config("tables: [{name: '${NOPE:-Dflt}'}]\nsinks: [{type: stdout}]\n").tables[0].name == "Dflt"


def test_numbers_and_booleans_from_environment_variables_get_their_field_type(monkeypatch):
    monkeypatch.setenv("CREATE", "true")
    monkeypatch.setenv("PARTS", "6")
    config = parse_config(
        "tables: [{name: T}]\n"
        "sinks: [{type: kafka, bootstrap_servers: k, create_topics: '${CREATE}', partitions: '${PARTS}'}]\n"
    )
    assert config.sinks[0].settings.create_topics is True and config.sinks[0].settings.partitions == 6


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("dynamodb.{table}", None),
        ("{table}.{table}", None),
        ("cdc.{tabel}", "uses {tabel}"),
        ("cdc.{table", "malformed"),
        ("cdc.{table!r}", "uses {table!r}"),
        ("cdc.{table:>9}", "uses {table:>9}"),
        ("cdc.{table.upper}", "uses {table.upper}"),
        ("cdc.{}", "uses {}"),
    ],
)
def test_templates_may_only_use_their_placeholders(template, problem):
    found = check_template(template, ("table",))
    assert (found is None) if problem is None else (problem in found)


def test_an_error_about_a_field_left_out_names_the_line_of_its_section():
    text = "tables:\n  - name: T\nsinks:\n  - type: kafka\n    bootstrap_servers: k\n    tombstones: true\n"
    with pytest.raises(ConfigError, match=r"^c.yaml, line 2: tables\[0\]\.key: `tombstones: true`"):
        parse_config(text, "c.yaml")


KAFKA = "sinks: [{type: kafka, bootstrap_servers: 'k:9092'}]\n"


def test_exactly_once_with_the_kafka_store_and_one_kafka_sink_is_valid():
    config = parse_config(f"tables: [{{name: T}}]\n{KAFKA}checkpoint: {{store: kafka}}\ndelivery: exactly_once\n")
    assert config.delivery == "exactly_once" and config.checkpoint.store == "kafka"
    assert config.checkpoint.writer_id == "cdc-bridge-checkpoints"  # the topic's name unless given
    named = parse_config(f"tables: [{{name: T}}]\n{KAFKA}checkpoint: {{store: kafka, transactional_id: orders-eu}}\n")
    assert named.checkpoint.writer_id == "orders-eu" and named.delivery == "at_least_once"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "tables: [{name: T}]\nsinks: [{type: stdout}]\ncheckpoint: {store: kafka}\n",
            "checkpoint.store: `kafka` keeps the checkpoint on the Kafka sink's cluster: add a kafka sink",
        ),
        (f"tables: [{{name: T}}]\n{KAFKA}delivery: exactly_once\n", "delivery: `exactly_once` commits the checkpoint"),
        (
            "tables: [{name: T}]\nsinks: [{type: kafka, bootstrap_servers: k}, {type: stdout}]\n"
            "checkpoint: {store: kafka}\ndelivery: exactly_once\n",
            "sinks[1]: `delivery: exactly_once` needs exactly one sink, of type kafka",
        ),
        (
            "tables: [{name: T}]\nsinks: [{type: kafka, bootstrap_servers: a}, {type: kafka, bootstrap_servers: b}]\n"
            "checkpoint: {store: kafka}\ndelivery: exactly_once\n",
            "sinks[1]: `delivery: exactly_once` needs exactly one sink",
        ),
        (
            f"tables: [{{name: T, on_poison: dlq, dead_letter_path: d.jsonl}}]\n{KAFKA}"
            "checkpoint: {store: kafka}\ndelivery: exactly_once\n",
            "tables[0].dead_letter_path: with `delivery: exactly_once` dead letters go to `<topic>.dlq`",
        ),
        (
            f"tables: [{{name: T}}]\n{KAFKA}checkpoint: {{topic: 'a b'}}\n",
            "checkpoint.topic: expected a Kafka topic name",
        ),
        (
            f"tables: [{{name: T}}]\n{KAFKA}checkpoint: {{transactional_id: 'a b'}}\n",
            "checkpoint.transactional_id: expected 1-249 printable ASCII characters",
        ),
        (f"tables: [{{name: T}}]\n{KAFKA}delivery: exactly_twice\n", "delivery: expected one of"),
    ],
)
def test_bad_delivery_configs_are_config_errors(text, expected):
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "bridge.yaml")
    assert expected in str(caught.value)
