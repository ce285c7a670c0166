"""How far behind each shard is, and how long until DynamoDB trims records the bridge has not checkpointed.

Two numbers per shard, both in seconds:

- **iterator age**: now minus the `ApproximateCreationDateTime` of the newest record read from the shard; 0 once a
  `GetRecords` call came back empty (the reader is at the shard's current end, like Kinesis' millisBehindLatest).
- **retention headroom**: DynamoDB keeps stream records for 24 h, so this is 24 h minus the age of the oldest record
  of the shard that is not yet checkpointed (read but not acknowledged by every sink, or not read yet). A restart
  must read that record again: when the headroom reaches 0, it is gone. Records not read yet are at most as old as
  the newest record read, so while a shard is not caught up that record's time bounds the headroom from below.

`LagTracker` keeps the few numbers this needs per shard (the first record time and last sequence number of every
batch read since the last checkpoint) and is safe to call from the reader threads and the pipeline thread.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from bridge.normalize import last_sequence_number

log = logging.getLogger(__name__)
RETENTION_S = 24 * 3600.0
DEFAULT_WARNING_S = 6 * 3600.0


@dataclass(frozen=True)
class ShardLag:
    """The lag of one shard at one instant; None where nothing was read from the shard yet."""

    table: str
    stream_arn: str
    shard_id: str
    iterator_age_s: float | None
    headroom_s: float | None
    caught_up: bool


@dataclass
class _Batch:
    last_sequence: int
    first_created: float


@dataclass
class _ShardState:
    table: str
    newest_created: float | None = None
    caught_up: bool = False
    unacked: deque[_Batch] = field(default_factory=deque)
    warned: bool = False


def creation_time(record: dict) -> float | None:
    """A stream record's `ApproximateCreationDateTime` as epoch seconds (boto3 gives a datetime; raw JSON a number)."""
    data = record.get("dynamodb") if type(record) is dict else None
    value = data.get("ApproximateCreationDateTime") if type(data) is dict else None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


class LagTracker:
    """Iterator age and retention headroom of every shard being read; finished shards are forgotten."""

    def __init__(self, warning_s: float = DEFAULT_WARNING_S) -> None:
        self.warning_s = warning_s
        self.lock = threading.Lock()
        self.shards: dict[tuple[str, str], _ShardState] = {}
        self.finished_counts: dict[str, int] = {}

    def started(self, table: str, stream_arn: str, shard_id: str) -> None:
        """The bridge started reading this shard (nothing read yet)."""
        with self.lock:
            self.shards.setdefault((stream_arn, shard_id), _ShardState(table))

    def forget(self, table: str) -> None:
        """The bridge no longer reads `table` (`discover` no longer finds it): its shards are not reported."""
        with self.lock:
            self.shards = {key: state for key, state in self.shards.items() if state.table != table}
            self.finished_counts.pop(table, None)

    def read(
        self, table: str, stream_arn: str, shard_id: str, records: list[dict], now: float | None = None
    ) -> ShardLag:
        """One `GetRecords` call returned `records` (possibly none: then the shard is caught up); returns the
        shard's lag right after it, and warns if its headroom is now below the threshold."""
        now = time.time() if now is None else now
        with self.lock:
            state = self.shards.setdefault((stream_arn, shard_id), _ShardState(table))
            if not records:
                state.caught_up = True
            else:
                state.caught_up = False
                times = [t for t in map(creation_time, records) if t is not None]
                last = last_sequence_number(records)
                if times:
                    state.newest_created = max(times[-1], state.newest_created or times[-1])
                if times and last is not None:
                    state.unacked.append(_Batch(int(last), min(times)))
            lag = self._lag(stream_arn, shard_id, state, now)
            self._warn(state, lag)
        return lag

    def acked(self, stream_arn: str, shard_id: str, sequence_number: str | None, finished: bool = False) -> None:
        """The checkpoint of the shard now covers everything up to `sequence_number` (and its end if `finished`)."""
        with self.lock:
            key = (stream_arn, shard_id)
            state = self.shards.get(key)
            if state is None:
                return
            if finished:
                del self.shards[key]
                self.finished_counts[state.table] = self.finished_counts.get(state.table, 0) + 1
                return
            if sequence_number is None:
                return
            acked = int(sequence_number)
            while state.unacked and state.unacked[0].last_sequence <= acked:
                state.unacked.popleft()

    def snapshot(self, now: float | None = None) -> list[ShardLag]:
        """The lag of every shard being read, in (table, shard) order."""
        now = time.time() if now is None else now
        with self.lock:
            items = sorted(self.shards.items(), key=lambda item: (item[1].table, item[0][1]))
            return [self._lag(arn, shard_id, state, now) for (arn, shard_id), state in items]

    @staticmethod
    def _lag(stream_arn: str, shard_id: str, state: _ShardState, now: float) -> ShardLag:
        if state.caught_up:
            age = 0.0
        elif state.newest_created is not None:
            age = max(0.0, now - state.newest_created)
        else:
            age = None
        if state.unacked:
            oldest = state.unacked[0].first_created
        elif not state.caught_up:
            oldest = state.newest_created  # unread records are no older than the newest one read
        else:
            oldest = None
        if oldest is not None:
            headroom = RETENTION_S - max(0.0, now - oldest)
        elif state.caught_up:
            headroom = RETENTION_S
        else:
            headroom = None
        return ShardLag(state.table, stream_arn, shard_id, age, headroom, state.caught_up)

    def counts(self) -> dict[str, tuple[int, int]]:
        """Per table: (shards being read, shards finished during this run)."""
        with self.lock:
            active: dict[str, int] = {}
            for state in self.shards.values():
                active[state.table] = active.get(state.table, 0) + 1
            tables = set(active) | set(self.finished_counts)
            return {t: (active.get(t, 0), self.finished_counts.get(t, 0)) for t in sorted(tables)}

    def check_retention(self, now: float | None = None) -> list[ShardLag]:
        """Warn for every shard whose headroom is below the threshold (once, until it is above again);
        returns those shards."""
        now = time.time() if now is None else now
        with self.lock:
            lags = [(state, self._lag(arn, shard_id, state, now)) for (arn, shard_id), state in self.shards.items()]
            for state, lag in lags:
                self._warn(state, lag)
        return [lag for state, lag in lags if state.warned]

    def _warn(self, state: _ShardState, lag: ShardLag) -> None:
        risky = lag.headroom_s is not None and lag.headroom_s < self.warning_s
        if risky and not state.warned:
            log.warning(
                "retention headroom of shard %s of table %s is %s (threshold %s): records not yet checkpointed "
                "will be trimmed by DynamoDB after that",
                lag.shard_id,
                lag.table,
                format_duration(lag.headroom_s),
                format_duration(self.warning_s),
            )
        elif state.warned and not risky:
            log.info("retention headroom of shard %s of table %s is above the threshold again", lag.shard_id, lag.table)
        state.warned = risky


def format_duration(seconds: float | None) -> str:
    """`4.2 s`, `12.5 min`, `23.9 h`; `-` for unknown."""
    if seconds is None:
        return "-"
    if abs(seconds) < 60:
        return f"{seconds:.1f} s"
    if abs(seconds) < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def worst(lags: Iterable[ShardLag]) -> tuple[float | None, float | None]:
    """The largest iterator age and the smallest headroom among `lags` (None when unknown everywhere)."""
    lags = list(lags)
    ages = [lag.iterator_age_s for lag in lags if lag.iterator_age_s is not None]
    rooms = [lag.headroom_s for lag in lags if lag.headroom_s is not None]
    return (max(ages) if ages else None, min(rooms) if rooms else None)
