"""enrich: inserts and modifies without a new image get the item as a consistent BatchGetItem reads it now.

A scripted fake `dynamodb` client answers BatchGetItem as DynamoDB does (at most 100 distinct keys, items as
wire JSON, `UnprocessedKeys` always present) unless a test scripts another answer: throttling, a malformed
answer, keys left unprocessed.
"""

from __future__ import annotations

import base64
import logging
from decimal import Decimal
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from bridge.codec import EnvelopeCodec, decode_value
from bridge.enrich import BATCH_LIMIT, EVENT, CurrentItems, keep_raw_items
from bridge.errors import ConfigError, FatalError, RejectedEvent
from bridge.normalize import ChangeEvent, normalize_item, to_change_event
from bridge.source.aws_errors import MALFORMED_LIMIT

TABLE = "Things"


def client_error(code: str, status: int = 400) -> ClientError:
    response = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "BatchGetItem")


def _filed(tag: str, value) -> object:
    if tag == "B":
        return base64.b64decode(value) if isinstance(value, str) else value
    return Decimal(value) if tag == "N" else value  # DynamoDB compares numbers, not their text


def _request_form(key: dict) -> tuple:
    """A key as the fake files it: B as bytes (what botocore is handed), N as its value, S as text."""
    return tuple((name, tag, _filed(tag, value)) for name, av in sorted(key.items()) for tag, value in av.items())


class FakeDynamoDB:
    """BatchGetItem over `items` (wire JSON); `script` holds the next calls' outcomes: an exception to
    raise, an answer to return, or a function of the requested keys giving the answer."""

    def __init__(self, items: list[dict], key_names: tuple[str, ...]) -> None:
        self.key_names = key_names
        self.items = {self._key_of(item): item for item in items}
        self.requests: list[list[dict]] = []
        self.script: list = []
        self.handlers: dict[str, object] = {}
        self.meta = SimpleNamespace(events=SimpleNamespace(register=self._register))

    def _register(self, event: str, handler, unique_id: str) -> None:
        self.handlers[event] = handler

    def _key_of(self, item: dict) -> tuple:
        return _request_form({name: item[name] for name in self.key_names})

    def batch_get_item(self, RequestItems: dict) -> dict:  # boto3's argument name
        assert list(RequestItems) == [TABLE] and RequestItems[TABLE]["ConsistentRead"] is True
        keys = RequestItems[TABLE]["Keys"]
        self.requests.append(keys)
        filed = [_request_form(key) for key in keys]
        if len(keys) > 100 or len(set(filed)) < len(filed):  # DynamoDB's ValidationException
            raise client_error("ValidationException")
        step = self.script.pop(0) if self.script else self.answer
        if isinstance(step, Exception):
            raise step
        return step(keys) if callable(step) else step

    def answer(self, keys: list[dict], unprocessed: int = 0) -> dict:
        """What DynamoDB answers: the items found (wire JSON), the last `unprocessed` keys left unread."""
        read, left = keys[: len(keys) - unprocessed], keys[len(keys) - unprocessed :]
        found = [self.items[_request_form(key)] for key in read if _request_form(key) in self.items]
        unread = {TABLE: {"Keys": [_wire_key(key) for key in left], "ConsistentRead": True}} if left else {}
        return {"Responses": {TABLE: found}, "UnprocessedKeys": unread}


def _wire_key(key: dict) -> dict:
    """A request key as DynamoDB's JSON gives it back (B as base64 text)."""
    return {
        name: {tag: base64.b64encode(value).decode() if tag == "B" else value for tag, value in av.items()}
        for name, av in key.items()
    }


def _record(op: str, keys: dict, sequence: int, old: dict | None = None, new: dict | None = None) -> dict:
    data = {"Keys": keys, "SequenceNumber": str(sequence), "StreamViewType": "KEYS_ONLY"}
    if old is not None:
        data["OldImage"] = old
    if new is not None:
        data["NewImage"] = new
    name = {"c": "INSERT", "u": "MODIFY", "d": "REMOVE"}[op]
    return {"eventID": f"e{sequence}", "eventName": name, "awsRegion": "eu-west-1", "dynamodb": data}


def _event(op: str, keys: dict, sequence: int = 1, key_names=("pk",), **images) -> ChangeEvent:
    record = _record(op, keys, sequence, **images)
    return to_change_event(record, table=TABLE, stream_arn="arn:s", shard_id="shard-1", key_names=key_names, lazy=True)


