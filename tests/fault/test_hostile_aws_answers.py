"""Damaged AWS answers on the wire, through boto3's real clients and the bridge's raw GetRecords parser.

A scripted HTTP endpoint (tests/fake_endpoint.py) serves the fake DynamoDB Streams world and spoils the
bytes of chosen answers: a body cut short, an empty body, a connection closed mid-body. botocore turns
some of these into an empty dict; none of them may end a shard or lose a record. The commands `run` and
`status` meet a DynamoDB that refuses or fails with one line on stderr, never a traceback.
"""

from __future__ import annotations

import pytest
import yaml

from bridge.checkpoint import CheckpointStore
from tests.bridge_process import run_bridge, write_config
from tests.fake_endpoint import FakeEndpoint, closed_mid_body, cut_short, empty, without_records
from tests.fake_streams import FakeAWS
from tests.stream_harness import Changes, MemorySink, assert_exactly_once_in_order, caught_up_within, make_config


@pytest.fixture
def world():
    changes = Changes(FakeAWS())
    changes.aws.create_table("T")
    endpoint = FakeEndpoint(changes.aws)
    yield changes, endpoint
    endpoint.close()


@pytest.mark.parametrize(
    ("operation", "damage"),
    [
        ("GetRecords", cut_short),
        ("GetRecords", empty),
        ("GetRecords", closed_mid_body),
        ("GetRecords", without_records),
        ("DescribeStream", cut_short),
        ("DescribeStream", empty),
    ],
    ids=lambda value: value if isinstance(value, str) else value.__name__,
)
def test_a_damaged_answer_is_asked_again_and_never_ends_the_shard(tmp_path, world, operation, damage):
    changes, endpoint = world
    changes.many("T", 50)
    endpoint.damage_next(operation, damage, times=2)
    config = make_config(tmp_path / "cp.json", [{"name": "T"}], endpoint_url=endpoint.url, region="us-east-1")
    sink = MemorySink()
    caught_up_within(None, config, sink)
    assert_exactly_once_in_order(sink.events, changes.written)
    ((_, checkpoint),) = CheckpointStore(tmp_path / "cp.json").load().items()
    assert checkpoint.finished is False


def _config_file(tmp_path, endpoint: FakeEndpoint):
    data = {
        "source": {"endpoint_url": endpoint.url, "region": "us-east-1"},
        "tables": [{"name": "T"}],
        "sinks": [{"type": "stdout"}],
        "checkpoint": {"path": str(tmp_path / "cp.json")},
    }
    return str(write_config(tmp_path / "bridge.yaml", data))


@pytest.mark.parametrize("command", ["run", "status"])
def test_describe_table_access_denied_exits_2_with_one_line(tmp_path, world, command):
    changes, endpoint = world
    changes.aws.fail_next("DescribeTable", "AccessDeniedException", times=10)
    result = run_bridge(command, "--config", _config_file(tmp_path, endpoint), timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "describing table T: access denied (AccessDeniedException" in result.stderr
    assert result.stdout == ""


def test_status_with_dynamodb_failing_exits_1_with_one_line(tmp_path, world):
    changes, endpoint = world
    changes.aws.fail_next("DescribeTable", "InternalServerError", times=100)
    result = run_bridge("status", "--config", _config_file(tmp_path, endpoint), timeout=60)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "describing table T" in result.stderr and "InternalServerError" in result.stderr


def test_run_retries_describe_table_while_dynamodb_fails_then_replicates(tmp_path, world):
    changes, endpoint = world
    changes.many("T", 5)
    changes.aws.fail_next("DescribeTable", "InternalServerError", times=4)  # more than botocore's own 3 attempts
    result = run_bridge("run", "--config", _config_file(tmp_path, endpoint), "--until-caught-up", timeout=60)
    assert result.returncode == 0, result.stderr
    assert len([line for line in result.stdout.splitlines() if line.strip()]) == 5
    assert "describing it again" in result.stderr
    assert yaml.safe_load(result.stdout.splitlines()[0])["op"] == "u"
