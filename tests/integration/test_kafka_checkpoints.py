"""The Kafka checkpoint store against the real test broker: what it writes and reads back, the topic it needs,
the records it refuses, fencing by transactional id, the pipeline's shared transaction, and the `checkpoints`
and `status` commands on it (with `checkpoints --copy-to kafka` moving a file checkpoint into it)."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from bridge.checkpoint import CheckpointStore, SegmentPosition, ShardCheckpoint, SnapshotCheckpoint
from bridge.checkpoint_kafka import KafkaCheckpointStore
from bridge.commands.demo import create_phones
from bridge.errors import ConfigError, FatalError, RetriableError
from bridge.sinks.kafka import KafkaConfig
from tests.bridge_process import run_bridge, write_config
from tests.kafka_topic import read_topic

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/2024-01-01T00:00:00.000"
SHARDS = {
    (ARN, "shardId-1"): ShardCheckpoint("100"),
    (ARN, "shardId-2"): ShardCheckpoint("200", finished=True),
    (ARN, "shardId-3"): ShardCheckpoint(None, quiet_ms=1_700_000_000_000),
}
SNAPSHOTS = {
    "Orders": SnapshotCheckpoint(
        1_700_000_000_000,
        "initial",
        (SegmentPosition({"id": {"S": "o42"}}, False, 42), SegmentPosition(None, True, 7)),
    )
}


@pytest.fixture
def topic() -> str:
    return f"checkpoints-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def stores(kafka_bootstrap):
    """`make(topic, writer_id=topic, create_topics=True, **options)`: a store on the test broker, closed after."""
    made: list[KafkaCheckpointStore] = []

    def make(topic: str, writer_id: str | None = None, create_topics: bool = True, **options):
        kafka = KafkaConfig(bootstrap_servers=kafka_bootstrap, create_topics=create_topics)
        store = KafkaCheckpointStore(kafka, topic, writer_id or topic, **options)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def admin(kafka_bootstrap):
    client = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    yield client
    client.close()


def _locked(store: KafkaCheckpointStore) -> KafkaCheckpointStore:
    store.lock()
    store.read()
    return store


def _next_owner_reads(store: KafkaCheckpointStore):
    """What the next bridge reads: it takes the id first, and InitProducerId waits until the last transaction's
    commit markers are written. A `read_committed` read right after a commit, by nobody holding the id, may
    still stop before them: a committed transaction's markers are written just after `commit` returns."""
    store.lock()
    return store.read()


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value)
        producer.flush(10)
    finally:
        producer.close()


def _shard_key(shard_id: str) -> bytes:
    return json.dumps(["shard", ARN, shard_id], separators=(",", ":")).encode()


def test_saved_shards_and_snapshots_read_back_the_same_in_a_new_store(stores, topic):
    _locked(stores(topic)).save(SHARDS, SNAPSHOTS)
    assert _next_owner_reads(stores(topic)) == (SHARDS, SNAPSHOTS)


def test_a_second_save_writes_only_the_changed_records(stores, topic, kafka_bootstrap):
    store = _locked(stores(topic))
    store.save(SHARDS, SNAPSHOTS)
    assert len(read_topic(kafka_bootstrap, topic)) == 4
    moved = {**SHARDS, (ARN, "shardId-1"): ShardCheckpoint("150")}
    store.save(moved, SNAPSHOTS)
    store.save(moved, SNAPSHOTS)  # nothing changed: nothing written
    records = read_topic(kafka_bootstrap, topic)
    assert len(records) == 5
    assert records[-1].key == _shard_key("shardId-1")
    assert json.loads(records[-1].value) == {"version": 2, "sequence_number": "150", "finished": False}
    again = _locked(stores(topic))  # a store that read the topic knows what is stored too
    again.save(moved, SNAPSHOTS)
    assert len(read_topic(kafka_bootstrap, topic)) == 5


