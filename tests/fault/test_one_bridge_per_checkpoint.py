"""Two bridges on one checkpoint file would overwrite each other's positions: the second one must refuse to
start, naming the file and the holder, and the first must go on. The lock is the kernel's (flock on an open
file), so a bridge killed with SIGKILL leaves nothing stuck: the next one starts on the same file.

Real `cdc-bridge run` processes against the moto server, with the stdout sink (no Kafka needed).
"""

from __future__ import annotations

import socket
from pathlib import Path

import boto3

from bridge.checkpoint import CheckpointStore
from tests.bridge_process import run_bridge, write_config
from tests.fault.bridge_runner import BridgeRunner
from tests.fault.changes import TABLE, create_table
from tests.polling import wait_for


def _config(tmp_path: Path, moto_endpoint: str, checkpoint: Path) -> Path:
    return write_config(
        tmp_path / "bridge.yaml",
        {
            "source": {"endpoint_url": moto_endpoint, "region": "us-east-1", "poll_interval_ms": 50},
            "tables": [{"name": TABLE}],
            "sinks": [{"type": "stdout"}],
            "checkpoint": {"path": str(checkpoint), "interval_s": 0.2},
        },
    )


def _put(endpoint: str, first: int, count: int) -> None:
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    for i in range(first, first + count):
        client.put_item(TableName=TABLE, Item={"pk": {"S": f"k{i}"}, "v": {"N": str(i)}})


def _positions(checkpoint: Path) -> set[str | None]:
    return {c.sequence_number for c in CheckpointStore(checkpoint).load().values()} if checkpoint.exists() else set()


def _start_first(tmp_path: Path, moto_endpoint: str, checkpoint: Path) -> BridgeRunner:
    """A running bridge that has written its first checkpoint (so it holds the file and reads the stream)."""
    bridge = BridgeRunner(_config(tmp_path, moto_endpoint, checkpoint), tmp_path / "first.log")
    bridge.start()
    try:
        wait_for(checkpoint.exists, 60, "the first bridge's checkpoint", interval=0.2)
    except AssertionError as error:
        bridge.stop()
        raise AssertionError(f"{error}\n{bridge.tail()}") from None
    return bridge


def _assert_refused(config: Path, checkpoint: Path, holder_pid: int) -> None:
    second = run_bridge("run", "--config", str(config), "--until-caught-up", timeout=60)
    assert second.returncode == 2, second.stderr
    assert f"checkpoint file {checkpoint} is in use by another cdc-bridge" in second.stderr
    assert f"(pid {holder_pid} on host {socket.gethostname()}, since " in second.stderr
    assert "give this one its own checkpoint.path" in second.stderr
    assert "Traceback" not in second.stderr


def test_a_second_bridge_on_the_same_checkpoint_exits_2_naming_the_holder_and_the_first_keeps_running(
    dynamodb, moto_endpoint, tmp_path
):
    create_table(dynamodb)
    checkpoint = tmp_path / "state" / "checkpoints.json"
    _put(moto_endpoint, 0, 10)
    first = _start_first(tmp_path, moto_endpoint, checkpoint)
    try:
        _assert_refused(first.config, checkpoint, first.process.pid)

        shown = run_bridge("checkpoints", "--config", str(first.config), timeout=60)
        assert shown.returncode == 0, shown.stderr  # read-only commands still work while a bridge runs
        before = _positions(checkpoint)
        _put(moto_endpoint, 10, 10)
        wait_for(
            lambda: _positions(checkpoint) - before, 60, "the first bridge to checkpoint the new changes", interval=0.2
        )
        assert first.process.poll() is None, first.tail()
    finally:
        first.stop()


def test_after_a_kill_9_of_the_holder_a_new_bridge_starts_on_the_same_checkpoint(dynamodb, moto_endpoint, tmp_path):
    create_table(dynamodb)
    checkpoint = tmp_path / "state" / "checkpoints.json"
    _put(moto_endpoint, 0, 10)
    first = _start_first(tmp_path, moto_endpoint, checkpoint)
    try:
        _assert_refused(first.config, checkpoint, first.process.pid)
        first.kill()
    finally:
        first.stop()

    _put(moto_endpoint, 10, 10)
    again = run_bridge("run", "--config", str(first.config), "--until-caught-up", timeout=60)
    assert again.returncode == 0, again.stderr
    assert sum(1 for line in again.stdout.splitlines() if line.strip()) >= 10
