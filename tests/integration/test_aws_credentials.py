"""Credentials against the real moto server (DynamoDB, Streams and STS): a bridge that assumes a role reads a
table, its credentials are refreshed once they expire during a run, `validate --connect` says who it runs as,
and an unknown profile or a role that cannot be assumed stops it with one line and exit code 2.

moto lets anyone assume any role, so the refusals come from `tests/fake_sts.py`."""

from __future__ import annotations

import datetime
import json
import os
import threading
import urllib.request

import boto3
import pytest

from bridge.config import parse_config
from bridge.pipeline import Pipeline
from bridge.source.clients import aws_clients
from tests.bridge_process import run_bridge, write_config
from tests.fake_sts import RefusingSTS
from tests.polling import wait_for
from tests.stream_harness import MemorySink, PipelineThread
from tests.tables import create_stream_table

ROLE = "arn:aws:iam::123456789012:role/cdc-reader"
TABLE = "Accounts"


def _put(dynamodb, keys: range) -> None:
    for index in keys:
        dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": f"k{index}"}, "v": {"N": str(index)}})


def _config_data(tmp_path, endpoint: str, **source) -> dict:
    return {
        "source": {"endpoint_url": endpoint, "poll_interval_ms": 20, **source},
        "tables": [{"name": TABLE}],
        "sinks": [{"type": "stdout"}],
        "checkpoint": {"path": str(tmp_path / "checkpoints.json"), "interval_s": 0.05},
    }


def _assumed_roles(endpoint: str) -> list[tuple[str, str, str | None]]:
    """(role ARN, session name, external id) of each AssumeRole the moto server answered since its reset."""
    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=10) as answer:
        roles = json.load(answer).get("sts", {}).get("AssumedRole", [])
    return [(role["role_arn"], role["session_name"], role["external_id"]) for role in roles]


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


class Clock:
    """The time the bridge's credentials are judged by: the wall clock, plus what the test moves it on."""

    def __init__(self) -> None:
        self.ahead = datetime.timedelta()

    def __call__(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC) + self.ahead


class STSCalls:
    """AssumeRole calls made through `session`: the access key of each answer. moto stamps `Expiration` by
    its wall clock; the hook stamps it by the test's `clock` instead (which stands for the world's time)."""

    def __init__(self, session: boto3.Session, clock: Clock) -> None:
        self.keys: list[str] = []
        self.clock = clock
        session.events.register("after-call.sts.AssumeRole", self._answered)

    def _answered(self, parsed: dict, **kwargs) -> None:
        credentials = parsed["Credentials"]
        issued = credentials["Expiration"] - datetime.datetime.now(datetime.UTC)
        credentials["Expiration"] = self.clock() + issued
        self.keys.append(credentials["AccessKeyId"])


class SignedKeys:
    """The access key each request of `clients` was signed with, in order."""

    def __init__(self, *clients) -> None:
        self.keys: list[str] = []
        self.lock = threading.Lock()
        for client in clients:
            client.meta.events.register("before-send", self._sent)

    def _sent(self, request, **kwargs) -> None:
        authorization = request.headers["Authorization"]
        if isinstance(authorization, bytes):
            authorization = authorization.decode()
        with self.lock:
            self.keys.append(authorization.split("Credential=")[1].split("/")[0])

    def since(self, start: int) -> list[str]:
        with self.lock:
            return self.keys[start:]


def test_a_bridge_assuming_a_role_replicates_a_table(dynamodb, moto_endpoint, tmp_path):
    create_stream_table(dynamodb, TABLE)
    _put(dynamodb, range(5))
    data = _config_data(tmp_path, moto_endpoint, role_arn=ROLE, external_id="tenant-7", session_name="replica")
    config = write_config(tmp_path / "bridge.yaml", data)

    result = run_bridge("run", "--config", str(config), "--until-caught-up")

    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(event["key"] for event in events) == [f"k{index}" for index in range(5)]
    assert _assumed_roles(moto_endpoint) == [(ROLE, "replica", "tenant-7")]


def test_validate_connect_reports_the_assumed_role_it_runs_as(dynamodb, moto_endpoint, tmp_path):
    create_stream_table(dynamodb, TABLE)
    config = write_config(
        tmp_path / "bridge.yaml", _config_data(tmp_path, moto_endpoint, role_arn=ROLE, session_name="checker")
    )

    result = run_bridge("validate", "--config", str(config), "--connect")

    assert result.returncode == 0, result.stderr
    identity = "AWS identity: account 123456789012, arn arn:aws:sts::123456789012:assumed-role/cdc-reader/checker"
    assert identity in result.stdout.splitlines()
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in result.stdout


