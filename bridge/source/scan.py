"""The snapshot's reader: a parallel, gentle, resumable `Scan` of one table.

`TableScan` reads the segments of one parallel Scan (TotalSegments = number of positions) with a few daemon
threads and hands each answer on as a `ScanPage` through a bounded queue, so memory stays flat whatever the
size of the table. Pages of one segment come in order: a segment is held by one thread at a time, and its
page is queued before the segment is given back; threads take segments in turn, so with more segments than
threads every segment makes progress. A page's `last_key` is where its segment resumes: a run stopped at any
moment, resumed from the last page it wrote, reads the pages after it again at most (at-least-once).

Gentle: one token bucket per scan paces requests to `max_read_units_per_s`; throttling, 5xx, broken
connections and malformed answers are retried after a full-jitter backoff and logged (malformed ones are fatal
after `MALFORMED_LIMIT` in a row). Bodies are parsed raw by orjson (`bridge.source.scanbody`); given the
table's `key_names`, items stay JSON text with their key attributes parsed (`ScannedItem`) where they can.

Threads and the lock: `lock` guards `unhanded` (requests in flight and pages not yet taken, with their start
times) and `unfinished`. A `_Segment` is touched only by the thread holding it; `ready` (a deque, atomic by
itself) holds the segments no thread holds. A thread's error goes into `pages`; `get` raises it.
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from bridge.backoff import full_jitter
from bridge.checkpoint import SegmentPosition
from bridge.errors import FatalError, RetriableError
from bridge.normalize import ScannedItem
from bridge.source.aws_errors import MalformedAnswer, ResourceGone, classify, malformed_streak
from bridge.source.scanbody import BODY_BYTES, install, keyed_items, request_key

log = logging.getLogger(__name__)
BACKOFF_BASE, BACKOFF_CAP = 0.1, 20.0
POLL = 0.1  # s: how often a thread waiting for room in the queue looks at the stop flag


@dataclass(frozen=True)
class ScanPage:
    """One Scan answer of one segment."""

    table: str
    segment: int
    items: list[dict | ScannedItem]  # attribute-value JSON as the wire gives it (B/BS base64 text): parsed by
    # orjson, or (with the table's key names) each item's text and its key attributes parsed
    last_key: dict | None  # the answer's LastEvaluatedKey (wire JSON): where the segment resumes; None: segment done
    started_ms: int  # wall clock (epoch ms) just before the request that got this answer was sent
    read_ms: int  # wall clock when the answer was in


class _ReadBudget:
    """Read units per second for all segments of a scan: a token bucket holding at most one second's worth.
    A request waits while the bucket is in debt; its answer is charged when it is in."""

    def __init__(self, per_s: float, monotonic: Callable[[], float]) -> None:
        self.per_s, self.monotonic = per_s, monotonic
        self.tokens, self.at = per_s, monotonic()
        self.lock = threading.Lock()

    def debt_s(self) -> float:
        """Seconds until the bucket is out of debt (0: a request may go now)."""
        with self.lock:
            self._refill()
            return max(0.0, -self.tokens / self.per_s)

    def charge(self, units: float) -> None:
        with self.lock:
            self._refill()
            self.tokens -= units

    def _refill(self) -> None:
        now = self.monotonic()
        self.tokens, self.at = min(self.per_s, self.tokens + (now - self.at) * self.per_s), now


@dataclass
class _Segment:
    index: int
    start: dict | None  # ExclusiveStartKey of its next request, in request form (B as bytes)
    failures: int = 0  # failed requests in a row
    malformed: int = 0  # malformed answers in a row


class TableScan:
    """A parallel Scan of `table` from `positions` (one per segment), read ahead into a bounded queue.

    Lifecycle: `start` once, `get` until `finished`, `stop` once (also after an error). `get` raises what ended
    a thread: `ConfigError` (access denied) or `FatalError` (too many malformed answers, the table deleted,
    any other refusal). A checkpointed key that is not a key is a `FatalError` at once. Backoffs and the read
    budget wait with `sleep` (default: a wait that `stop` ends) and `monotonic`; tests give them a fake clock.
    With `key_names` (the table's key attributes, partition key first), pages hold `ScannedItem`s where the
    C module can cut them out; without, dicts.
    """

    def __init__(
        self,
        dynamodb,
        table: str,
        positions: Sequence[SegmentPosition],
        *,
        consistent_read: bool = True,
        max_read_units_per_s: float | None = None,
        workers: int = 8,
        queue_pages: int = 8,
        page_limit: int | None = None,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        key_names: Sequence[str] = (),
    ) -> None:
        if not positions or workers < 1 or queue_pages < 1 or (page_limit is not None and page_limit < 1):
            raise ValueError("a scan needs segments, and at least one worker, queued page and item per page")
        if max_read_units_per_s is not None and not max_read_units_per_s > 0:
            raise ValueError(f"max_read_units_per_s must be positive, not {max_read_units_per_s!r}")
        install(dynamodb)  # items as wire JSON: parsed whole, or as text within `keyed_items`
        self.dynamodb, self.table, self.total = dynamodb, table, len(positions)
        self.key_names = tuple(key_names)
        self.consistent_read, self.page_limit = consistent_read, page_limit
        self.wall_clock, self.sleep = wall_clock, sleep
        self.budget = _ReadBudget(max_read_units_per_s, monotonic) if max_read_units_per_s is not None else None
        segments = [_Segment(i, self._checkpointed(i, p.last_key)) for i, p in enumerate(positions) if not p.done]
        self.ready = collections.deque(segments)
        self.unfinished = len(segments)
        self.pages: queue.Queue = queue.Queue(maxsize=queue_pages)
        self.unhanded: dict[int, int] = {}  # token -> started_ms; a page dropped by `stop` stays unhanded
        self.tokens = itertools.count()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.estimated = False  # an estimate of consumed capacity was logged
        # Daemon threads: a call stalled on the network must not hold the process past its stop deadline.
        self.threads = [
            threading.Thread(target=self._work, name=f"scan-{table}-{i}", daemon=True)
            for i in range(min(workers, len(segments)))
        ]

    def _checkpointed(self, segment: int, key: dict | None) -> dict | None:
        try:
            return None if key is None else request_key(key)
        except ValueError as error:
            raise FatalError(
                f"table {self.table}: the checkpointed start key of snapshot segment {segment} is not a key "
                f"({error}): {key!r:.200}"
            ) from None

    def start(self) -> None:
        """Start the threads (once)."""
        for thread in self.threads:
            thread.start()

    def get(self, timeout: float) -> ScanPage | None:
        """The next page, or None after `timeout` s. Re-raises the error that ended a thread."""
        try:
            item = self.pages.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            raise item
        token, page = item
        with self.lock:
            del self.unhanded[token]
        return page

    def oldest_unhanded_ms(self) -> float:
        """The earliest `started_ms` of the requests in flight and the pages not yet taken; inf when none."""
        with self.lock:
            return min(self.unhanded.values(), default=math.inf)

    def finished(self) -> bool:
        """Every segment answered its last page and every page was taken by `get`."""
        with self.lock:
            return self.unfinished == 0 and not self.unhanded

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the threads and wait up to `timeout` s for requests in flight; pages not taken are dropped."""
        self.stopping.set()
        self._drain()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
        self._drain()  # what a thread put while the first drain made room
        if stalled := sum(thread.is_alive() for thread in self.threads):
            log.warning("table %s: snapshot stopped with %d Scan call(s) unanswered", self.table, stalled)

    def _drain(self) -> None:
        while True:
            try:
                self.pages.get_nowait()
            except queue.Empty:
                return

    # -- scan threads ------------------------------------------------------------------------------

    def _work(self) -> None:
        try:
            while not self.stopping.is_set():
                try:
                    segment = self.ready.popleft()
                except IndexError:
                    return  # every unfinished segment is held by another thread, which goes on with it
                if self._advance(segment):
                    self.ready.append(segment)
        except BaseException as error:  # surfaced to the consumer by `get`
            self._put(error)

    def _advance(self, segment: _Segment) -> bool:
        """Read and queue the next page of `segment`, retrying until one is queued; False once the segment is
        done or the scan stops."""
        while not self.stopping.is_set():
            if self.budget is not None and self._wait_for_budget():
                return False
            with self.lock:
                token, started_ms = next(self.tokens), self._now_ms()
                self.unhanded[token] = started_ms
            try:
                with keyed_items(self.key_names):
                    answer = self.dynamodb.scan(**self._request(segment))
                page, start = self._page(segment, answer, started_ms)
            except (ClientError, BotoCoreError, MalformedAnswer) as error:
                with self.lock:
                    del self.unhanded[token]
                if self._backoff(segment, error):
                    return False
                continue
            segment.failures = segment.malformed = 0
            if page.last_key is None:
                with self.lock:
                    self.unfinished -= 1
            if not self._put((token, page)) or page.last_key is None:
                return False
            segment.start = start
            return True
        return False

    def _request(self, segment: _Segment) -> dict:
        request = {"TableName": self.table, "ConsistentRead": self.consistent_read, "ReturnConsumedCapacity": "TOTAL"}
        if self.total > 1:  # one segment: a plain sequential Scan (what TotalSegments=1 means; moto needs it so)
            request.update(Segment=segment.index, TotalSegments=self.total)
        if segment.start is not None:
            request["ExclusiveStartKey"] = segment.start
        if self.page_limit is not None:
            request["Limit"] = self.page_limit
        return request

    def _page(self, segment: _Segment, answer: dict, started_ms: int) -> tuple[ScanPage, dict | None]:
        """The page of a well-formed `answer`, and the start key of the segment's next request."""
        read_ms = self._now_ms()
        if self.budget is not None:
            self.budget.charge(self._units(answer))
        where = f"table {self.table} segment {segment.index}"
        items = answer.get("Items")
        if type(items) is not list or not all(type(item) in (dict, ScannedItem) for item in items):
            raise MalformedAnswer(f"{where}: Scan answered without a list of items (Items: {type(items).__name__})")
        last_key, start = answer.get("LastEvaluatedKey"), None
        if "LastEvaluatedKey" in answer:
            try:
                start = request_key(last_key)
            except ValueError as error:
                raise MalformedAnswer(
                    f"{where}: Scan answered a LastEvaluatedKey that is not a key ({error})"
                ) from None
        log.debug("%s: %d items%s", where, len(items), "" if start else ", the last page")
        return ScanPage(self.table, segment.index, items, last_key, started_ms, read_ms), start

    def _units(self, answer: dict) -> float:
        """The read units an answer consumed, as it says, or a conservative estimate from its size."""
        consumed = answer.get("ConsumedCapacity")
        units = consumed.get("CapacityUnits") if type(consumed) is dict else None
        if type(units) in (int, float) and math.isfinite(units) and units >= 0:
            return units
        size = answer.get(BODY_BYTES)
        estimate = max(1, math.ceil(size / 4096)) if type(size) is int else 1
        if not self.estimated:
            self.estimated = True
            log.warning(
                "table %s: Scan gave no usable ConsumedCapacity (%r); charging an estimate", self.table, consumed
            )
        return estimate if self.consistent_read else estimate / 2

    def _backoff(self, segment: _Segment, error: BaseException) -> bool:
        """Wait before `segment` is requested again (True: the scan stopped meanwhile); raise what is fatal."""
        if not isinstance(error, MalformedAnswer):
            error = classify(error, f"scanning segment {segment.index} of table {self.table}")
        if isinstance(error, ResourceGone):
            raise FatalError(f"table {self.table} was deleted during its snapshot ({error})")
        if not isinstance(error, RetriableError):
            raise error
        segment.malformed = malformed_streak(segment.malformed, error)
        segment.failures += 1
        delay = full_jitter(segment.failures - 1, BACKOFF_BASE, BACKOFF_CAP)
        where = f"table {self.table} segment {segment.index}"
        log.warning("%s: %s; retrying in %.2f s (attempt %d)", where, error, delay, segment.failures)
        return self._pause(delay)

    def _wait_for_budget(self) -> bool:
        """Wait while the read budget is in debt; True if the scan stopped."""
        while (debt := self.budget.debt_s()) > 0:
            if self._pause(debt):
                return True
        return self.stopping.is_set()

    def _pause(self, seconds: float) -> bool:
        """Sleep `seconds` (with the injected `sleep`, or until stopped); True if the scan stopped."""
        if self.sleep is None:
            return self.stopping.wait(seconds)
        self.sleep(seconds)
        return self.stopping.is_set()

    def _now_ms(self) -> int:
        return int(self.wall_clock() * 1000)

    def _put(self, item) -> bool:
        while not self.stopping.is_set():
            try:
                self.pages.put(item, timeout=POLL)
                return True
            except queue.Full:
                continue
        return False
