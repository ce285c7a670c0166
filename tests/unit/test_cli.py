"""cli: every command has help with an example; user errors exit 2 with one message naming the field and no
traceback; the demo prints six events."""

from __future__ import annotations

import json

import pytest

from bridge import __version__
from bridge.commands.cli import COMMANDS, main
from tests.bridge_process import run_bridge


@pytest.mark.parametrize("command", [c.name for c in COMMANDS])
def test_every_command_has_help_with_an_example_and_the_exit_codes(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert f"example:\n  cdc-bridge {command}" in text
    assert "exit codes: 0 ok, 1 runtime failure, 2 usage or config error" in text


def test_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out.strip() == f"cdc-bridge {__version__}"


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["tail", "--config", "x.yaml"])  # --table missing
    assert exited.value.code == 2 and "--table" in capsys.readouterr().err


def test_validate_accepts_the_example_config(capsys):
    assert main(["validate", "--config", "config/example.yaml"]) == 0
    assert "config/example.yaml: config ok (1 table(s), sinks: file, kafka, stdout)" in capsys.readouterr().out


# (file name -> text) of each broken config, and what the message must say (always including the field path)
BROKEN = [
    ("source: {poll_interval_ms: fast}\n", "source.poll_interval_ms: expected a whole number"),
    ("source: {max_workers: 2.5}\n", "source.max_workers: expected a whole number"),
    ("shutdown_timeout_s: -1\n", "shutdown_timeout_s: expected a number > 0"),
    ("checkpoint: 5\n", "checkpoint: expected a mapping"),
    ("encoding: {numbers: float}\n", "encoding.numbers: expected one of 'exact', 'double', 'string'"),
    ("sorce: {region: eu-west-1}\n", "sorce: unknown key (did you mean 'source'?)"),
    ("checkpoint: {paht: x.json}\n", "checkpoint.paht: unknown key (did you mean 'path'?)"),
    ("source: {region: a}\nsource: {region: b}\n", "source: key given twice"),
    ("tables: [{name: T, strat_position: latest}]\n", "tables[0].strat_position: unknown key (did you mean"),
    ("tables: [{name: T, include_ops: [c, x]}]\n", "tables[0].include_ops[1]: expected one of 'c', 'u', 'd'"),
    ("tables: [{name: T, include_ops: []}]\n", "tables[0].include_ops: expected at least one"),
    ("tables: [{name: T, exclude_attributes: Email}]\n", "tables[0].exclude_attributes: expected a list"),
    ("tables: [{name: T, drop_ttl_deletes: maybe}]\n", "tables[0].drop_ttl_deletes: expected true or false"),
    ("tables: [{start_position: latest}]\n", "tables[0].name: missing required key"),
    ("tables: [{name: T}, {name: T}]\n", "tables[1].name: table 'T' is listed twice"),
    ("tables: [{name: T, schema: missing.avsc}]\n", "tables[0].schema: schema file missing.avsc cannot be read"),
    ("tables: [{name: T, schema: broken.avsc}]\n", "tables[0].schema: schema file broken.avsc: not valid JSON"),
    (
        "tables: [{name: T}]\nsinks: [{type: kafka, bootstrap_servers: k, topic: 'cdc/{table}'}]\n",
        "sinks[0].topic: 'cdc/T' (table T) is not a legal Kafka topic name",
    ),
    (
        "tables: [{name: T, key: partition}]\nsinks: [{type: kafka, bootstrap_servers: k, tombstones: true}]\n",
        "tables[0].key: `tombstones: true` on sinks[0] needs `key: primary`",
    ),
    ("sinks: [{type: kafak, bootstrap_servers: k}]\n", "sinks[0].type: unknown sink type 'kafak' (did you mean"),
    ("sinks: [kafka]\n", "sinks[0]: expected a mapping with `type:`"),
    ("sinks: [{type: kafka}]\n", "sinks[0].bootstrap_servers: missing required key"),
    (
        "sinks: [{type: kafka, bootstrap_servers: k, create_topics: maybe}]\n",
        "sinks[0].create_topics: expected true or false",
    ),
    ("sinks: [{type: kafka, bootstrap_servers: k, topic: 'cdc.{tabel}'}]\n", "sinks[0].topic: template 'cdc.{tabel}'"),
    ("sinks: [{type: kafka, bootstrap_servers: k, topic: 'cdc.{table'}]\n", "sinks[0].topic: template 'cdc.{table'"),
    ("sinks: [{type: file, path: 'out/{table}/{day}'}]\n", "sinks[0].path: template 'out/{table}/{day}' uses {day}"),
    ("sinks: [{type: file, path: 'out/{table}.jsonl'}]\n", "sinks[0].path: template 'out/{table}.jsonl': leave out"),
    ("tables: [{name: A}, {name: B}]\nsinks: [{type: file, path: out}]\n", "sinks[0].path: template 'out' needs"),
    ("sinks: [{type: stdout, formt: pretty}]\n", "sinks[0].formt: unknown key (did you mean 'format'?)"),
    ("sinks: [{type: stdout, fields: [after..Size]}]\n", "sinks[0].fields: field 'after..Size'"),
    (
        "sinks: [{type: kafka, bootstrap_servers: '${NO_SUCH_BROKERS}', topic: '${NO_SUCH_TOPIC}'}]\n",
        "NO_SUCH_BROKERS (in sinks[0].bootstrap_servers, line 2); NO_SUCH_TOPIC (in sinks[0].topic, line 2)",
    ),
    ("tables: [{name: T}\n", "not valid YAML"),
]