def test_expired_role_credentials_are_refreshed_during_a_run(dynamodb, moto_endpoint, tmp_path):
    create_stream_table(dynamodb, TABLE)
    _put(dynamodb, range(3))
    config = parse_config(json.dumps(_config_data(tmp_path, moto_endpoint, role_arn=ROLE, duration_s=900)))
    clock, base = Clock(), boto3.Session()
    assumed = STSCalls(base, clock)
    dynamodb_client, streams = aws_clients(config, session=base, clock=clock)
    signed = SignedKeys(dynamodb_client, streams)
    sink = MemorySink()
    run = PipelineThread(Pipeline(config, dynamodb=dynamodb_client, streams=streams, sinks=[sink]))
    with run:
        wait_for(run.delivered(sink, 3), 30, "the first 3 changes")
        assert len(assumed.keys) == 1  # credentials of 15 minutes are not fetched again on every call
        assert set(signed.since(0)) == {assumed.keys[0]}

        clock.ahead = datetime.timedelta(seconds=900 + 60)  # the first credentials expired a minute ago
        after_expiry = len(signed.since(0))
        _put(dynamodb, range(3, 6))
        wait_for(run.delivered(sink, 6), 30, "the 3 changes written after the credentials expired")

    assert len(assumed.keys) == 2 and assumed.keys[0] != assumed.keys[1]
    later = signed.since(after_expiry)  # may start with calls signed before the clock moved, still in flight
    assert assumed.keys[1] in later
    assert set(later[later.index(assumed.keys[1]) :]) == {assumed.keys[1]}  # the old ones are never used again
    assert run.error is None, run.error


def test_an_unknown_profile_exits_2_with_one_line(moto_endpoint, tmp_path):
    aws_config = tmp_path / "aws-config"
    aws_config.write_text("[profile reader]\nregion = us-east-1\n")
    config = write_config(tmp_path / "bridge.yaml", _config_data(tmp_path, moto_endpoint, profile="writer"))

    result = run_bridge("run", "--config", str(config), env={**os.environ, "AWS_CONFIG_FILE": str(aws_config)})

    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert "source.profile: profile 'writer' is not in the AWS config files" in line
    assert "known profiles: reader" in line


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (
            "AccessDenied",
            f"User: arn:aws:iam::123456789012:user/ci is not authorized to perform: sts:AssumeRole on {ROLE}",
        ),
        ("ExpiredToken", "The security token included in the request is expired"),
    ],
)
def test_a_role_that_cannot_be_assumed_exits_2_naming_the_role_and_the_reason(tmp_path, code, message):
    with RefusingSTS(code, message) as sts:
        config = write_config(tmp_path / "bridge.yaml", _config_data(tmp_path, sts.endpoint, role_arn=ROLE))
        result = run_bridge("run", "--config", str(config), "--until-caught-up")

    assert sts.actions == ["AssumeRole"]
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert f"assuming role {ROLE} (source.role_arn): access denied ({code}: {message})" in line


def test_a_duration_above_the_roles_maximum_exits_2_naming_the_setting(tmp_path):
    message = "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
    with RefusingSTS("ValidationError", message, status=400) as sts:
        data = _config_data(tmp_path, sts.endpoint, role_arn=ROLE, duration_s=43200)
        result = run_bridge("run", "--config", str(write_config(tmp_path / "bridge.yaml", data)))

    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert f"assuming role {ROLE} (source.role_arn): STS refused the request: {message} (source.duration_s" in line


def test_a_throttled_assume_role_at_start_is_one_line_not_a_traceback(tmp_path):
    with RefusingSTS("Throttling", "Rate exceeded", status=400) as sts:
        config = write_config(tmp_path / "bridge.yaml", _config_data(tmp_path, sts.endpoint, role_arn=ROLE))
        result = run_bridge("run", "--config", str(config))

    assert len(sts.actions) > 1 and set(sts.actions) == {"AssumeRole"}  # botocore retried, then gave up
    assert result.returncode == 1
    assert f"assuming role {ROLE} (source.role_arn): " in _one_line(result.stderr)