def test_a_dropped_shard_and_snapshot_are_tombstones_and_read_as_gone(stores, topic, kafka_bootstrap):
    store = _locked(stores(topic))
    store.save(SHARDS, SNAPSHOTS)
    kept = {key: value for key, value in SHARDS.items() if key[1] != "shardId-2"}
    store.save(kept, {})
    tombstones = {record.key for record in read_topic(kafka_bootstrap, topic) if record.value is None}
    assert tombstones == {_shard_key("shardId-2"), b'["snapshot","Orders"]'}
    assert _next_owner_reads(stores(topic)) == (kept, {})


def test_lock_creates_the_topic_with_one_compacted_partition(stores, topic, admin):
    stores(topic).lock()
    (described,) = admin.describe_topics([topic])
    assert len(described["partitions"]) == 1
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, ["cleanup.policy"])
    configs = admin.describe_configs([resource], config_filter="all")["topic"][topic]
    assert configs["cleanup.policy"]["value"] == "compact"


def test_a_missing_topic_without_create_topics_is_a_config_error(stores, topic, admin):
    with pytest.raises(ConfigError, match=f"checkpoint topic {topic} does not exist.*create_topics: true"):
        stores(topic, create_topics=False).lock()
    assert topic not in admin.list_topics()


def test_a_missing_topic_reads_as_empty_without_being_created(stores, topic, admin):
    assert stores(topic).read() == ({}, {})
    assert topic not in admin.list_topics()


def test_a_topic_that_deletes_old_records_is_a_config_error(stores, topic, admin):
    admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"cleanup.policy": "delete"})])
    with pytest.raises(ConfigError, match=f"checkpoint topic {topic} has cleanup.policy=delete.*retention.ms"):
        stores(topic).lock()


@pytest.mark.parametrize(
    ("key", "value", "complaint"),
    [
        (b"not json", b"{}", "its key b'not json' is not JSON"),
        (b'["shard","arn"]', b'{"version":2}', 'neither \\["shard", stream_arn, shard_id\\]'),
        (_shard_key("shardId-9"), b"\xff\xfe", "its value is not JSON"),
        (_shard_key("shardId-9"), b'{"version":2,"finished":"yes"}', "is not a shard checkpoint"),
        (_shard_key("shardId-9"), b'[2, "100"]', "is not an object with a format version"),
    ],
)
def test_a_record_that_is_no_checkpoint_record_is_a_config_error_and_nothing_is_written(
    stores, topic, kafka_bootstrap, key, value, complaint
):
    _locked(stores(topic)).save(SHARDS, SNAPSHOTS)
    _produce(kafka_bootstrap, topic, [(key, value)])
    before = len(read_topic(kafka_bootstrap, topic))
    store = stores(topic)
    store.lock()
    with pytest.raises(ConfigError, match=f"checkpoint topic {topic} partition 0 offset \\d+ .*{complaint}") as error:
        store.read()
    offset = read_topic(kafka_bootstrap, topic)[-1].offset
    assert f"partition 0 offset {offset} is not a cdc-bridge checkpoint record" in str(error.value)
    assert "delete the topic" in str(error.value)
    with pytest.raises(FatalError, match="nothing is written"):
        store.save({})
    assert len(read_topic(kafka_bootstrap, topic)) == before


def test_a_record_of_another_format_version_is_a_config_error(stores, topic, kafka_bootstrap):
    stores(topic).lock()
    _produce(kafka_bootstrap, topic, [(_shard_key("shardId-1"), b'{"version":3,"position":{"seq":"100"}}')])
    with pytest.raises(ConfigError, match=r"offset 0 is a checkpoint record of format version 3; .* reads version 2"):
        stores(topic).read()


def test_a_second_store_with_the_same_writer_id_fences_the_first(stores, topic):
    first = _locked(stores(topic, "bridge-a"))
    first.save(SHARDS)
    second = _locked(stores(topic, "bridge-a"))
    with pytest.raises(FatalError, match="fenced: another bridge took transactional id 'bridge-a'"):
        first.save({})
    with pytest.raises(FatalError, match="fenced"):  # and it stays fenced: it never takes the id back
        first.save({})
    moved = {**SHARDS, (ARN, "shardId-1"): ShardCheckpoint("300")}
    second.save(moved)
    assert stores(topic).load() == moved


