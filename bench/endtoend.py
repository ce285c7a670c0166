"""End-to-end benchmark: local AWS endpoint -> the real bridge (`python -m bridge run`) -> a real Kafka broker.

The bridge runs as its own process with `--until-caught-up`: it reads the corpus over 4 shards through
boto3, normalizes, encodes and produces (acks=all, idempotent) and exits once every record is acknowledged
and checkpointed. The benchmark then checks that the topic holds exactly the corpus and that the checkpoint
names the last sequence number of every shard. Records/s is the corpus size over the process's whole wall
time, start-up and final flush included. The plain loop (`bench/plainloop.py`) runs against the same
endpoint and broker in the same run.

With `exactly_once`, the same run with `delivery: exactly_once` and the checkpoint in a compacted topic: each
checkpoint interval (default 1 s) is one Kafka transaction. The check then reads the topic as a
`read_committed` consumer: the corpus, each `event_id` once, and the checkpoint read back from its topic.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import yaml
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from bench import corpus
from bench.process import Measured, Service, measure, python
from bridge.checkpoint_kafka import store_for
from bridge.config import load_config
from bridge.source.stream import MIN_CALL_INTERVAL

PARTITIONS = 4
READ_TIMEOUT_S = 120  # longest read of a benchmark topic back to its end


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


def warm_transactions(bootstrap: str) -> None:
    """Initialise one transactional id, so that the broker creates its transaction state topic now: the first
    transactional producer of a cluster waits for it (~0.8 s more on the benchmark's new broker), which a cluster
    does once in its life, not at each start of a bridge."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"bench-warm-up-{uuid.uuid4().hex[:6]}")
    try:
        producer.init_transactions()
    finally:
        producer.close()


def committed_records(bootstrap: str, topic: str) -> tuple[int, int]:
    """(records, distinct `event_id` headers) of `topic` as a `read_committed` consumer reads it to its end (its
    end offsets also count the transactions' commit markers, so `topic_size` does not apply)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed")
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or set())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        count, event_ids = 0, set()
        deadline = time.monotonic() + READ_TIMEOUT_S
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{topic} was not read to its end within {READ_TIMEOUT_S:g} s")
            for records in consumer.poll(timeout_ms=500).values():
                count += len(records)
                event_ids.update(dict(record.headers)["event_id"] for record in records)
        return count, len(event_ids)
    finally:
        consumer.close()


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
    workdir: Path,
    endpoint: str,
    bootstrap: str,
    topic: str,
    table: dict | None = None,
    *,
    exactly_once: bool = False,
    registry: str | None = None,
    **source,
) -> Path:
    """A bridge config for the benchmark table; `table` overrides table settings (default: streaming only,
    `snapshot: never`, from the trim horizon), `source` overrides source settings. `exactly_once`: `delivery:
    exactly_once` with the checkpoint in the compacted topic `<topic>-checkpoints` (its transactional id), the
    checkpoint interval left at its default; otherwise the default delivery and a checkpoint file. `registry`: a
    schema registry URL, so values are in the Confluent wire format (`wire_format: auto`)."""
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
    if exactly_once:
        config["delivery"] = "exactly_once"
        config["checkpoint"] = {"store": "kafka", "topic": f"{topic}-checkpoints"}
    if registry is not None:
        config["schema_registry"] = {"url": registry}
    path = workdir / f"bridge-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_bridge(
    bootstrap: str, records: int, workdir: Path, name: str, *, exactly_once: bool = False, registry: str | None = None
) -> dict:
    """The bridge over `records` corpus records (`exactly_once`: with `delivery: exactly_once`; `registry`: in
    the Confluent wire format with that registry); raises unless every record reached Kafka (once, for a
    `read_committed` reader) and the checkpoint."""
    if exactly_once:
        warm_transactions(bootstrap)
    manifest = workdir / f"manifest-{records}.json"
    server = Service(python("-m", "bench.fakeaws", "--records", str(records), "--manifest", str(manifest)))
    try:
        topic = f"bench-{name.replace('/', '-')}-{uuid.uuid4().hex[:6]}"
        endpoint = f"http://127.0.0.1:{server.port}"
        config = bridge_config(workdir, endpoint, bootstrap, topic, exactly_once=exactly_once, registry=registry)
        run = measure(
            python("-m", "bridge", "--log-level", "WARNING", "run", "--config", str(config), "--until-caught-up")
        )
    finally:
        server.stop()
    if run.returncode != 0:
        raise failed("the bridge", run)
    if exactly_once:
        in_topic, distinct = committed_records(bootstrap, topic)
        if distinct != in_topic:
            raise RuntimeError(f"{topic} holds {in_topic} committed records but {distinct} distinct event ids")
    else:
        in_topic = topic_size(bootstrap, topic)
    if in_topic != records:
        raise RuntimeError(f"the bridge left {in_topic} records in {topic}, expected {records}")
    checkpoint = store_for(load_config(config)).load()
    stored = {shard: entry.sequence_number for (arn, shard), entry in checkpoint.items() if arn == corpus.STREAM_ARN}
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
