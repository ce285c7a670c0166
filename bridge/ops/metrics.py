"""Prometheus metrics of the bridge (`cdc_bridge_*`) and the small functions the pipeline, source and sinks call.

The metrics live in their own registry, `REGISTRY`, which `bridge.ops.health` serves on `/metrics`. Recording is
cheap and always on (a few dictionary updates per batch), whether or not the metrics port is open.
Per-shard gauges (iterator age, retention headroom) are computed when scraped, from `LAG`, so they stay true
while nothing is read (a stuck sink makes headroom fall between two reads).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from bridge.ops.lag import LagTracker, format_duration, worst
from bridge.ops.logs import Every

log = logging.getLogger(__name__)
disable_created_metrics()  # no `*_created` series next to every counter and histogram
REGISTRY = CollectorRegistry(auto_describe=True)
LAG = LagTracker()
ProcessCollector(registry=REGISTRY)

RECORDS_READ = Counter("cdc_bridge_records_read", "Stream records read with GetRecords.", ["table"], registry=REGISTRY)
RECORDS_WRITTEN = Counter(
    "cdc_bridge_records_written",
    "Change events handed to every sink, by operation (c insert, u modify, d remove).",
    ["table", "op"],
    registry=REGISTRY,
)
POISON = Counter(
    "cdc_bridge_poison_records",
    "Poison records, by the table's on_poison policy.",
    ["table", "policy"],
    registry=REGISTRY,
)
SINK_ERRORS = Counter(
    "cdc_bridge_sink_errors",
    "Failed sends, flushes or writes, by sink and error class.",
    ["sink", "error"],
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "cdc_bridge_batch_size",
    "Change events per batch handed to the sinks.",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000),
    registry=REGISTRY,
)
GET_RECORDS = Counter("cdc_bridge_get_records_calls", "GetRecords calls made.", ["table"], registry=REGISTRY)
RETRIES = Counter(
    "cdc_bridge_get_records_retries",
    "GetRecords calls that failed and are retried with backoff: throttled, or error (5xx, network, shard gone).",
    ["table", "reason"],
    registry=REGISTRY,
)
SEND_LATENCY = Histogram(
    "cdc_bridge_kafka_send_latency_seconds",
    "Time from handing a record to the Kafka producer to the broker's acknowledgement.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
READ_AGE = Histogram(
    "cdc_bridge_read_record_age_seconds",
    "Iterator age at each GetRecords call that returned records: now minus the newest record's creation time.",
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 6 * 3600, 12 * 3600, 24 * 3600),
    registry=REGISTRY,
)
LAST_CHECKPOINT = Gauge(
    "cdc_bridge_last_checkpoint_timestamp_seconds",
    "When the checkpoint was last written (Unix time).",
    registry=REGISTRY,
)
CHECKPOINT_AGE = Gauge(
    "cdc_bridge_checkpoint_age_seconds",
    "How long the oldest event handed to the sinks has waited for a checkpoint; 0 when the checkpoint covers all.",
    registry=REGISTRY,
)
SNAPSHOT_ITEMS = Gauge(
    "cdc_bridge_snapshot_items",
    "Items read by the table's snapshot in progress (or last finished), all segments, resumed runs included.",
    ["table"],
    registry=REGISTRY,
)
SNAPSHOT_SEGMENTS = Gauge(
    "cdc_bridge_snapshot_segments_remaining",
    "Scan segments of the table's snapshot not read to their end; 0 when no snapshot is running.",
    ["table"],
    registry=REGISTRY,
)
TABLES_FOUND = Gauge(
    "cdc_bridge_discovered_tables",
    "Tables that `discover` found (name patterns, tags, a stream) and the run replicates.",
    registry=REGISTRY,
)
TRANSACTIONS = Counter(
    "cdc_bridge_transactions",
    "Kafka transactions ended (delivery: exactly_once), by outcome: committed or aborted.",
    ["outcome"],
    registry=REGISTRY,
)
TRANSACTION_COMMIT = Histogram(
    "cdc_bridge_transaction_commit_seconds",
    "Time the broker took to confirm a transaction's commit (delivery: exactly_once).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)

_lock = threading.Lock()
_snapshots: dict[str, tuple[int, int, int | None]] = {}  # table -> (items read, segments left, table's ItemCount)
_failing: dict[str, str] = {}  # table -> last GetRecords error (not throttling) since its last successful call
_waiting_since: float | None = None  # monotonic time of the first write not covered by a checkpoint
CHECKPOINT_LOG_INTERVAL_S = 60.0  # "checkpoint written" at INFO at most this often, else at DEBUG
_checkpoint_log = Every(CHECKPOINT_LOG_INTERVAL_S)
CHECKPOINT_AGE.set_function(lambda: 0.0 if _waiting_since is None else time.monotonic() - _waiting_since)


class LagCollector(Collector):
    """Per-shard iterator age and retention headroom, shard counts and the retention warning flag, from `LAG`."""

    def __init__(self, tracker: LagTracker) -> None:
        self.tracker = tracker

    def collect(self) -> Iterable[GaugeMetricFamily]:
        lags = self.tracker.snapshot()
        age = GaugeMetricFamily(
            "cdc_bridge_iterator_age_seconds",
            "Now minus the newest read record's ApproximateCreationDateTime; 0 when the shard is read to its end.",
            labels=["table", "shard"],
        )
        headroom = GaugeMetricFamily(
            "cdc_bridge_retention_headroom_seconds",
            "24 h minus the age of the oldest record not yet checkpointed: time left before DynamoDB trims it.",
            labels=["table", "shard"],
        )
        for lag in lags:
            if lag.iterator_age_s is not None:
                age.add_metric([lag.table, lag.shard_id], lag.iterator_age_s)
            if lag.headroom_s is not None:
                headroom.add_metric([lag.table, lag.shard_id], lag.headroom_s)
        shards = GaugeMetricFamily(
            "cdc_bridge_shards", "Shards being read (active) and finished during this run.", labels=["table", "state"]
        )
        for table, (active, finished) in self.tracker.counts().items():
            shards.add_metric([table, "active"], active)
            shards.add_metric([table, "finished"], finished)
        risky = [lag for lag in lags if lag.headroom_s is not None and lag.headroom_s < self.tracker.warning_s]
        warning = GaugeMetricFamily(
            "cdc_bridge_retention_warning",
            "1 when some shard's retention headroom is below metrics.retention_warning_hours, else 0.",
            value=1.0 if risky else 0.0,
        )
        threshold = GaugeMetricFamily(
            "cdc_bridge_retention_warning_threshold_seconds",
            "The retention headroom below which the warning is raised.",
            value=self.tracker.warning_s,
        )
        return [age, headroom, shards, warning, threshold]


REGISTRY.register(LagCollector(LAG))


# -- recording functions ---------------------------------------------------------------------------------------


def shard_started(table: str, stream_arn: str, shard_id: str) -> None:
    """The source started reading a shard."""
    LAG.started(table, stream_arn, shard_id)


def records_read(table: str, stream_arn: str, shard_id: str, records: list[dict]) -> None:
    """One GetRecords call of a shard returned `records` (none: the shard is read to its current end)."""
    GET_RECORDS.labels(table).inc()
    if records:
        RECORDS_READ.labels(table).inc(len(records))
    if table in _failing:
        with _lock:
            _failing.pop(table, None)
    lag = LAG.read(table, stream_arn, shard_id, records)
    if records and lag.iterator_age_s is not None:
        READ_AGE.observe(lag.iterator_age_s)


def get_records_failed(table: str, error: BaseException) -> None:
    """A GetRecords call failed and will be retried (it counts as a call too)."""
    GET_RECORDS.labels(table).inc()
    response = getattr(error.__cause__, "response", None) or {}
    code = response.get("Error", {}).get("Code", "")
    throttled = any(word in code for word in ("Limit", "Throttl", "Throughput"))
    RETRIES.labels(table, "throttled" if throttled else "error").inc()
    if not throttled:
        with _lock:
            _failing[table] = str(error)


def source_problems() -> list[str]:
    """Tables whose last GetRecords call failed with an error other than throttling (for `/ready`)."""
    with _lock:
        return [f"source: GetRecords of table {table} failing: {error}" for table, error in sorted(_failing.items())]


def events_written(events: Iterable) -> None:
    """A batch of change events (anything with `.table` and `.op`) was handed to every sink."""
    global _waiting_since
    counts = Tally((event.table, event.op) for event in events)
    if not counts:
        return
    for (table, op), count in counts.items():
        RECORDS_WRITTEN.labels(table, op).inc(count)
    BATCH_SIZE.observe(sum(counts.values()))
    with _lock:
        if _waiting_since is None:
            _waiting_since = time.monotonic()


def snapshot_progress(table: str, items: int, segments_remaining: int, estimate: int | None = None) -> None:
    """The table's snapshot has read `items` items; `segments_remaining` segments are not read to their end;
    `estimate` is DynamoDB's item count of the table, when known."""
    SNAPSHOT_ITEMS.labels(table).set(items)
    SNAPSHOT_SEGMENTS.labels(table).set(segments_remaining)
    with _lock:
        _snapshots[table] = (items, segments_remaining, estimate)