def _item(pk: str, **attributes) -> dict:
    return {"pk": {"S": pk}, **attributes}


def _reader(client: FakeDynamoDB, key_names=("pk",)) -> tuple[CurrentItems, list[float]]:
    slept: list[float] = []
    return CurrentItems(client, TABLE, key_names, sleep=slept.append), slept


def test_inserts_and_modifies_get_the_current_item_marked_current_item():
    item = _item("a", n={"N": "1.50"}, m={"M": {"l": {"L": [{"S": "x"}, {"NULL": True}]}}})
    client = FakeDynamoDB([item], ("pk",))
    events = [_event("c", {"pk": {"S": "a"}}, 1), _event("u", {"pk": {"S": "a"}}, 2, old=_item("a", n={"N": "1"}))]
    enriched, _ = _reader(client)
    enriched = enriched.enrich(events)
    assert [e.after for e in enriched] == [normalize_item(item)] * 2
    assert all(e.current_item for e in enriched)
    assert enriched[0].raw_images == (None, item) and enriched[0].before is None
    assert enriched[1].before == {"pk": "a", "n": 1}  # the change's own old image is kept
    assert [(e.op, e.position, e.event_id) for e in enriched] == [(e.op, e.position, e.event_id) for e in events]
    assert client.handlers == {EVENT: keep_raw_items}  # the client parses BatchGetItem bodies raw


def test_enriched_events_encode_with_source_current_item():
    item = _item("a", b={"B": "AAE="}, n={"N": "3"})
    (event,) = _reader(FakeDynamoDB([item], ("pk",)))[0].enrich([_event("c", {"pk": {"S": "a"}})])
    decoded = decode_value(EnvelopeCodec().encode(event, 1))
    assert decoded["after"] == {"pk": "a", "b": b"\x00\x01", "n": 3}
    assert decoded["source"]["current_item"] is True and decoded["source"]["snapshot"] is False


def test_an_item_deleted_since_keeps_after_none_but_is_marked_current_item():
    client = FakeDynamoDB([], ("pk",))
    old = _item("gone", n={"N": "1"})
    (event,) = _reader(client)[0].enrich([_event("u", {"pk": {"S": "gone"}}, old=old)])
    assert event.after is None and event.current_item is True
    assert event.before == {"pk": "gone", "n": 1}
    assert len(client.requests) == 1


def test_events_with_a_new_image_and_deletes_are_returned_as_they_are():
    client = FakeDynamoDB([_item("a")], ("pk",))
    with_image = _event("c", {"pk": {"S": "a"}}, 1, new=_item("a", x={"S": "y"}))
    delete = _event("d", {"pk": {"S": "a"}}, 2)
    without_record = ChangeEvent("c", TABLE, {"pk": "a"}, None, None, with_image.position, "e", 0, False, "", "")
    events = [with_image, delete, without_record, _event("c", {"pk": {"S": "a"}}, 3)]
    enriched = _reader(client)[0].enrich(events)
    assert enriched[0] is with_image and enriched[1] is delete and enriched[2] is without_record
    assert enriched[3] is not events[3] and enriched[3].after == {"pk": "a"}
    assert [len(keys) for keys in client.requests] == [1]
    assert _reader(client)[0].enrich([with_image, delete]) == [with_image, delete]
    assert len(client.requests) == 1  # nothing to read: no request


def test_a_key_changed_many_times_in_one_batch_is_read_once():
    client = FakeDynamoDB([_item("a", v={"N": "9"}), _item("b")], ("pk",))
    events = [_event("u" if i else "c", {"pk": {"S": "ab"[i % 2]}}, i + 1) for i in range(7)]
    enriched = _reader(client)[0].enrich(events)
    assert client.requests == [[{"pk": {"S": "a"}}, {"pk": {"S": "b"}}]]
    assert [e.after["pk"] for e in enriched] == ["a", "b", "a", "b", "a", "b", "a"]
    assert enriched[0].raw_images[1] is enriched[2].raw_images[1]  # one item, shared


def test_more_than_100_distinct_keys_are_split_into_requests_of_100():
    items = [_item(f"k{i}", i={"N": str(i)}) for i in range(250)]
    client = FakeDynamoDB(items, ("pk",))
    events = [_event("c", {"pk": {"S": f"k{i}"}}, i + 1) for i in range(250)]
    enriched = _reader(client)[0].enrich(events)
    assert [len(keys) for keys in client.requests] == [BATCH_LIMIT, BATCH_LIMIT, 50]
    assert [e.after["i"] for e in enriched] == list(range(250))


