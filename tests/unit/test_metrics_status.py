"""How `cdc-bridge status` prints shards (bridge.commands.status), and a quiet shard over the scripted fake;
the live queries are in tests/integration."""

from __future__ import annotations

import json

from bridge.checkpoint import CheckpointStore
from bridge.commands.status import ShardStatus, render_json, render_text, table_status
from tests.fake_streams import FakeAWS
from tests.stream_harness import MemorySink, make_config, run_until_caught_up

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/2026-01-01T00:00:00.000"
SHARDS = [
    ShardStatus("Orders", ARN, "shardId-1", "100", True, "finished", None, None),
    ShardStatus("Orders", ARN, "shardId-2", "250", False, "behind", 5400.0, 86400.0 - 5400.0),
    ShardStatus("Orders", ARN, "shardId-3", None, False, "caught up", 0.0, 86400.0),
]


def test_text_has_a_header_per_table_and_a_row_per_shard():
    lines = render_text(SHARDS).splitlines()
    assert lines[0] == f"table Orders  stream {ARN}"
    assert lines[1].split() == ["shard", "checkpoint", "finished", "state", "iterator", "age", "headroom"]
    assert lines[2].split() == ["shardId-1", "100", "yes", "finished", "-", "-"]
    assert lines[3].split() == ["shardId-2", "250", "no", "behind", "1.5", "h", "22.5", "h"]
    assert lines[4].split() == ["shardId-3", "-", "no", "caught", "up", "0.0", "s", "24.0", "h"]


def test_json_lists_every_shard_with_seconds():
    shards = json.loads(render_json(SHARDS))["shards"]
    assert [s["shard_id"] for s in shards] == ["shardId-1", "shardId-2", "shardId-3"]
    assert shards[1] == {
        "table": "Orders",
        "stream_arn": ARN,
        "shard_id": "shardId-2",
        "checkpoint": "250",
        "finished": False,
        "state": "behind",
        "iterator_age_s": 5400.0,
        "headroom_s": 81000.0,
    }


def test_no_shards_says_so():
    assert render_text([]) == "no shards"


def test_a_shard_with_no_record_read_yet_is_quiet_with_unknown_ages(tmp_path):
    aws = FakeAWS()
    aws.create_table("T")
    aws.write("T", "old", 1)  # before the run's latest start: never read, and not what waits
    config = make_config(tmp_path / "cp.json", [{"name": "T", "start_position": "latest"}])
    run_until_caught_up(aws, config, MemorySink())
    checkpoints = CheckpointStore(tmp_path / "cp.json").load()

    (shard,) = table_status(config, aws.dynamodb, aws.streams, checkpoints)

    assert (shard.state, shard.checkpoint, shard.iterator_age_s, shard.headroom_s) == ("quiet", None, None, None)
