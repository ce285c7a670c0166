"""The pipeline alone: a scripted source and recording sinks, no threads, no AWS, no broker.

What it must do with batches: hand each table's events to every sink in order, route poison records by the
table's policy (normalize failures and events a sink rejects alike), store the checkpoint only after every
sink and the dead-letter file flushed, keep the stop deadline, and answer `/ready` through `readiness()`.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import yaml

from bridge.checkpoint import CheckpointStore
from bridge.config import parse_config
from bridge.errors import FatalError, RejectedEvent, RetriableError
from bridge.pipeline import Pipeline
from bridge.source import ShardBatch, TableInfo
from tests.stream_harness import MemorySink, per_key_values

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2026-01-01T00:00:00.000"
INFO = TableInfo("T", ARN, ("pk",), "NEW_AND_OLD_IMAGES", "us-east-1")


def record(sequence: int, key: str, value: int) -> dict:
    keys = {"pk": {"S": key}}
    return {
        "eventID": f"ev-{sequence}",
        "eventName": "MODIFY",
        "dynamodb": {
            "ApproximateCreationDateTime": 1767225600,
            "Keys": keys,
            "NewImage": {**keys, "v": {"N": str(value)}},
            "SequenceNumber": str(10**20 + sequence),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


def batch(records: list, shard: str = "shard-1", ended: bool = False) -> ShardBatch:
    return ShardBatch(INFO, shard, records, ended)


class ScriptedSource:
    """The source contract without threads: `get` hands out the scripted batches in order, then None."""

    def __init__(self, batches: list[ShardBatch], problems: list[str] | None = None) -> None:
        self.batches = list(batches)
        self.problems = problems or []
        self.done: list[str] = []
        self.stops = 0
        self.wakes: list[tuple[str, float]] = []

    def start(self, cancel) -> list[TableInfo]:
        return [INFO]

    def get(self, timeout: float) -> ShardBatch | None:
        return self.batches.pop(0) if self.batches else None

    def shard_done(self, batch: ShardBatch) -> None:
        self.done.append(batch.shard_id)

    def caught_up(self) -> bool:
        return not self.batches

    def readiness(self) -> list[str]:
        return self.problems

    def watermark(self, table: str) -> float:
        return float("inf")

    def wake_at(self, table: str, epoch_ms: float) -> None:
        self.wakes.append((table, epoch_ms))

    def resnapshots(self) -> list[str]:
        return []

    def quiet_shards(self) -> dict:
        return {}

    def stop(self, timeout: float = 10.0) -> None:
        self.stops += 1


class HookSink(MemorySink):
    """A memory sink that calls `on_write(events)` and `on_flush()` so a test can act inside the run."""

    def __init__(self, on_write: Callable | None = None, on_flush: Callable | None = None) -> None:
        super().__init__()
        self.hook_write, self.hook_flush = on_write, on_flush

    def write(self, events) -> None:
        if self.hook_write:
            self.hook_write(events)
        super().write(events)

    def flush(self, timeout: float) -> None:
        if self.hook_flush:
            self.hook_flush()


def config(tmp_path, interval_s: float = 3600, **table):
    data = {
        "tables": [{"name": "T", "snapshot": "never", **table}],
        "sinks": [{"type": "stdout"}],
        "checkpoint": {"path": str(tmp_path / "cp.json"), "interval_s": interval_s},
        "shutdown_timeout_s": 1,
    }
    return parse_config(yaml.safe_dump(data), "test.yaml")


def checkpoint(tmp_path) -> dict:
    return {
        shard: (c.sequence_number, c.finished) for (_, shard), c in CheckpointStore(tmp_path / "cp.json").load().items()
    }


def test_events_reach_every_sink_in_order_per_key_and_the_end_is_checkpointed(tmp_path):
    batches = [batch([record(i, f"k{i % 3}", i) for i in range(j * 5, j * 5 + 5)]) for j in range(4)]
    batches.append(batch([], ended=True))
    source = ScriptedSource(batches)
    first, second = MemorySink(), MemorySink()
    Pipeline(config(tmp_path), source=source, sinks=[first, second]).run(until_caught_up=True)
    for sink in (first, second):
        assert per_key_values(sink.events) == {("T", f"k{k}"): [i for i in range(20) if i % 3 == k] for k in range(3)}
    assert checkpoint(tmp_path) == {"shard-1": (str(10**20 + 19), True)}
    assert source.done == ["shard-1"]


def test_the_checkpoint_is_stored_only_after_every_sink_flushed(tmp_path):
    seen_at_flush: list[dict] = []
    first = HookSink(on_flush=lambda: seen_at_flush.append(checkpoint(tmp_path)))
    second = HookSink(on_flush=lambda: seen_at_flush.append(checkpoint(tmp_path)))
    source = ScriptedSource([batch([record(1, "a", 1), record(2, "b", 1)])])
    Pipeline(config(tmp_path), source=source, sinks=[first, second]).run(until_caught_up=True)
    assert seen_at_flush == [{}, {}]  # neither flush saw a checkpoint past its events
    assert checkpoint(tmp_path) == {"shard-1": (str(10**20 + 2), False)}


def test_a_flush_that_never_confirms_fails_the_stop_at_its_deadline_and_keeps_the_checkpoint(tmp_path):
    def away() -> None:
        raise RetriableError("broker away")

    sink = HookSink(on_flush=away)
    run = Pipeline(config(tmp_path), source=ScriptedSource([batch([record(1, "a", 1)])]), sinks=[sink])
    sink.hook_write = lambda events: run.request_stop()
    with pytest.raises(FatalError, match=r"did not acknowledge within shutdown_timeout_s \(1 s\)"):
        run.run()
    assert checkpoint(tmp_path) == {}
    assert run.source.stops >= 1


@pytest.mark.parametrize("policy", ["skip", "dlq"])
def test_a_record_that_cannot_be_normalized_is_routed_by_policy_and_the_rest_written(tmp_path, policy):
    bad = record(2, "b", 1)
    bad["dynamodb"]["NewImage"]["v"] = {"N": "not a number"}
    options = {"on_poison": policy} | ({"dead_letter_path": str(tmp_path / "dead.jsonl")} if policy == "dlq" else {})
    sink = MemorySink()
    run = Pipeline(
        config(tmp_path, **options),
        source=ScriptedSource([batch([record(1, "a", 1), bad, record(3, "c", 1)])]),
        sinks=[sink],
    )
    run.run(until_caught_up=True)
    assert [e.key for e in sink.events] == ["a", "c"]
    assert run.poison_counts == {("T", policy): 1}
    assert checkpoint(tmp_path) == {"shard-1": (str(10**20 + 3), False)}
    if policy == "dlq":
        (letter,) = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
        assert letter["stage"] == "normalize" and letter["record"] == bad and "NewImage.v" in letter["reason"]


def test_under_fail_a_poison_record_stops_the_run_before_the_checkpoint_passes_it(tmp_path):
    bad = record(2, "b", 1)
    del bad["dynamodb"]["Keys"]
    sink = MemorySink()
    source = ScriptedSource([batch([record(1, "a", 1)]), batch([bad, record(3, "c", 1)])])
    run = Pipeline(config(tmp_path, interval_s=1e-6), source=source, sinks=[sink])  # a commit after each batch
    with pytest.raises(FatalError, match=r"sequence number 100000000000000000002: poison record \(normalize\)"):
        run.run(until_caught_up=True)
    assert checkpoint(tmp_path) == {"shard-1": (str(10**20 + 1), False)}


class RejectingSink(MemorySink):
    """Refuses the events of key `refused` with `RejectedEvent`, as the sink contract says, and takes the rest."""

    def __init__(self, refused: str) -> None:
        super().__init__()
        self.refused = refused

    def write(self, events) -> None:
        for index, event in enumerate(events):
            if event.partition_key == self.refused:
                super().write(events[:index])
                raise RejectedEvent(event, "too large for this sink")
        super().write(events)


@pytest.mark.parametrize("policy", ["skip", "dlq"])
def test_an_event_a_sink_rejects_is_routed_by_policy_and_the_rest_of_the_batch_is_written(tmp_path, policy):
    options = {"on_poison": policy} | ({"dead_letter_path": str(tmp_path / "dead.jsonl")} if policy == "dlq" else {})
    rejecting, other = RejectingSink("b"), MemorySink()
    records = [record(1, "a", 1), record(2, "b", 1), record(3, "c", 1), record(4, "b", 2)]
    run = Pipeline(config(tmp_path, **options), source=ScriptedSource([batch(records)]), sinks=[rejecting, other])
    run.run(until_caught_up=True)
    assert [e.key for e in rejecting.events] == ["a", "c"]
    assert [e.key for e in other.events] == ["a", "b", "c", "b"]
    assert run.poison_counts == {("T", policy): 2}
    if policy == "dlq":
        letters = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
        assert [(lt["stage"], lt["record"]) for lt in letters] == [
            ("RejectingSink", records[1]),
            ("RejectingSink", records[3]),
        ]


def test_readiness_names_what_is_not_ready_yet(tmp_path):
    class ReadySink(MemorySink):
        problem: str | None = None

        def readiness(self) -> str | None:
            return self.problem

    sink = ReadySink()
    seen = []
    run = Pipeline(
        config(tmp_path), source=ScriptedSource([batch([record(1, "a", 1)])], ["source: busy"]), sinks=[sink]
    )
    assert run.readiness() == ["source: tables not described yet", "sinks: not opened yet"]

    def look(count: int) -> None:
        seen.append(run.readiness())
        sink.problem = "no connection to a Kafka broker at b:9092"
        seen.append(run.readiness())

    sink.on_write = look
    run.run(until_caught_up=True)
    assert seen == [["source: busy"], ["source: busy", "sinks[0] ReadySink: no connection to a Kafka broker at b:9092"]]
