"""TableScan over a scripted fake DynamoDB client: resume, parallel segments, retries, budget, backpressure, stop.

The fake answers Scan the way botocore does with the raw parser installed: it builds the JSON body, runs the
`before-parse` handlers the scan registered on it, and returns what they left. Time is a fake clock, so
backoffs and read-budget waits take no real time.
"""

from __future__ import annotations

import base64
import logging
import math
import threading
import time

import orjson
import pytest
from botocore.exceptions import ReadTimeoutError

from bridge.checkpoint import SegmentPosition
from bridge.errors import ConfigError, FatalError
from bridge.normalize import ScannedItem
from bridge.source.aws_errors import MALFORMED_LIMIT
from bridge.source.scan import BACKOFF_CAP, ScanPage, TableScan
from bridge.source.scanbody import EVENT
from tests.fake_streams import client_error
from tests.polling import wait_for

TABLE = "Orders"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def last_key(segment: int, page: int) -> dict:
    """The LastEvaluatedKey the fake answers after `page` of `segment` (wire JSON: B as base64 text)."""
    return {"pk": {"B": b64(b"\xff\x00" + f"{segment}/{page}".encode())}, "sk": {"N": str(page)}}


def item(segment: int, page: int, n: int) -> dict:
    return {"pk": {"B": b64(bytes([segment, page, n]))}, "sk": {"N": str(n)}, "tags": {"BS": [b64(b"\x01")]}}


