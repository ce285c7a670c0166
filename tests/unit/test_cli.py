"""cli: user errors exit 2 with one message and no traceback; the demo prints six events."""

from __future__ import annotations

import json

from tests.bridge_process import run_bridge


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
