"""The config rules of the Lambda handler (bridge/aws_lambda.py): one kafka sink, at-least-once, Kafka dead
letters; each broken rule is one ConfigError naming the file and the field."""

from __future__ import annotations

import pytest

from bridge import aws_lambda
from bridge.aws_lambda import check_lambda_config
from bridge.config import parse_config
from bridge.errors import ConfigError

KAFKA = "{type: kafka, bootstrap_servers: 'k:9092'}"


def test_a_kafka_only_at_least_once_config_passes():
    check_lambda_config(parse_config(f"tables: [{{name: T, on_poison: dlq}}]\nsinks: [{KAFKA}]\n"), "f.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"tables: [{{name: T}}]\nsinks: [{KAFKA}, {{type: stdout}}]\n", "f.yaml: sinks[1]: on AWS Lambda"),
        ("tables: [{name: T}]\nsinks: [{type: stdout}]\n", "f.yaml: sinks[0]: on AWS Lambda"),
        (
            f"tables: [{{name: T}}]\nsinks: [{KAFKA}]\ncheckpoint: {{store: kafka}}\ndelivery: exactly_once\n",
            "f.yaml: delivery: `exactly_once` is not supported on AWS Lambda",
        ),
        (
            f"tables: [{{name: T, on_poison: dlq, dead_letter_path: d.jsonl}}]\nsinks: [{KAFKA}]\n",
            "f.yaml: tables[0].dead_letter_path: a Lambda function has no lasting disk",
        ),
    ],
)
def test_each_broken_rule_is_a_config_error_naming_the_field(text, expected):
    with pytest.raises(ConfigError) as error:
        check_lambda_config(parse_config(text), "f.yaml")
    assert str(error.value).startswith(expected)


def test_discover_is_refused_at_cold_start_naming_discover(tmp_path, monkeypatch):
    path = tmp_path / "cdc-bridge.yaml"
    path.write_text(f"discover: {{include: [orders-*]}}\nsinks: [{KAFKA}]\n")
    monkeypatch.setenv(aws_lambda.CONFIG_ENV, str(path))
    aws_lambda.reset()
    try:
        with pytest.raises(ConfigError) as error:
            aws_lambda.handler({"Records": []}, None)
        assert str(error.value).startswith(f"{path}: discover: on AWS Lambda the event source mappings choose")
        path.unlink()
        with pytest.raises(ConfigError) as again:  # warm: the same refusal, the file not read again
            aws_lambda.handler({"Records": []}, None)
        assert str(again.value) == str(error.value)
    finally:
        aws_lambda.reset()
