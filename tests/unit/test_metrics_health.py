"""The operator HTTP endpoints (/metrics, /healthz, /ready) served by bridge.ops.health over real HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from bridge.config import TableConfig
from bridge.errors import ConfigError
from bridge.ops import metrics
from bridge.ops.health import HealthServer, producer_readiness
from bridge.source import StreamSource
from tests.fake_streams import FakeAWS


def get(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


@pytest.fixture
def server():
    problems: list[str] = []
    server = HealthServer("127.0.0.1", 0, lambda: list(problems)).start()
    yield server, problems
    server.stop()


def test_healthz_answers_200_while_the_process_lives(server):
    health, _ = server
    status, _, body = get(health.port, "/healthz")
    assert status == 200 and json.loads(body) == {"alive": True}


def test_ready_is_503_with_the_list_of_what_is_not_ready_then_200(server):
    health, problems = server
    problems.append("kafka sink: no connection to a broker at 127.0.0.1:1")

    status, content_type, body = get(health.port, "/ready")
    assert status == 503 and content_type == "application/json"
    assert json.loads(body) == {"ready": False, "not_ready": ["kafka sink: no connection to a broker at 127.0.0.1:1"]}

    problems.clear()
    status, _, body = get(health.port, "/ready")
    assert status == 200 and json.loads(body) == {"ready": True}


def test_metrics_are_served_in_prometheus_text_format(server):
    health, _ = server
    status, content_type, body = get(health.port, "/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    assert "# TYPE cdc_bridge_records_written_total counter" in body


def test_unknown_path_is_404(server):
    health, _ = server
    assert get(health.port, "/nope")[0] == 404


def test_port_in_use_is_a_config_error(server):
    health, _ = server
    with pytest.raises(ConfigError, match=r"metrics.port: cannot listen on 127.0.0.1:\d+"):
        HealthServer("127.0.0.1", health.port, list)


class ReadySink:
    def __init__(self, problem: str | None) -> None:
        self.problem = problem

    def readiness(self) -> str | None:
        return self.problem


@pytest.fixture(autouse=True)
def no_failing_tables(monkeypatch):
    monkeypatch.setattr(metrics, "_failing", {})


def test_a_table_whose_shards_are_not_listed_yet_makes_the_source_not_ready(tmp_path):
    aws = FakeAWS()
    aws.create_table("Orders")
    aws.fail_next("DescribeStream", "InternalServerError", times=10**6)
    source = StreamSource([TableConfig(name="Orders")], aws.dynamodb, aws.streams, _Ledger())
    source.start()
    try:
        assert source.readiness() == ["source: shards of table Orders not listed yet"]
    finally:
        source.stop()


def test_producer_readiness_needs_an_open_producer():
    assert producer_readiness(None, "b:9092") == "not connected yet to a Kafka broker at b:9092"


def test_a_table_whose_get_records_calls_fail_makes_the_source_not_ready():
    source = StreamSource([], None, None, _Ledger())
    metrics._failing["Orders"] = "cannot reach https://streams.dynamodb.us-east-1.amazonaws.com"
    assert source.readiness() == [
        "source: GetRecords of table Orders failing: cannot reach https://streams.dynamodb.us-east-1.amazonaws.com"
    ]


class _Ledger:
    """Where the source finds checkpoints (none) and reports shards to forget."""

    acked: dict = {}

    def forget(self, keys) -> None:
        pass