def snapshots() -> dict[str, tuple[int, int, int | None]]:
    """Items read, segments remaining and the table's item count of each table's snapshot of this run."""
    with _lock:
        return dict(_snapshots)


def tables_found(count: int) -> None:
    """The run replicates `count` tables found by `discover`."""
    TABLES_FOUND.set(count)


def table_removed(table: str) -> None:
    """`discover` no longer finds `table` and its stream is no longer read: no lag or headroom of it any more."""
    LAG.forget(table)


def poison_record(table: str, policy: str) -> None:
    """A poison record was routed by the table's `on_poison` policy (fail, dlq or skip)."""
    POISON.labels(table, policy).inc()


def sink_error(sink: str, error: BaseException | str) -> None:
    """A sink failed to send, write or flush (retried or fatal)."""
    SINK_ERRORS.labels(sink, error if isinstance(error, str) else type(error).__name__).inc()


def kafka_send_latency(seconds: float) -> None:
    """The broker acknowledged a record `seconds` after it was handed to the producer."""
    SEND_LATENCY.observe(seconds)


def transaction_finished(outcome: str, seconds: float) -> None:
    """A Kafka transaction was `committed` (confirmed after `seconds`) or `aborted`."""
    TRANSACTIONS.labels(outcome).inc()
    if outcome == "committed":
        TRANSACTION_COMMIT.observe(seconds)


