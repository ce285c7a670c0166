"""The stdout sink when standard output cannot take the events: a full disk (`/dev/full` answers every write
with ENOSPC) or a pipe whose reader went away (EPIPE). Either way `cdc-bridge run` stops with exit 1 and one
line naming what happened, no traceback, and writes no checkpoint past what stdout never took."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.bridge_process import write_config
from tests.fault.changes import TABLE, create_table

pytestmark = pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")


def _config(tmp_path: Path, moto_endpoint: str) -> Path:
    return write_config(
        tmp_path / "bridge.yaml",
        {
            "source": {"endpoint_url": moto_endpoint, "region": "us-east-1", "poll_interval_ms": 50},
            "tables": [{"name": TABLE}],
            "sinks": [{"type": "stdout"}],
            "checkpoint": {"path": str(tmp_path / "checkpoints.json"), "interval_s": 0.5},
        },
    )


def _put(endpoint: str, count: int) -> None:
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    for i in range(count):
        client.put_item(TableName=TABLE, Item={"pk": {"S": f"k{i}"}, "text": {"S": "x" * 200}})


def _command(config: Path) -> list[str]:
    return [sys.executable, "-m", "bridge", "run", "--config", str(config), "--until-caught-up"]


def _assert_one_line_error(code: int, stderr: str, what: str) -> None:
    assert code == 1, stderr
    assert "Traceback" not in stderr, stderr
    assert "Exception ignored" not in stderr, stderr  # no second failure when Python flushes stdout at exit
    errors = [line for line in stderr.splitlines() if line.startswith("cdc-bridge: error:")]
    assert len(errors) == 1, stderr
    assert "stdout" in errors[0] and what in errors[0], errors[0]


def test_stdout_on_a_full_disk_stops_with_one_line_and_no_checkpoint(dynamodb, moto_endpoint, tmp_path):
    create_table(dynamodb)
    _put(moto_endpoint, 30)
    config = _config(tmp_path, moto_endpoint)
    with open("/dev/full", "w") as full:
        result = subprocess.run(_command(config), stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    _assert_one_line_error(result.returncode, result.stderr, "No space left on device")
    assert not (tmp_path / "checkpoints.json").exists(), "no checkpoint may cover events stdout never took"


def test_stdout_into_a_closed_pipe_stops_with_one_line_and_no_checkpoint(dynamodb, moto_endpoint, tmp_path):
    create_table(dynamodb)
    _put(moto_endpoint, 300)  # more than a pipe buffer, so writing fails even before a flush
    config = _config(tmp_path, moto_endpoint)
    reader, writer = os.pipe()
    os.close(reader)  # the reader is gone before the first event, as after `| head -0`
    try:
        result = subprocess.run(_command(config), stdout=writer, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(writer)
    _assert_one_line_error(result.returncode, result.stderr, "Broken pipe")
    assert not (tmp_path / "checkpoints.json").exists(), "no checkpoint may cover events stdout never took"