def _complete(text: str) -> str:
    """`text` plus whatever sections it leaves out, so that only the broken part is wrong."""
    if not text.startswith("tables:") and "\ntables:" not in text:
        text = "tables: [{name: T}]\n" + text
    if "sinks:" not in text:
        text += "sinks: [{type: stdout}]\n"
    return text


@pytest.mark.parametrize(("text", "expected"), BROKEN, ids=[f"broken-{i}" for i in range(len(BROKEN))])
def test_broken_configs_exit_2_with_a_message_naming_the_field(text, expected, tmp_path, monkeypatch, capsys):
    assert len(BROKEN) >= 20
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NO_SUCH_BROKERS", raising=False)
    monkeypatch.delenv("NO_SUCH_TOPIC", raising=False)
    (tmp_path / "broken.avsc").write_text("{not json")
    (tmp_path / "bridge.yaml").write_text(_complete(text))
    code = main(["validate", "--config", "bridge.yaml"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("cdc-bridge: config error: bridge.yaml")
    assert expected in err
    assert "Traceback" not in err


def test_unreadable_config_file_exits_2(tmp_path, capsys):
    assert main(["validate", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml cannot be read" in capsys.readouterr().err


def test_checkpoints_without_a_checkpoint_file_says_so(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(f"tables: [{{name: T}}]\nsinks: [{{type: stdout}}]\ncheckpoint: {{path: {tmp_path}/cp.json}}\n")
    assert main(["checkpoints", "--config", str(config)]) == 0
    assert "no checkpoints yet" in capsys.readouterr().err


def test_missing_config_file_exits_2_without_traceback(tmp_path):
    result = run_bridge("run", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "nope.yaml" in result.stderr and "Traceback" not in result.stderr


def test_unknown_key_exits_2_naming_file_and_field(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("tables: [{name: T, strat_position: latest}]\nsinks: [{type: stdout}]\n")
    result = run_bridge("run", "--config", str(config))
    assert result.returncode == 2
    assert "bad.yaml, line 1: tables[0].strat_position: unknown key (did you mean 'start_position'?)" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_dynamodb_endpoint_exits_2(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("source: {endpoint_url: 'http://127.0.0.1:9'}\ntables: [{name: T}]\nsinks: [{type: stdout}]\n")
    result = run_bridge("run", "--config", str(config), timeout=120)
    assert result.returncode == 2
    assert "cannot reach DynamoDB" in result.stderr and "Traceback" not in result.stderr


def test_demo_prints_the_six_phone_changes_on_stdout_only():
    result = run_bridge("demo")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["key"], e["op"]) for e in events] == [
        ("Motorola", "c"),
        ("Motorola", "c"),
        ("Goole", "c"),
        ("Google", "c"),
        ("Motorola", "u"),
        ("Goole", "d"),
    ]
    assert events[4]["before"]["Size"] == 9 and events[4]["after"]["Size"] == 10
    assert events[0]["after"]["Colors"] == ["Blue", "Green", "Orange"]
    assert "INFO" in result.stderr and "INFO" not in result.stdout
