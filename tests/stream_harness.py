"""Running the real `Pipeline` over `FakeAWS` into an in-memory sink, and checking what arrived."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bridge.config import Config, parse_config
from bridge.pipeline import Pipeline
from bridge.sinks.base import Sink
from tests.bridge_process import streaming_only
from tests.fake_streams import FakeAWS


@dataclass(frozen=True)
class _NoSettings:
    pass


@dataclass(frozen=True)
class Delivered:
    """One event as the sink got it."""

    table: str
    key: str
    value: int
    shard_id: str
    sequence_number: str
    stream_arn: str


class MemorySink(Sink):
    """Keeps every event written; `flush` has nothing to make durable. `stop_after` events ask the run to stop."""

    Config = _NoSettings

    def __init__(self) -> None:
        super().__init__(_NoSettings(), {})
        self.events: list[Delivered] = []
        self.lock = threading.Lock()
        self.on_write = None

    def open(self) -> None:
        pass

    def write(self, events) -> None:
        with self.lock:
            for event in events:
                position = event.position
                self.events.append(
                    Delivered(
                        event.table,
                        event.partition_key,
                        int(event.after["v"]),
                        position.shard_id,
                        position.sequence_number,
                        position.stream_arn,
                    )
                )
        if self.on_write:
            self.on_write(len(self.events))

    def flush(self, timeout: float) -> None:
        pass

    def close(self) -> None:
        pass

    def count(self, table: str | None = None) -> int:
        with self.lock:
            return sum(1 for e in self.events if table in (None, e.table))


def make_config(checkpoint: Path, tables: list[dict], shutdown_timeout_s: float = 30, **source) -> Config:
    """A config with small intervals so tests are quick; `tables` are YAML table entries (stream only unless
    they say otherwise)."""
    import yaml

    data = {
        "shutdown_timeout_s": shutdown_timeout_s,
        "source": {"poll_interval_ms": 20, "discovery_interval_s": 0.2, "max_workers": 4, **source},
        "tables": streaming_only(tables),
        "sinks": [{"type": "stdout"}],
        "checkpoint": {"path": str(checkpoint), "interval_s": 0.05},
    }
    return parse_config(yaml.safe_dump(data), "test.yaml")


def pipeline(aws: FakeAWS, config: Config, sink: MemorySink, clock: Callable[[], float] | None = None) -> Pipeline:
    """The real pipeline over the fake's clients; with `clock`, its stream source schedules by that clock."""
    return Pipeline(config, dynamodb=aws.dynamodb, streams=aws.streams, sinks=[sink], clock=clock or time.monotonic)


def run_until_caught_up(aws: FakeAWS, config: Config, sink: MemorySink) -> None:
    pipeline(aws, config, sink).run(until_caught_up=True)


def caught_up_within(changes: Changes | FakeAWS, config: Config, sink: MemorySink, timeout: float = 30.0) -> None:
    """`run --until-caught-up` in a thread (over the fake's clients, or the config's endpoint when given
    `changes=None`); fails instead of hanging when it does not return within `timeout`; re-raises its error."""
    aws = changes.aws if isinstance(changes, Changes) else changes
    run = pipeline(aws, config, sink) if aws is not None else Pipeline(config, sinks=[sink])
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            run.run(until_caught_up=True)
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        run.request_stop()
        thread.join(10)
        raise AssertionError(f"--until-caught-up did not return within {timeout} s")
    if outcome[0] is not None:
        raise outcome[0]


class PipelineThread:
    """`pipeline.run()` in a thread until `stop()` (a drain); `error` holds what `run` raised."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.pipeline.run()
        except BaseException as error:
            self.error = error

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.pipeline.request_stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the pipeline did not stop"

    def ended(self, timeout: float = 20.0) -> BaseException | None:
        """Wait for `run` to return on its own (an error); returns what it raised."""
        self.thread.join(timeout=timeout)
        assert not self.thread.is_alive(), "the pipeline is still running"
        return self.error

    def delivered(self, sink: MemorySink, count: int):
        """A `wait_for` condition: `sink` holds `count` events; fails at once when the run ended."""

        def condition() -> bool:
            if not self.thread.is_alive():
                raise AssertionError(f"the pipeline ended: {self.error!r}")
            return sink.count() == count

        return condition


class BridgeThread(PipelineThread):
    """The real pipeline over the fake's clients, in a thread (see `pipeline`)."""

    def __init__(
        self, aws: FakeAWS, config: Config, sink: MemorySink, clock: Callable[[], float] | None = None
    ) -> None:
        super().__init__(pipeline(aws, config, sink, clock))


def per_key_values(events: list[Delivered]) -> dict[tuple[str, str], list[int]]:
    """Values of each (table, key) in the order the sink received them."""
    values: dict[tuple[str, str], list[int]] = defaultdict(list)
    for event in events:
        values[(event.table, event.key)].append(event.value)
    return values


def assert_exactly_once_in_order(events: list[Delivered], written: list[tuple[str, str, int]]) -> None:
    """Every written `(table, key, value)` arrived once, and each item's values arrived in write order."""
    got = sorted((e.table, e.key, e.value) for e in events)
    assert len(got) == len(set(got)), f"{len(got) - len(set(got))} duplicates"
    missing = set(written) - set(got)
    assert not missing, f"{len(missing)} missing, e.g. {sorted(missing)[:3]}"
    assert got == sorted(written)
    expected: dict[tuple[str, str], list[int]] = defaultdict(list)
    for table, key, value in written:
        expected[(table, key)].append(value)
    reordered = [item for item, values in per_key_values(events).items() if values != expected[item]]
    assert not reordered, f"items out of order: {reordered[:3]}"


class Changes:
    """Writes changes to `FakeAWS` with a growing value per item, and remembers them in write order."""

    def __init__(self, aws: FakeAWS) -> None:
        self.aws = aws
        self.written: list[tuple[str, str, int]] = []
        self.next_value: dict[tuple[str, str], int] = defaultdict(int)

    def write(self, table: str, key: str, shard_id: str | None = None) -> str:
        value = self.next_value[(table, key)]
        self.next_value[(table, key)] += 1
        sequence = self.aws.write(table, key, value, shard_id)
        self.written.append((table, key, value))
        return sequence

    def many(self, table: str, count: int, keys: int = 20, shard_id: str | None = None) -> None:
        for index in range(count):
            self.write(table, f"k{index % keys}", shard_id)