def test_unprocessed_keys_are_asked_again_after_a_backoff():
    items = [_item(f"k{i}") for i in range(5)]
    client = FakeDynamoDB(items, ("pk",))
    client.script = [lambda keys: client.answer(keys, unprocessed=3), lambda keys: client.answer(keys, unprocessed=1)]
    reader, slept = _reader(client)
    enriched = reader.enrich([_event("c", {"pk": {"S": f"k{i}"}}, i + 1) for i in range(5)])
    assert [[key["pk"]["S"] for key in keys] for keys in client.requests] == [
        ["k0", "k1", "k2", "k3", "k4"],
        ["k2", "k3", "k4"],
        ["k4"],
    ]
    assert [e.after for e in enriched] == [{"pk": f"k{i}"} for i in range(5)]
    assert len(slept) == 2 and 0 <= slept[0] <= 0.2 and 0 <= slept[1] <= 0.4  # exponential, full jitter


def test_unprocessed_keys_go_first_into_the_next_full_request():
    items = [_item(f"k{i:03}") for i in range(150)]
    client = FakeDynamoDB(items, ("pk",))
    client.script = [lambda keys: client.answer(keys, unprocessed=10)]
    enriched = _reader(client)[0].enrich([_event("c", {"pk": {"S": f"k{i:03}"}}, i + 1) for i in range(150)])
    assert [len(keys) for keys in client.requests] == [100, 60]
    assert client.requests[1][:10] == client.requests[0][90:]
    assert all(e.after is not None for e in enriched)


def test_throttling_5xx_and_network_failures_are_retried_with_a_warning(caplog):
    client = FakeDynamoDB([_item("a")], ("pk",))
    client.script = [
        client_error("ProvisionedThroughputExceededException"),
        client_error("InternalServerError", 500),
        EndpointConnectionError(endpoint_url="http://dynamodb"),
    ]
    reader, slept = _reader(client)
    with caplog.at_level(logging.WARNING, logger="bridge.enrich"):
        (event,) = reader.enrich([_event("c", {"pk": {"S": "a"}})])
    assert event.after == {"pk": "a"} and len(client.requests) == 4
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3 and all(f"table {TABLE}" in w for w in warnings)
    assert [f"attempt {n} failed" in w for n, w in enumerate(warnings, 1)] == [True] * 3
    assert "ProvisionedThroughputExceededException" in warnings[0]
    assert len(slept) == 3 and all(0 <= delay <= 0.1 * 2**n for n, delay in enumerate(slept, 1))


def test_access_denied_is_a_config_error_and_a_missing_table_a_fatal_error_naming_it():
    client = FakeDynamoDB([_item("a")], ("pk",))
    client.script = [client_error("AccessDeniedException")]
    with pytest.raises(ConfigError, match="access denied"):
        _reader(client)[0].enrich([_event("c", {"pk": {"S": "a"}})])
    client.script = [client_error("ResourceNotFoundException")]
    with pytest.raises(FatalError, match=f"table {TABLE} no longer exists"):
        _reader(client)[0].enrich([_event("c", {"pk": {"S": "a"}})])


MALFORMED = [
    {},
    {"Responses": [], "UnprocessedKeys": {}},
    {"Responses": {TABLE: {}}, "UnprocessedKeys": {}},
    {"Responses": {TABLE: ["not an item"]}, "UnprocessedKeys": {}},
    {"Responses": {TABLE: [{"other": {"S": "a"}}]}, "UnprocessedKeys": {}},
    {"Responses": {TABLE: [{"pk": {"S": "not asked"}}]}, "UnprocessedKeys": {}},
    {"Responses": {TABLE: [{"pk": {"N": "x"}}]}, "UnprocessedKeys": {}},
    {"Responses": {TABLE: []}},
    {"Responses": {}, "UnprocessedKeys": {}},  # no answer for the table is not "every item is gone"
    {"Responses": {TABLE: []}, "UnprocessedKeys": {TABLE: {"Keys": "a"}}},
    {"Responses": {TABLE: [{"pk": {"S": "a"}}]}, "UnprocessedKeys": {TABLE: {"Keys": [{"pk": {"S": "a"}}]}}},
    "not an answer",
]


