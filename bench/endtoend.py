"""End-to-end benchmark: local AWS endpoint -> the real bridge (`python -m bridge run`) -> a real Kafka broker.

The bridge runs as its own process with `--until-caught-up`: it reads the corpus over 4 shards through
boto3, normalizes, encodes and produces (acks=all, idempotent) and exits once every record is acknowledged
and checkpointed. The benchmark then checks that the topic holds exactly the corpus and that the checkpoint
names the last sequence number of every shard. Records/s is the corpus size over the process's whole wall
time, start-up and final flush included. The plain loop (`bench/plainloop.py`) runs against the same
endpoint and broker in the same run.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import yaml
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from bench import corpus
from bench.process import Measured, Service, measure, python
from bridge.source.stream import MIN_CALL_INTERVAL

PARTITIONS = 4


def topic_size(bootstrap: str, topic: str) -> int:
    """How many records the topic holds (sum of end offsets; the topics here are never compacted)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        consumer.close()


def create_topic(bootstrap: str, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        admin.close()


def figures(name: str, records: int, run: Measured) -> dict:
    """The row of one measured run over `records` records (or items)."""
    return {
        "benchmark": name,
        "records": records,
        "seconds": round(run.wall_s, 2),
        "records_per_s": round(records / run.wall_s),
        "us_per_record": round(run.wall_s / records * 1e6, 1),
        "cpu_us_per_record": round(run.cpu_s / records * 1e6, 1),
        "peak_rss_mb": round(run.peak_rss_mb, 1),
    }


def failed(what: str, run: Measured) -> RuntimeError:
    """The error of a benchmark child that exited non-zero, with the end of its stderr."""
    return RuntimeError(f"{what} exited {run.returncode}:\n{run.stderr[-3000:]}")


def bridge_config(
    workdir: Path, endpoint: str, bootstrap: str, topic: str, table: dict | None = None, **source
) -> Path:
    """A bridge config for the benchmark table; `table` overrides table settings (default: streaming only,
    `snapshot: never`, from the trim horizon), `source` overrides source settings."""
    config = {
        "source": {"endpoint_url": endpoint, "region": corpus.REGION, **source},
        "tables": [{"name": corpus.TABLE, "snapshot": "never", **(table or {})}],
        "sinks": [
            {
                "type": "kafka",
                "bootstrap_servers": bootstrap,
                "topic": topic,
                "create_topics": True,
                "partitions": PARTITIONS,
            }
        ],
        "checkpoint": {"path": str(workdir / f"{uuid.uuid4().hex[:8]}-checkpoints.json")},
    }
    path = workdir / f"bridge-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_bridge(bootstrap: str, records: int, workdir: Path, name: str) -> dict:
    """The bridge over `records` corpus records; raises unless every record reached Kafka and the checkpoint."""
    manifest = workdir / f"manifest-{records}.json"
    server = Service(python("-m", "bench.fakeaws", "--records", str(records), "--manifest", str(manifest)))
    try:
        topic = f"bench-{name.replace('/', '-')}-{uuid.uuid4().hex[:6]}"
        config = bridge_config(workdir, f"http://127.0.0.1:{server.port}", bootstrap, topic)
        run = measure(
            python("-m", "bridge", "--log-level", "WARNING", "run", "--config", str(config), "--until-caught-up")
        )
    finally:
        server.stop()
    if run.returncode != 0:
        raise failed("the bridge", run)
    in_topic = topic_size(bootstrap, topic)
    if in_topic != records:
        raise RuntimeError(f"the bridge left {in_topic} records in {topic}, expected {records}")
    checkpoint = json.loads(Path(yaml.safe_load(config.read_text())["checkpoint"]["path"]).read_text())
    stored = {shard: entry["sequence_number"] for shard, entry in checkpoint["streams"][corpus.STREAM_ARN].items()}
    expected = json.loads(manifest.read_text())
    if stored != expected["last"]:
        raise RuntimeError(f"checkpoint {stored} does not end at the last record of every shard")
    result = figures(name, records, run)
    # AWS allows 5 GetRecords calls per second per shard (the bridge keeps MIN_CALL_INTERVAL between them): a
    # shard of P pages takes P + 1 calls (the last finds its end), P intervals, however fast the bridge is
    fastest_s = max(expected["pages"].values()) * MIN_CALL_INTERVAL
    result["pacing_limit_records_per_s"] = round(records / fastest_s)
    return result


def run_baseline(server: Service, module: str, bootstrap: str, what: str) -> tuple[str, Measured]:
    """`python -m module` against the endpoint `server` into a new topic (stopping `server` after); returns the
    topic and the run, and raises unless the run exited 0 (`what` names it)."""
    try:
        topic = f"bench-{module.rpartition('.')[2]}-{uuid.uuid4().hex[:6]}"
        create_topic(bootstrap, topic)
        endpoint = f"http://127.0.0.1:{server.port}"
        run = measure(python("-m", module, "--endpoint", endpoint, "--bootstrap", bootstrap, "--topic", topic))
    finally:
        server.stop()
    if run.returncode != 0:
        raise failed(what, run)
    return topic, run


def run_plain_loop(bootstrap: str, records: int) -> dict:
    """The plain loop over `records` corpus records; raises unless every record reached Kafka."""
    server = Service(python("-m", "bench.fakeaws", "--records", str(records)))
    topic, run = run_baseline(server, "bench.plainloop", bootstrap, "the plain loop")
    if topic_size(bootstrap, topic) != records:
        raise RuntimeError(f"the plain loop left {topic_size(bootstrap, topic)} records in {topic}, expected {records}")
    return figures("end-to-end/plain-loop", records, run)