class Gate:
    """Scripted in place of an answer: the call waits until the gate opens, then is answered as usual."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()


class FakeClock:
    """Monotonic time that only `sleep` moves; every sleep is remembered."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.lock = threading.Lock()

    def monotonic(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.sleeps.append(seconds)
            self.now += seconds


class _Events:
    def __init__(self) -> None:
        self.handlers: dict[str, tuple[str, object]] = {}

    def register(self, event: str, handler, unique_id: str) -> None:
        self.handlers.setdefault(unique_id, (event, handler))


class FakeDynamoDB:
    """A table of `pages[segment]` pages, each a number of items, read by Scan; `script[segment]` lists what
    answers that segment's next calls instead (an error to raise, a body: bytes or a dict, or a `Gate`)."""

    def __init__(self, pages: list[list[int]], units: float | None = 1.0) -> None:
        self.pages = pages
        self.units = units
        self.script: dict[int, list] = {}
        self.calls: list[dict] = []
        self.body_sizes: list[int] = []
        self.lock = threading.Lock()
        self.events = _Events()
        self.meta = type("Meta", (), {"events": self.events})()

    def items_of(self, segment: int, first_page: int = 0) -> list[dict]:
        sizes = self.pages[segment]
        return [item(segment, p, n) for p in range(first_page, len(sizes)) for n in range(sizes[p])]

    def calls_of(self, segment: int) -> list[dict]:
        with self.lock:
            return [call for call in self.calls if call.get("Segment", 0) == segment]

    def scan(self, **request) -> dict:
        with self.lock:
            self.calls.append(request)
            scripted = self.script.get(request.get("Segment", 0), [])
            answer = scripted.pop(0) if scripted else None
        if isinstance(answer, Gate):
            answer.entered.set()
            answer.opened.wait()
            answer = None
        if isinstance(answer, BaseException):
            raise answer
        body = answer if isinstance(answer, bytes) else orjson.dumps(answer or self._answer(request))
        with self.lock:
            self.body_sizes.append(len(body))
        return self._through_handlers(body)

    def _answer(self, request: dict) -> dict:
        segment = request.get("Segment", 0)
        sizes = self.pages[segment]
        page = 0
        if "ExclusiveStartKey" in request:  # must be in request form: B as bytes
            starts = [i + 1 for i in range(len(sizes)) if request["ExclusiveStartKey"] == request_form(segment, i)]
            if not starts:
                raise client_error("ValidationException", "The provided starting key is invalid", "Scan")
            page = starts[0]
        answer: dict = {"Items": [item(segment, page, n) for n in range(sizes[page])], "Count": sizes[page]}
        if page + 1 < len(sizes):
            answer["LastEvaluatedKey"] = last_key(segment, page)
        if self.units is not None:
            answer["ConsumedCapacity"] = {"TableName": TABLE, "CapacityUnits": self.units}
        return answer

    def _through_handlers(self, body: bytes) -> dict:
        """What botocore returns: the handlers see the body first; botocore parses what they leave."""
        response = {"status_code": 200, "headers": {}, "body": body}
        customized: dict = {}
        for event, handler in self.events.handlers.values():
            if event == EVENT:
                handler(response_dict=response, customized_response_dict=customized, operation_model=None)
        parsed = orjson.loads(response["body"])
        parsed.update(customized)
        parsed["ResponseMetadata"] = {"HTTPStatusCode": 200}
        return parsed


def request_form(segment: int, page: int) -> dict:
    key = last_key(segment, page)
    return {"pk": {"B": base64.b64decode(key["pk"]["B"])}, "sk": key["sk"]}


def make_scan(fake: FakeDynamoDB, positions: list[SegmentPosition], clock: FakeClock | None = None, **options):
    clock = clock or FakeClock()
    return TableScan(fake, TABLE, positions, monotonic=clock.monotonic, sleep=clock.sleep, **options)


def take_all(scan: TableScan, timeout: float = 10.0) -> list[ScanPage]:
    """Every page until the scan is finished (a thread's error is raised)."""
    pages: list[ScanPage] = []
    deadline = time.monotonic() + timeout
    while not scan.finished():
        assert time.monotonic() < deadline, "the scan did not finish"
        page = scan.get(0.05)
        if page is not None:
            pages.append(page)
    return pages


def by_segment(pages: list[ScanPage]) -> dict[int, list[ScanPage]]:
    segments: dict[int, list[ScanPage]] = {}
    for page in pages:
        segments.setdefault(page.segment, []).append(page)
    return segments


@pytest.fixture
def running():
    """Scans to stop after the test."""
    scans: list[TableScan] = []
    yield scans
    for scan in scans:
        scan.stop(timeout=2)


def started(running, scan: TableScan) -> TableScan:
    running.append(scan)
    scan.start()
    return scan


def test_resume_from_positions_skips_done_segments_and_starts_after_the_last_key(running):
    fake = FakeDynamoDB([[2, 2], [3, 3, 3], [1, 1]])
    positions = [SegmentPosition(done=True), SegmentPosition(last_key=last_key(1, 0)), SegmentPosition()]
    scan = started(running, make_scan(fake, positions))

    pages = by_segment(take_all(scan))

    assert fake.calls_of(0) == []
    first = fake.calls_of(1)[0]
    assert first["ExclusiveStartKey"] == {"pk": {"B": b"\xff\x001/0"}, "sk": {"N": "0"}}  # B decoded to bytes
    assert "ExclusiveStartKey" not in fake.calls_of(2)[0]
    assert [i for p in pages[1] for i in p.items] == fake.items_of(1, first_page=1)
    assert [i for p in pages[2] for i in p.items] == fake.items_of(2)
    assert set(pages) == {1, 2}
    for call in fake.calls:
        assert call["TableName"] == TABLE and call["TotalSegments"] == 3 and call["ConsistentRead"] is True
        assert call["ReturnConsumedCapacity"] == "TOTAL" and "Limit" not in call


def test_a_single_segment_is_a_plain_scan_without_segment_parameters(running):
    fake = FakeDynamoDB([[2, 2]])
    scan = started(running, make_scan(fake, [SegmentPosition(last_key=last_key(0, 0))], consistent_read=False))

    assert [i for p in take_all(scan) for i in p.items] == fake.items_of(0, first_page=1)
    assert fake.calls == [
        {
            "TableName": TABLE,
            "ConsistentRead": False,
            "ReturnConsumedCapacity": "TOTAL",
            "ExclusiveStartKey": request_form(0, 0),
        }
    ]


def test_with_the_tables_key_names_items_come_as_text_with_their_key_attributes(running):
    fake = FakeDynamoDB([[2, 3], [1]])
    scan = started(running, make_scan(fake, [SegmentPosition()] * 2, key_names=("pk", "sk")))

    pages = by_segment(take_all(scan))

    for segment in (0, 1):
        items = [i for p in pages[segment] for i in p.items]
        assert all(type(i) is ScannedItem for i in items)
        assert [i.parsed() for i in items] == fake.items_of(segment)
        assert [i.key for i in items] == [{"pk": i["pk"], "sk": i["sk"]} for i in fake.items_of(segment)]


def test_every_segment_is_scanned_to_its_end_in_order_with_more_segments_than_workers(running):
    fake = FakeDynamoDB([[3, 0, 2], [1], [2, 2, 2, 2], [0, 0, 1], [4, 4]])  # empty pages with a key go on
    scan = started(running, make_scan(fake, [SegmentPosition()] * 5, workers=2, page_limit=4))

    pages = by_segment(take_all(scan))

    assert sorted(pages) == [0, 1, 2, 3, 4]
    for segment, got in pages.items():
        assert [p.last_key for p in got] == [last_key(segment, i) for i in range(len(got) - 1)] + [None]
        assert [i for p in got for i in p.items] == fake.items_of(segment)
        assert all(isinstance(i["pk"]["B"], str) for p in got for i in p.items)  # wire JSON: base64 text
    assert all(call["Limit"] == 4 for call in fake.calls)
    assert len(fake.calls) == sum(len(sizes) for sizes in fake.pages)
    assert scan.finished() and scan.oldest_unhanded_ms() == math.inf


def test_threads_take_segments_in_turn_so_every_segment_makes_progress(running):
    fake = FakeDynamoDB([[1] * 50] * 4)
    scan = started(running, make_scan(fake, [SegmentPosition()] * 4, workers=1))

    take_all(scan)

    assert [call["Segment"] for call in fake.calls[:8]] == [0, 1, 2, 3, 0, 1, 2, 3]


@pytest.mark.parametrize(
    "failure",
    [
        client_error("ProvisionedThroughputExceededException", "slow down", "Scan"),
        client_error("ThrottlingException", "slow down", "Scan"),
        client_error("InternalServerError", "oops", "Scan", status=500),
        ReadTimeoutError(endpoint_url="https://dynamodb"),
    ],
    ids=["provisioned", "throttling", "5xx", "timeout"],
)
def test_throttling_and_transient_failures_are_retried_with_backoff_and_logged(running, caplog, failure):
    fake = FakeDynamoDB([[2, 2], [1]])
    fake.script[0] = [None, failure, failure, failure]  # the second page fails three times
    clock = FakeClock()
    scan = started(running, make_scan(fake, [SegmentPosition()] * 2, clock))

    with caplog.at_level(logging.WARNING, logger="bridge.source.scan"):
        pages = by_segment(take_all(scan))

    assert [i for p in pages[0] for i in p.items] == fake.items_of(0)
    retried = fake.calls_of(0)[1:]
    assert len(retried) == 4 and all(c["ExclusiveStartKey"] == request_form(0, 0) for c in retried)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    for attempt, message in enumerate(warnings, 1):
        assert f"table {TABLE} segment 0" in message and f"(attempt {attempt})" in message
    assert len(clock.sleeps) == 3 and all(0 <= s <= 0.1 * 2**i for i, s in enumerate(clock.sleeps))
    assert scan.finished()


def test_throttling_for_many_minutes_does_not_end_the_snapshot(running):
    fake = FakeDynamoDB([[1, 1]])
    fake.script[0] = [client_error("ThrottlingException", "slow down", "Scan")] * (5 * MALFORMED_LIMIT)
    clock = FakeClock()
    scan = started(running, make_scan(fake, [SegmentPosition()], clock))

    assert len(take_all(scan)) == 2
    assert len(clock.sleeps) == 5 * MALFORMED_LIMIT and max(clock.sleeps) <= BACKOFF_CAP


@pytest.mark.parametrize(
    ("error", "kind", "words"),
    [
        (client_error("AccessDeniedException", "not authorized", "Scan"), ConfigError, ["access denied", TABLE]),
        (client_error("ValidationException", "bad request", "Scan"), FatalError, ["bad request", TABLE]),
        (
            client_error("ResourceNotFoundException", "no table", "Scan"),
            FatalError,
            [f"table {TABLE} was deleted during its snapshot"],
        ),
    ],
    ids=["access-denied", "validation", "table-deleted"],
)
def test_refusals_are_raised_by_get(running, error, kind, words):
    fake = FakeDynamoDB([[1, 1]])
    fake.script[0] = [error]
    scan = started(running, make_scan(fake, [SegmentPosition()]))

    with pytest.raises(kind) as raised:
        take_all(scan)

    assert all(word in str(raised.value) for word in words)
    assert len(fake.calls) == 1 and not scan.finished()


BAD_ANSWERS = {
    "not-json": b"<html>",
    "not-an-object": b"[1, 2]",
    "no-items": {"Count": 0, "LastEvaluatedKey": {"pk": {"S": "x"}}},
    "no-items-no-key": {"Count": 0},
    "items-not-a-list": {"Items": {"pk": {"S": "x"}}},
    "item-not-a-map": {"Items": [1]},
    "key-null": {"Items": [], "LastEvaluatedKey": None},
    "key-empty": {"Items": [], "LastEvaluatedKey": {}},
    "key-not-one-tag": {"Items": [], "LastEvaluatedKey": {"pk": {"S": "x", "N": "1"}}},
    "key-map-value": {"Items": [], "LastEvaluatedKey": {"pk": {"M": {}}}},
    "key-bad-base64": {"Items": [], "LastEvaluatedKey": {"pk": {"B": "not base64!"}}},
}


@pytest.mark.parametrize("bad", BAD_ANSWERS.values(), ids=BAD_ANSWERS.keys())
def test_malformed_answer_is_retried_from_the_same_key(running, bad):
    fake = FakeDynamoDB([[2, 2, 1]])
    fake.script[0] = [None, bad]
    scan = started(running, make_scan(fake, [SegmentPosition()]))

    pages = take_all(scan)

    assert [i for p in pages for i in p.items] == fake.items_of(0)
    assert [p.last_key for p in pages] == [last_key(0, 0), last_key(0, 1), None]
    calls = fake.calls_of(0)
    assert calls[1]["ExclusiveStartKey"] == calls[2]["ExclusiveStartKey"] == request_form(0, 0)


def test_missing_items_never_end_a_segment_and_are_fatal_after_the_limit(running):
    fake = FakeDynamoDB([[2, 2], [1]])
    fake.script[0] = [None] + [{"Count": 0}] * MALFORMED_LIMIT
    scan = started(running, make_scan(fake, [SegmentPosition()] * 2))

    pages: list[ScanPage] = []
    with pytest.raises(FatalError) as raised:
        while True:
            if (page := scan.get(5)) is not None:
                pages.append(page)

    assert f"table {TABLE} segment 0" in str(raised.value) and "not well-formed" in str(raised.value)
    assert [p.last_key for p in pages if p.segment == 0] == [last_key(0, 0)]  # no page claims the segment ended
    assert len(fake.calls_of(0)) == 1 + MALFORMED_LIMIT
    assert not scan.finished()


def test_read_budget_paces_all_segments_to_the_budget(running):
    pages, units, budget = 20, 5.0, 10.0
    fake = FakeDynamoDB([[1] * 10, [1] * 10], units=units)
    clock = FakeClock()
    scan = started(running, make_scan(fake, [SegmentPosition()] * 2, clock, max_read_units_per_s=budget, workers=1))

    assert len(take_all(scan)) == pages

    expected = pages * units / budget  # one second's worth may go at once, the last page's debt is not waited
    assert expected - 1 - units / budget - 1e-9 <= clock.now <= expected + 1e-9


def test_answer_without_consumed_capacity_is_charged_an_estimate_from_its_size_logged_once(running, caplog):
    fake = FakeDynamoDB([[100] * 6], units=None)
    clock = FakeClock()
    scan = started(running, make_scan(fake, [SegmentPosition()], clock, max_read_units_per_s=1.0, workers=1))

    with caplog.at_level(logging.WARNING, logger="bridge.source.scan"):
        take_all(scan)

    estimate = sum(math.ceil(size / 4096) for size in fake.body_sizes)
    assert estimate > len(fake.body_sizes)  # each page is more than 4 KB
    assert estimate - 1 - max(fake.body_sizes) / 4096 - 1 <= clock.now <= estimate
    assert len([r for r in caplog.records if "ConsumedCapacity" in r.getMessage()]) == 1


def test_without_a_budget_nothing_waits(running):
    fake = FakeDynamoDB([[1] * 20], units=1000.0)
    clock = FakeClock()
    started(running, make_scan(fake, [SegmentPosition()], clock))
    take_all(running[0])
    assert clock.sleeps == []


def test_a_full_queue_stops_the_reading(running):
    queued, workers = 3, 2
    fake = FakeDynamoDB([[1] * 20, [1] * 20])
    scan = started(running, make_scan(fake, [SegmentPosition()] * 2, workers=workers, queue_pages=queued))

    wait_for(lambda: len(fake.calls) >= queued + workers, 5, "the queue to fill")
    assert len(fake.calls) == queued + workers  # a page queued or held by each blocked thread, no more
    assert scan.get(1) is not None
    wait_for(lambda: len(fake.calls) >= queued + workers + 1, 5, "one more call after a page was taken")
    assert len(fake.calls) == queued + workers + 1
    assert len(take_all(scan)) == 39


def test_oldest_unhanded_ms_covers_calls_in_flight_and_pages_not_taken(running):
    fake = FakeDynamoDB([[1, 1, 1]])
    gate = Gate()
    fake.script[0] = [None, gate]
    seconds = iter(range(1000, 2000))
    scan = make_scan(fake, [SegmentPosition()], wall_clock=lambda: next(seconds))
    assert scan.oldest_unhanded_ms() == math.inf

    started(running, scan)
    assert gate.entered.wait(5)
    assert scan.oldest_unhanded_ms() == 1_000_000  # the first page, queued, not taken

    first = scan.get(5)
    assert (first.started_ms, first.read_ms) == (1_000_000, 1_001_000)
    assert scan.oldest_unhanded_ms() == 1_002_000  # the second call, in flight
    assert not scan.finished()

    gate.opened.set()
    rest = take_all(scan)
    assert [p.started_ms for p in rest] == [1_002_000, 1_004_000]
    assert scan.oldest_unhanded_ms() == math.inf and scan.finished()


def test_finished_only_once_every_last_page_was_taken(running):
    fake = FakeDynamoDB([[1], [1]])
    scan = started(running, make_scan(fake, [SegmentPosition()] * 2))

    wait_for(lambda: scan.pages.qsize() == 2, 5, "both last pages queued")
    assert not scan.finished()
    scan.get(1)
    assert not scan.finished()
    scan.get(1)
    assert scan.finished()


def test_a_scan_of_done_segments_is_finished_without_a_call(running):
    fake = FakeDynamoDB([[1], [1]])
    scan = started(running, make_scan(fake, [SegmentPosition(done=True)] * 2))
    assert scan.finished() and scan.get(0.01) is None and fake.calls == []


def test_stop_returns_within_its_timeout_while_a_call_stalls(running, caplog):
    fake = FakeDynamoDB([[1, 1]])
    gate = Gate()
    fake.script[0] = [gate]
    scan = started(running, make_scan(fake, [SegmentPosition()]))
    assert gate.entered.wait(5)

    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="bridge.source.scan"):
        scan.stop(timeout=0.3)
    assert time.monotonic() - began < 2
    assert any("unanswered" in r.getMessage() for r in caplog.records)

    gate.opened.set()  # the late answer is dropped, and its thread ends
    wait_for(lambda: not any(t.is_alive() for t in scan.threads), 5, "the scan thread to end")
    assert scan.get(0.01) is None and len(fake.calls) == 1