def test_a_read_only_load_does_not_fence_the_running_store(stores, topic):
    running = _locked(stores(topic, "bridge-b"))
    running.save(SHARDS)
    assert stores(topic, "bridge-b").load() == SHARDS
    running.save({})
    assert stores(topic).load() == {}


class SharedTransaction:
    """The pipeline's side of exactly-once as far as the store sees it: `send` into the open transaction of a
    real transactional producer; `commit` is the pipeline's, after the store's `save` returned."""

    def __init__(self, bootstrap: str, transactional_id: str) -> None:
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap, transactional_id=transactional_id, retry_backoff_ms=10
        )
        self.producer.init_transactions()
        self.open = False
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    def send(self, topic: str, key: bytes | None, value: bytes | None):
        if not self.open:
            self.producer.begin_transaction()
            self.open = True
        self.sent.append((topic, key, value))
        return self.producer.send(topic, key=key, value=value)

    def commit(self) -> None:
        self.producer.commit_transaction()
        self.open = False

    def close(self) -> None:
        self.producer.close(timeout=1)


def test_a_store_given_the_pipeline_transaction_sends_its_records_into_it(stores, topic, kafka_bootstrap):
    transaction = SharedTransaction(kafka_bootstrap, "bridge-eos")
    try:
        # the same transactional id: a producer of the store's own would fence the pipeline's
        store = _locked(stores(topic, "bridge-eos", transaction=transaction))
        store.save(SHARDS, SNAPSHOTS)
        assert {topic_ for topic_, _, _ in transaction.sent} == {topic} and len(transaction.sent) == 4
        assert stores(topic).read() == ({}, {})  # read_committed: nothing before the pipeline commits
        transaction.commit()
        assert stores(topic).read() == (SHARDS, SNAPSHOTS)
        store.save({**SHARDS, (ARN, "shardId-1"): ShardCheckpoint("101")}, SNAPSHOTS)
        assert [key for _, key, _ in transaction.sent[4:]] == [_shard_key("shardId-1")]
        transaction.commit()
    finally:
        transaction.close()


