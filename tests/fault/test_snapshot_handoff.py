"""The snapshot's promise under kill -9: a consumer that applies the topic in partition order ends with the
table (no gap), never sees an item go back to an older state (no regress), and a killed snapshot resumes
where its segments were instead of starting over.

20,000 items are loaded into moto before the bridge starts (`snapshot: initial`, 4 segments, a read budget
that makes the Scan last about half a minute). While the snapshot runs, a writer updates items (`version`
grows by one per update), deletes some and puts new ones (version 1), some of them under keys it deleted.
Just after a page of rows reached the topic (and after the checkpoint holds at least one page), the real
`cdc-bridge run` is SIGKILLed and started again; it must resume, finish ("snapshot of table X done"), and a
final `--until-caught-up` run delivers the rest of the stream. `FAULT_SEED` replays a run's writes.

The consumer is the one the README describes: in each partition, in offset order, it skips an event whose
`event_id` it already applied, upserts `after` on r/c/u and deletes on d.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import boto3
from boto3.dynamodb.types import TypeDeserializer
from kafka import KafkaConsumer, TopicPartition

from bridge.codec import decode_value
from tests.bridge_process import run_bridge
from tests.fault.bridge_runner import BridgeRunner, bridge_config
from tests.fault.conftest import FIGURES
from tests.kafka_topic import read_topic
from tests.polling import wait_for
from tests.tables import create_stream_table

TABLE = "Inventory"
ITEMS = 20_000
WRITES_PER_S = 75
# moto 5.2.5 answers every Scan with ConsumedCapacity {"CapacityUnits": 1.0}, whatever the page holds (a
# constant, like its PutItem's 1.0 and GetItem's 0.5), and cuts pages at 1 MB: these 20,000 items of 200-1000
# bytes make 16 pages (about 1,600 items each, three full pages and a short last one per segment). The budget
# is therefore in pages per second: 0.6 units/s paces the 16 pages over about 25 s. The bucket starts with
# 0.6 units and the 4 segment threads wait for the same debt, so pages tend to come in bursts of 4, about 6 s
# apart (the kill lands after the first page or the first burst).
READ_UNITS_PER_S = 0.6
KILL_JUMP = 500  # records on the topic past the last commit: a page of rows (the writer adds ~40 a commit)


def _item(key: str, rng: random.Random) -> dict:
    return {"pk": {"S": key}, "version": {"N": "1"}, "pad": {"S": "p" * rng.randrange(200, 1000)}}


def _load(endpoint: str, seed: int) -> list[str]:
    """ITEMS items at version 1 (BatchWriteItem, 25 a call, a few calls at a time); their keys."""
    keys = [f"item-{i:05d}" for i in range(ITEMS)]
    rng = random.Random(seed)
    batches = [[_item(key, rng) for key in keys[start : start + 25]] for start in range(0, ITEMS, 25)]
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")

    def write(batch: list[dict]) -> None:
        requests = {TABLE: [{"PutRequest": {"Item": item}} for item in batch]}
        while requests:
            requests = client.batch_write_item(RequestItems=requests)["UnprocessedItems"]

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, batches))
    return keys


@dataclass
class SnapshotWriter:
    """Updates (`version = version + 1`), deletes and puts (version 1, new keys or deleted ones) at
    `WRITES_PER_S`, in a thread, until `stop`. It is the only writer, so it knows which keys are live."""

    endpoint: str
    live: list[str]
    seed: int
    touched: set[str] = field(default_factory=set)
    counts: Counter = field(default_factory=Counter)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="snapshot-writer", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the writer did not stop"
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            self._write()
        except BaseException as error:  # reported by stop()
            self.error = error

    def _write(self) -> None:
        client = boto3.client("dynamodb", endpoint_url=self.endpoint, region_name="us-east-1")
        rng = random.Random(self.seed)
        live, deleted, fresh = list(self.live), [], 0
        start = time.monotonic()
        for i in range(10**9):
            if self.stopping.wait(max(0.0, start + i / WRITES_PER_S - time.monotonic())):
                return
            roll = rng.random()
            if roll < 0.7:
                key = rng.choice(live)
                client.update_item(
                    TableName=TABLE,
                    Key={"pk": {"S": key}},
                    UpdateExpression="SET version = version + :one",
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                )
                op = "update"
            elif roll < 0.85:
                key = live.pop(rng.randrange(len(live)))
                client.delete_item(TableName=TABLE, Key={"pk": {"S": key}}, ConditionExpression="attribute_exists(pk)")
                deleted.append(key)
                op = "delete"
            else:
                if deleted and rng.random() < 0.5:
                    key, op = deleted.pop(rng.randrange(len(deleted))), "re-put"
                else:
                    key, op, fresh = f"new-{fresh:05d}", "put", fresh + 1
                client.put_item(TableName=TABLE, Item=_item(key, rng), ConditionExpression="attribute_not_exists(pk)")
                live.append(key)
            self.touched.add(key)
            self.counts[op] += 1


@dataclass
class Materialized:
    """What the consumer built from the topic, and what it saw on the way."""

    items: dict[str, dict] = field(default_factory=dict)
    applied: Counter = field(default_factory=Counter)  # op -> events applied
    skipped: Counter = field(default_factory=Counter)  # op -> events skipped as already applied
    rows_on_topic: int = 0
    row_keys: set[str] = field(default_factory=set)  # keys of the r events on the topic
    regressions: list[str] = field(default_factory=list)
    reused_ids: dict[str, set[str]] = field(default_factory=dict)  # an event_id given to events of several keys


def _materialize(records: list, *, skip_applied_ids: bool = True) -> Materialized:
    """Apply the topic per partition, in offset order: skip an `event_id` already applied (unless told not
    to: a diagnosis), upsert `after` on r/c/u, delete on d; record every version that goes back (a delete
    resets; only an insert brings a deleted key back, at version 1)."""
    result = Materialized()
    applied_ids: dict[str, str] = {}  # event_id -> key of the event applied under it
    version: dict[str, Decimal] = {}  # key -> version of the live item as applied
    deleted: set[str] = set()  # keys whose last applied event was a d
    by_partition = defaultdict(list)
    for record in records:
        by_partition[record.partition].append(record)
    for partition in sorted(by_partition):
        for record in sorted(by_partition[partition], key=lambda r: r.offset):
            event = decode_value(record.value)
            op, key, event_id = event["op"], event["keys"]["pk"], event["source"]["event_id"]
            assert record.key == key.encode(), f"record key {record.key!r} is not the item's partition key {key!r}"
            if op == "r":
                result.rows_on_topic += 1
                result.row_keys.add(key)
            if event_id in applied_ids:
                if applied_ids[event_id] != key:
                    result.reused_ids.setdefault(event_id, {applied_ids[event_id]}).add(key)
                if skip_applied_ids:
                    result.skipped[op] += 1
                    continue
            applied_ids[event_id] = key
            result.applied[op] += 1
            where = f"{key} at partition {partition} offset {record.offset} ({op}, {event_id})"
            if op == "d":
                result.items.pop(key, None)
                version.pop(key, None)
                deleted.add(key)
                continue
            new = event["after"]["version"]
            if key in deleted and (op != "c" or new != 1):
                result.regressions.append(f"{where}: deleted item back at version {new} by a {op}")
            elif key in version and new < version[key]:
                result.regressions.append(f"{where}: version {version[key]} -> {new}")
            deleted.discard(key)
            version[key] = new
            result.items[key] = event["after"]
    return result


def _table_now(endpoint: str) -> dict[str, dict]:
    """A consistent Scan of the table, as plain values (numbers as Decimal)."""
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    plain = TypeDeserializer().deserialize
    items = {}
    for page in client.get_paginator("scan").paginate(TableName=TABLE, ConsistentRead=True):
        for item in page["Items"]:
            items[item["pk"]["S"]] = {name: plain(value) for name, value in item.items()}
    return items


def _committed_snapshot(checkpoint: Path) -> dict | None:
    """The table's snapshot as the checkpoint file holds it (None before the first commit)."""
    try:
        return json.loads(checkpoint.read_text()).get("snapshots", {}).get(TABLE)
    except FileNotFoundError:
        return None


