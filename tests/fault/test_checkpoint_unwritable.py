"""A checkpoint location that stops being writable mid-run: the bridge stops with a clear error
(exit 1, no traceback) and, once the location is fixed, a restart delivers everything - nothing lost.

The test runs as root, where a read-only mode bit does not stop writes; it makes the checkpoint folder
unusable the way a broken mount does: the path of the folder becomes a regular file.
"""

from __future__ import annotations

import shutil
import uuid

import boto3

from tests.bridge_process import run_bridge
from tests.fault.bridge_runner import BridgeRunner, bridge_config
from tests.fault.changes import TABLE, create_table
from tests.fault.delivery import topic_event_ids
from tests.polling import wait_for


def _put(endpoint: str, first: int, count: int) -> None:
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    for i in range(first, first + count):
        client.put_item(TableName=TABLE, Item={"pk": {"S": f"k{i}"}, "v": {"N": str(i)}})


def test_unwritable_checkpoint_stops_the_bridge_with_a_clear_error_and_loses_nothing(
    dynamodb, moto_endpoint, kafka_bootstrap, tmp_path
):
    create_table(dynamodb)
    topic = f"cp-{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "state"
    checkpoint = folder / "checkpoints.json"
    config = bridge_config(
        tmp_path / "bridge.yaml", moto_endpoint, kafka_bootstrap, topic, checkpoint={"path": str(checkpoint)}
    )
    _put(moto_endpoint, 0, 20)
    bridge = BridgeRunner(config, tmp_path / "bridge.log")
    bridge.start()
    try:
        wait_for(checkpoint.exists, 60, "the first checkpoint", interval=0.2)
        saved = tmp_path / "state-saved"
        folder.rename(saved)
        folder.write_text("not a folder")
        _put(moto_endpoint, 20, 20)
        exit_code = bridge.wait(timeout=60)
    finally:
        bridge.stop()

    log = bridge.log.read_text()
    assert exit_code == 1, bridge.tail()
    assert f"cannot write checkpoint file {checkpoint}" in log
    assert "Traceback" not in log
    folder.unlink()
    shutil.move(saved, folder)
    again = run_bridge("run", "--config", str(config), "--until-caught-up")
    assert again.returncode == 0, again.stderr
    assert len(set(topic_event_ids(kafka_bootstrap, topic))) == 40
