"""The file sink when its files cannot grow (a full disk; here the file size limit RLIMIT_FSIZE, which makes
the same writes fail, with EFBIG): `cdc-bridge run` stops with exit 1 and one line naming the file and the OS
error, no traceback, and no checkpoint past what was not written."""

from __future__ import annotations

import resource
import subprocess
import sys

import boto3

from tests.bridge_process import write_config
from tests.fault.changes import TABLE, create_table

LIMIT = 64 * 1024  # bytes any file of the bridge may have: the checkpoint fits, the events do not


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def test_a_file_sink_that_cannot_grow_stops_with_one_line_naming_the_file(dynamodb, moto_endpoint, tmp_path):
    create_table(dynamodb)
    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    for i in range(200):
        client.put_item(TableName=TABLE, Item={"pk": {"S": f"k{i}"}, "text": {"S": "x" * 1000}})
    out = tmp_path / "out"
    config = write_config(
        tmp_path / "bridge.yaml",
        {
            "source": {"endpoint_url": moto_endpoint, "region": "us-east-1", "poll_interval_ms": 50},
            "tables": [{"name": TABLE}],
            "sinks": [{"type": "file", "path": str(out / "{table}")}],
            "checkpoint": {"path": str(tmp_path / "checkpoints.json"), "interval_s": 0.5},
        },
    )
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "run", "--config", str(config), "--until-caught-up"],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_file_size,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("cdc-bridge: error:")]
    assert len(errors) == 1, result.stderr
    (written,) = out.glob("*.jsonl")
    assert str(written) in errors[0] and "File too large" in errors[0], errors[0]
    assert not (tmp_path / "checkpoints.json").exists(), "no checkpoint may cover events the file did not take"