class TopicSize:
    """Records on a topic so far (sum of its end offsets), asked cheaply and often."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap)

    def __call__(self) -> int:
        partitions = self.consumer.partitions_for_topic(self.topic) or set()
        ends = self.consumer.end_offsets([TopicPartition(self.topic, p) for p in partitions])
        return sum(ends.values())

    def close(self) -> None:
        self.consumer.close()


def _kill_just_after_a_page(bridge: BridgeRunner, checkpoint: Path, size: TopicSize) -> dict:
    """SIGKILL the bridge as soon as a page of rows reached the topic after a commit that held at least one page
    (rows the checkpoint does not cover: they come again); the snapshot as committed at the kill."""
    commit = {"mtime": None, "total": 0}  # the last commit seen, and the topic's size just after it

    def rows_past_the_checkpoint() -> bool:
        assert bridge.process.poll() is None, f"the bridge exited:\n{bridge.tail()}"
        snapshot = _committed_snapshot(checkpoint)
        if snapshot is None or not any(segment["last_key"] for segment in snapshot["segments"]):
            return False
        mtime, total = checkpoint.stat().st_mtime_ns, size()
        if mtime != commit["mtime"]:  # a new commit: what is on the topic now is covered (flushed before it)
            commit.update(mtime=mtime, total=total)
            return False
        return total - commit["total"] >= KILL_JUMP

    wait_for(rows_past_the_checkpoint, 60, "a page of rows on the topic past a committed one", interval=0.05)
    bridge.kill()
    return _committed_snapshot(checkpoint)


def _gap(table_now: dict[str, dict], consumer: Materialized, records: list) -> list[str]:
    """How what the consumer built differs from the table (empty: no gap), with what explains it."""
    missing = sorted(table_now.keys() - consumer.items.keys())
    extra = sorted(consumer.items.keys() - table_now.keys())
    stale = sorted(key for key in table_now.keys() & consumer.items.keys() if table_now[key] != consumer.items[key])
    if not (missing or extra or stale):
        return []
    unskipped = _materialize(records, skip_applied_ids=False).items
    differ = {key for key in table_now.keys() | unskipped.keys() if table_now.get(key) != unskipped.get(key)}
    return [
        f"gap: {len(missing)} items missing {missing[:5]} ({len(set(missing) & consumer.row_keys)} of them have a "
        f"row on the topic), {len(extra)} extra {extra[:5]}, {len(stale)} stale {stale[:5]}; applying every "
        f"record (no event_id skip) leaves {len(differ)} items different from the table"
    ]


def _reused_ids(consumer: Materialized) -> list[str]:
    """event_ids carried by events of different items (the README's dedupe by event_id then drops events)."""
    if not consumer.reused_ids:
        return []
    return [
        f"event_id: {len(consumer.reused_ids)} ids name events of different items, e.g. "
        f"{sorted(consumer.reused_ids.items())[:3]}"
    ]


def _not_resumed(untouched: set[str], consumer: Materialized) -> list[str]:
    """Rows read twice over (a snapshot started again) or items the writer never touched without a row."""
    problems = []
    if not untouched <= consumer.row_keys:
        problems.append(f"resumed: {len(untouched - consumer.row_keys)} untouched items have no row on the topic")
    if consumer.rows_on_topic >= 1.5 * ITEMS:
        problems.append(f"resumed: {consumer.rows_on_topic} rows on the topic for {ITEMS} items")
    return problems


def test_snapshot_killed_mid_scan_resumes_without_gap_or_regress(
    dynamodb, moto_endpoint, kafka_bootstrap, tmp_path, record_property
):
    seed = int(os.environ.get("FAULT_SEED", random.randrange(1 << 30)))
    began = time.monotonic()
    create_stream_table(dynamodb, TABLE)
    keys = _load(moto_endpoint, seed)
    loaded_s = time.monotonic() - began
    topic = f"snapshot-{uuid.uuid4().hex[:8]}"
    checkpoint = tmp_path / "checkpoints.json"
    table = {
        "name": TABLE,
        "snapshot": "initial",
        "snapshot_segments": 4,
        "snapshot_max_read_units_per_s": READ_UNITS_PER_S,
    }
    config = bridge_config(tmp_path / "bridge.yaml", moto_endpoint, kafka_bootstrap, topic, table=table)
    bridge = BridgeRunner(config, tmp_path / "bridge.log")
    writer = SnapshotWriter(moto_endpoint, keys, seed)
    size = TopicSize(kafka_bootstrap, topic)
    try:
        writer.start()
        bridge.start()
        at_kill = _kill_just_after_a_page(bridge, checkpoint, size)
        killed_s = time.monotonic() - began
        bridge.start()
        done = f"snapshot of table {TABLE} done"
        wait_for(lambda: bridge.logged(done), 90, "the resumed snapshot to finish", interval=0.2)
        writer.stop()
        bridge.signal(15)
        drained = bridge.wait(timeout=60)
        final = run_bridge("--log-level", "INFO", "run", "--config", str(config), "--until-caught-up")
    finally:
        writer.stopping.set()
        bridge.stop()
        size.close()
    records = read_topic(kafka_bootstrap, topic, timeout=60)
    table_now = _table_now(moto_endpoint)
    consumer = _materialize(records)
    log = bridge.log.read_text()
    committed = sum(segment["items"] for segment in at_kill["segments"])
    figures = (
        f"seed={seed} load={loaded_s:.1f}s kill_at={killed_s:.1f}s total={time.monotonic() - began:.1f}s "
        f"writes={dict(writer.counts)} committed_at_kill={committed} rows_on_topic={consumer.rows_on_topic} "
        f"applied={dict(consumer.applied)} skipped={dict(consumer.skipped)}"
    )
    FIGURES.append(figures)
    print(figures)
    record_property("fault_figures", figures)

    assert final.returncode == 0, final.stderr
    assert drained == 0, bridge.tail()
    assert bridge.unexpected_exits == [], bridge.tail()
    assert f"snapshot of table {TABLE} resumed (initial)" in log, bridge.tail()
    assert not any(segment["done"] for segment in at_kill["segments"]), f"killed too late: {at_kill}"
    assert committed < ITEMS / 2, f"killed too late: {committed} rows checkpointed"
    # Every property is checked before the test fails, so one run shows all that broke.
    problems = [
        *_gap(table_now, consumer, records),
        *[f"regress ({len(consumer.regressions)} in all): {line}" for line in consumer.regressions[:10]],
        *_reused_ids(consumer),
        *_not_resumed(set(keys) - writer.touched, consumer),
    ]
    assert problems == [], f"{figures}\n" + "\n".join(problems)