def test_a_save_the_broker_does_not_confirm_is_retriable_and_written_by_the_next_save(stores, topic, kafka_broker):
    if kafka_broker is None:
        pytest.skip("freezing needs the test run's own broker (KAFKA_BOOTSTRAP_SERVERS is set)")
    store = _locked(stores(topic, timeout_s=2))
    store.save(SHARDS)
    moved = {**SHARDS, (ARN, "shardId-1"): ShardCheckpoint("500")}
    os.kill(kafka_broker.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(RetriableError):
            store.save(moved)
        assert time.monotonic() - started < 10
    finally:
        os.kill(kafka_broker.process.pid, signal.SIGCONT)
    store.save(moved)  # the failed save is not taken as stored: it is written now
    assert stores(topic).load() == moved


def test_an_unreachable_broker_is_a_retriable_error_for_reading(topic):
    store = KafkaCheckpointStore(KafkaConfig(bootstrap_servers="127.0.0.1:9"), topic, topic)
    started = time.monotonic()
    with pytest.raises(RetriableError, match=r"no Kafka broker reachable at 127\.0\.0\.1:9"):
        store.read()
    assert time.monotonic() - started < 15


# The commands, run as users run them: the real CLI in a subprocess.


def _config(tmp_path, kafka_bootstrap, topic: str, store: str = "file", endpoint: str = "http://127.0.0.1:9"):
    data = {
        "source": {"endpoint_url": endpoint, "poll_interval_ms": 50},
        "tables": [{"name": "Phones", "snapshot": "initial"}],
        "sinks": [
            {
                "type": "kafka",
                "bootstrap_servers": kafka_bootstrap,
                "topic": f"{topic}.{{table}}",
                "create_topics": True,
            }
        ],
        "checkpoint": {"store": store, "path": str(tmp_path / "checkpoints.json"), "topic": topic},
    }
    return write_config(tmp_path / f"bridge-{store}.yaml", data)


def test_copy_to_kafka_moves_a_run_s_checkpoint_and_both_commands_read_it_there(
    tmp_path, dynamodb, moto_endpoint, kafka_bootstrap, topic
):
    create_phones(dynamodb)
    on_file = _config(tmp_path, kafka_bootstrap, topic, endpoint=moto_endpoint)
    on_kafka = _config(tmp_path, kafka_bootstrap, topic, store="kafka", endpoint=moto_endpoint)
    run = run_bridge("run", "--config", str(on_file), "--until-caught-up")
    assert run.returncode == 0, run.stderr
    shards, snapshots = CheckpointStore(tmp_path / "checkpoints.json").read()
    assert len(shards) == 1 and set(snapshots) == {"Phones"}
    assert run_bridge("checkpoints", "--config", str(on_kafka)).stderr.startswith(
        f"no checkpoints yet in Kafka topic {topic}"
    )

    copy = run_bridge("checkpoints", "--config", str(on_file), "--copy-to", "kafka")
    assert copy.returncode == 0, copy.stderr
    assert f"copied 1 shard checkpoint(s) and 1 snapshot(s) from {tmp_path / 'checkpoints.json'}" in copy.stdout
    assert f"to checkpoint topic {topic} at {kafka_bootstrap}" in copy.stdout
    assert "checkpoint.store: kafka" in copy.stdout

    assert KafkaCheckpointStore(KafkaConfig(bootstrap_servers=kafka_bootstrap), topic, topic).read() == (
        shards,
        snapshots,
    )
    listed = {
        name: run_bridge("checkpoints", "--config", str(path))
        for name, path in [("file", on_file), ("kafka", on_kafka)]
    }
    assert listed["kafka"].returncode == 0, listed["kafka"].stderr
    assert listed["kafka"].stdout == listed["file"].stdout and "Phones" in listed["kafka"].stdout
    status = {
        name: run_bridge("status", "--config", str(path), "--format", "json")
        for name, path in [("file", on_file), ("kafka", on_kafka)]
    }
    assert status["kafka"].returncode == 0, status["kafka"].stderr
    reported = json.loads(status["kafka"].stdout)
    assert reported == json.loads(status["file"].stdout)
    assert reported["shards"][0]["checkpoint"] == next(iter(shards.values())).sequence_number
    assert [s["table"] for s in reported["snapshots"]] == ["Phones"]


def test_copy_to_kafka_refuses_a_topic_that_holds_checkpoints(tmp_path, kafka_bootstrap, topic, stores):
    CheckpointStore(tmp_path / "checkpoints.json").save(SHARDS, SNAPSHOTS)
    _locked(stores(topic)).save({(ARN, "shardId-7"): ShardCheckpoint("7")})
    before = len(read_topic(kafka_bootstrap, topic))
    result = run_bridge("checkpoints", "--config", str(_config(tmp_path, kafka_bootstrap, topic)), "--copy-to", "kafka")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "already holds checkpoints" in result.stderr
    assert len(read_topic(kafka_bootstrap, topic)) == before


def test_copy_to_kafka_refuses_when_the_file_holds_no_checkpoint(tmp_path, kafka_bootstrap, topic, admin):
    result = run_bridge("checkpoints", "--config", str(_config(tmp_path, kafka_bootstrap, topic)), "--copy-to", "kafka")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "holds no checkpoint" in result.stderr
    assert topic not in admin.list_topics()


def test_copy_to_kafka_refuses_a_file_a_running_bridge_holds(tmp_path, kafka_bootstrap, topic):
    running = CheckpointStore(tmp_path / "checkpoints.json")
    running.save(SHARDS)
    running.lock()
    try:
        config = _config(tmp_path, kafka_bootstrap, topic)
        result = run_bridge("checkpoints", "--config", str(config), "--copy-to", "kafka")
    finally:
        running.close()
    assert result.returncode == 2
    assert "is in use by another cdc-bridge" in result.stderr
    assert KafkaCheckpointStore(KafkaConfig(bootstrap_servers=kafka_bootstrap), topic, topic).load() == {}