def test_stop_drops_queued_pages(running):
    fake = FakeDynamoDB([[1] * 10])
    scan = started(running, make_scan(fake, [SegmentPosition()], queue_pages=2))
    wait_for(scan.pages.full, 5, "the queue to fill")
    scan.stop(timeout=2)
    assert scan.get(0.01) is None and not scan.finished()


@pytest.mark.parametrize(
    "key",
    [{"pk": {"B": "not base64!"}}, {"pk": {"M": {}}}, {"pk": "x"}, {}, {"pk": {"S": 1}}],
    ids=["bad-base64", "map", "untyped", "empty", "not-text"],
)
def test_a_checkpointed_key_that_is_not_a_key_is_fatal_naming_table_and_segment(key):
    fake = FakeDynamoDB([[1], [1]])
    with pytest.raises(FatalError) as raised:
        TableScan(fake, TABLE, [SegmentPosition(), SegmentPosition(last_key=key)])
    assert TABLE in str(raised.value) and "segment 1" in str(raised.value)


def test_the_raw_parser_is_registered_under_one_id_and_leaves_errors_to_botocore():
    fake = FakeDynamoDB([[1]])
    TableScan(fake, TABLE, [SegmentPosition()])
    TableScan(fake, TABLE, [SegmentPosition()])
    (event, handler) = fake.events.handlers["cdc-bridge-raw-scan"]
    assert len(fake.events.handlers) == 1 and event == "before-parse.dynamodb.Scan"

    error = {"status_code": 400, "headers": {}, "body": b'{"__type": "x#ValidationException"}'}
    customized: dict = {}
    handler(response_dict=error, customized_response_dict=customized)
    assert error["body"] == b'{"__type": "x#ValidationException"}' and customized == {}
