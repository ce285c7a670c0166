"""Session fixtures: a real Kafka broker and a real moto server on loopback, started once per test run, and
a fake Schema Registry (`registry`: emptied for each test).

`KAFKA_BOOTSTRAP_SERVERS` / `DYNAMODB_ENDPOINT_URL` point the tests at external services instead.
A service that cannot start skips its tests locally and fails the run when `CI=true`.
"""

from __future__ import annotations

import os

import boto3
import pytest

from tests.schema_registry import FakeRegistry
from tests.services import KafkaBroker, MotoServer, ServiceError, reset

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"  # in-process moto only knows the classic hosts


STARTED: list[str] = []


def pytest_terminal_summary(terminalreporter):
    for line in STARTED:
        terminalreporter.write_line(f"real service used: {line}")


def _unavailable(what: str, error: Exception) -> None:
    message = f"{what} could not be started: {error}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    """The test run's own broker (None when KAFKA_BOOTSTRAP_SERVERS names an external one)."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield None
        return
    broker = None
    try:
        broker = KafkaBroker(tmp_path_factory.mktemp("kafka"))
        broker.start()
        STARTED.append(f"Apache Kafka {broker.version} (KRaft, single node) at {broker.bootstrap}")
    except ServiceError as error:
        if broker:
            broker.stop()
        _unavailable("Kafka", error)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker) -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or kafka_broker.bootstrap


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    """URL of a moto server speaking DynamoDB and DynamoDB Streams."""
    if os.environ.get("DYNAMODB_ENDPOINT_URL"):
        yield os.environ["DYNAMODB_ENDPOINT_URL"]
        return
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    try:
        server.start()
        STARTED.append(f"moto server (DynamoDB + Streams) at {server.endpoint}")
    except ServiceError as error:
        server.stop()
        _unavailable("moto server", error)
    yield server.endpoint
    server.stop()


@pytest.fixture
def dynamodb(moto_endpoint):
    """A DynamoDB client on a freshly reset moto server."""
    reset(moto_endpoint)
    return boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture(scope="session")
def schema_registry():
    """The run's fake Confluent Schema Registry (tests/schema_registry.py), in this process on a loopback port."""
    registry = FakeRegistry()
    registry.start()
    yield registry
    registry.stop()


@pytest.fixture
def registry(schema_registry) -> FakeRegistry:
    """The fake registry, running and empty for this test: no schemas, levels, scripts, credentials or requests."""
    if not schema_registry.running:  # a test before this one stopped it
        schema_registry.start()
    schema_registry.reset()
    return schema_registry


@pytest.fixture
def lambda_function(tmp_path):
    """Starts the bridge's Lambda handler in AWS's runtime interface emulator (tests/lambda_runtime.py):
    `lambda_function(config_path, env=None, timeout_s=60)`; every function started is stopped after the test."""
    from tests.lambda_runtime import LambdaFunction

    started: list = []

    def start(config, env: dict | None = None, timeout_s: int = 60):
        try:
            function = LambdaFunction(tmp_path, config, env, timeout_s)
            started.append(function)
            return function.start()
        except ServiceError as error:
            _unavailable("the Lambda runtime interface emulator", error)

    yield start
    for function in started:
        function.stop()