def checkpoint_written(positions: Mapping) -> None:
    """The checkpoint store now holds `positions` ({(stream_arn, shard_id): ShardCheckpoint}) written since the
    last one. Logged at INFO at most once a minute, at DEBUG otherwise."""
    global _waiting_since
    with _lock:
        _waiting_since = None
    LAST_CHECKPOINT.set_to_current_time()
    for (stream_arn, shard_id), checkpoint in positions.items():
        LAG.acked(stream_arn, shard_id, checkpoint.sequence_number, checkpoint.finished)
    LAG.check_retention()
    level = logging.INFO if _checkpoint_log.due() else logging.DEBUG
    if log.isEnabledFor(level):
        _, headroom = worst(LAG.snapshot())
        log.log(
            level,
            "checkpoint written: %d shard(s) advanced; lowest retention headroom %s",
            len(positions),
            format_duration(headroom),
        )


def set_retention_warning(seconds: float) -> None:
    """The headroom below which a shard raises the warning (metrics.retention_warning_hours)."""
    LAG.warning_s = seconds


def value(name: str, labels: Mapping[str, str] | None = None) -> float | None:
    """The current value of one sample of `REGISTRY` (for tests and the progress line)."""
    return REGISTRY.get_sample_value(name, dict(labels or {}))


def total(name: str) -> float:
    """The sum of all samples named `name` (e.g. every table and op of a counter)."""
    return sum(s.value for metric in REGISTRY.collect() for s in metric.samples if s.name == name)