@pytest.mark.parametrize("answer", MALFORMED)
def test_a_malformed_answer_is_retried_and_fatal_after_the_limit_in_a_row(answer):
    client = FakeDynamoDB([_item("a")], ("pk",))
    client.script = [answer] * (MALFORMED_LIMIT - 1)
    (event,) = _reader(client)[0].enrich([_event("c", {"pk": {"S": "a"}})])
    assert event.after == {"pk": "a"} and len(client.requests) == MALFORMED_LIMIT

    client.script = [answer] * MALFORMED_LIMIT
    client.requests.clear()
    with pytest.raises(FatalError, match="not well-formed"):
        _reader(client)[0].enrich([_event("c", {"pk": {"S": "a"}})])
    assert len(client.requests) == MALFORMED_LIMIT


def test_another_failure_ends_a_streak_of_malformed_answers():
    client = FakeDynamoDB([_item("a")], ("pk",))
    streak = [{}] * (MALFORMED_LIMIT - 1)
    client.script = [*streak, client_error("ThrottlingException"), *streak]
    (event,) = _reader(client)[0].enrich([_event("c", {"pk": {"S": "a"}})])
    assert event.after == {"pk": "a"}


def test_binary_keys_are_bytes_in_the_request_and_items_match_back_by_their_key_values():
    key_names = ("id", "at")
    stored = {"id": {"B": "AP8="}, "at": {"N": "1.50"}, "v": {"S": "x"}}  # DynamoDB may spell N otherwise
    client = FakeDynamoDB([stored], key_names)
    keys = {"id": {"B": "AP8="}, "at": {"N": "1.5"}}
    missing = {"id": {"B": "AQ=="}, "at": {"N": "1.5"}}
    events = [_event("c", keys, 1, key_names), _event("c", missing, 2, key_names)]
    enriched = _reader(client, key_names)[0].enrich(events)
    assert client.requests == [
        [{"id": {"B": b"\x00\xff"}, "at": {"N": "1.5"}}, {"id": {"B": b"\x01"}, "at": {"N": "1.5"}}]
    ]
    assert enriched[0].after == {"id": b"\x00\xff", "at": Decimal("1.5"), "v": "x"}
    assert enriched[1].after is None and enriched[1].current_item


def test_keys_boto3_parsed_as_bytes_are_asked_as_bytes():
    client = FakeDynamoDB([{"pk": {"B": "AQI="}}], ("pk",))
    (event,) = _reader(client)[0].enrich([_event("c", {"pk": {"B": b"\x01\x02"}})])
    assert client.requests == [[{"pk": {"B": b"\x01\x02"}}]] and event.after == {"pk": b"\x01\x02"}


@pytest.mark.parametrize(
    "keys", [{"other": {"S": "a"}}, {"pk": {"M": {}}}, {"pk": {"SS": ["a"]}}], ids=["missing", "map", "set"]
)
def test_an_event_whose_keys_cannot_be_asked_is_rejected_before_anything_is_read(keys):
    client = FakeDynamoDB([_item("a")], ("pk",))
    bad = _event("c", keys, 2)
    with pytest.raises(RejectedEvent, match="key attributes pk") as raised:
        _reader(client)[0].enrich([_event("c", {"pk": {"S": "a"}}, 1), bad])
    assert raised.value.event is bad and client.requests == []


def test_the_raw_handler_hands_botocore_the_parsed_answer_and_leaves_errors_alone():
    body = b'{"Responses":{"T":[{"b":{"B":"AAE="}}]},"UnprocessedKeys":{},"ConsumedCapacity":[]}'
    response, customized = {"status_code": 200, "body": body}, {}
    keep_raw_items(response, customized)
    assert customized == {"Responses": {"T": [{"b": {"B": "AAE="}}]}, "UnprocessedKeys": {}}
    assert response["body"] == b"{}"
    for status, text in ((400, b'{"__type":"ValidationException"}'), (200, b"not json"), (200, b"[]")):
        response, customized = {"status_code": status, "body": text}, {}
        keep_raw_items(response, customized)
        assert customized == {} and response["body"] == text


def test_a_sleep_that_raises_abandons_the_read():
    class Stopping(Exception):
        pass

    def sleep(delay: float) -> None:
        raise Stopping

    client = FakeDynamoDB([_item("a")], ("pk",))
    client.script = [client_error("ThrottlingException")]
    with pytest.raises(Stopping):
        CurrentItems(client, TABLE, ("pk",), sleep=sleep).enrich([_event("c", {"pk": {"S": "a"}})])
    assert len(client.requests) == 1
