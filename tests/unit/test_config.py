"""config: validation errors name the file, line, field path and expectation."""

from __future__ import annotations

import pytest

from bridge.config import parse_config
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
    assert config.sinks[0].type == "stdout" and config.sinks[0].settings.format == "json"
    assert config.checkpoint.path == ".cdc-bridge/checkpoints.json"


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
        ("tables: [{name: T}]\nsinks: [{type: stdout, topic: 'x.{tabel}'}]\n", "sinks[0].topic: topic template"),
        (
            "tables: [{name: T}]\nsinks: [{type: stdout}]\nsource: {poll_interval_ms: fast}\n",
            "source.poll_interval_ms: expected a whole number",
        ),
        ("tables: {name: T}\nsinks: [{type: stdout}]\n", "tables: expected a list"),
        ("tables: [{name: T}\n", "not valid YAML"),
    ],
)
def test_bad_configs_are_config_errors_naming_the_field(text, expected):
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "bridge.yaml")
    assert expected in str(caught.value)
    assert str(caught.value).startswith("bridge.yaml")


def test_env_interpolation_reports_every_missing_variable(monkeypatch):
    monkeypatch.setenv("BROKERS", "k:9092")
    text = "tables: [{name: '${TABLE}'}]\nsinks: [{type: kafka, bootstrap_servers: '${BROKERS}', topic: '${T2}'}]\n"
    with pytest.raises(ConfigError, match="T2, TABLE"):
        parse_config(text)
    monkeypatch.setenv("TABLE", "Phones")
    monkeypatch.setenv("T2", "cdc.{table}")
    config = parse_config(text)
    assert config.sinks[0].settings.bootstrap_servers == "k:9092"
    assert parse_config("tables: [{name: '${NOPE:-Dflt}'}]\nsinks: [{type: stdout}]\n").tables[0].name == "Dflt"
