"""The one-pass transcoder (attribute-value JSON -> Avro) writes exactly what normalize + EnvelopeCodec write.

For arbitrary stream records (both binary shapes: base64 text as on the wire, bytes as boto3 gives them)
the Kafka value of a lazily built event, whose images are transcoded without building plain values, must be
byte for byte the value of the eagerly normalized event, and fastavro must read it back as those values.
Malformed images must raise the same `PoisonRecordError` (reason and attribute path) as `to_change_event`.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.codec import EnvelopeCodec, decode_value
from bridge.errors import PoisonRecordError
from bridge.normalize import _PENDING, LazyChangeEvent, to_change_event
from tests.dynamo_values import as_stream_json, attribute_values, items, malformed_values, names

CODEC = EnvelopeCodec()
RAW_CODEC = EnvelopeCodec(wire_format="raw")


def _stream_json(item: dict) -> dict:
    return {name: as_stream_json(value) for name, value in item.items()}


@st.composite
def stream_records(draw) -> dict:
    """A stream record of any operation and view type; images and keys as `GetRecords` or boto3 carry them."""
    shape = _stream_json if draw(st.booleans()) else (lambda item: item)
    keys = {"pk": draw(st.sampled_from([{"S": "k"}, {"N": "12"}, {"B": "AAE="}]))}
    if draw(st.booleans()):
        keys["sk"] = {"N": draw(st.sampled_from(["1", "-9223372036854775809", "1.5"]))}
    data = {"Keys": keys, "SequenceNumber": str(draw(st.integers(1, 10**20)))}
    data["StreamViewType"] = draw(st.sampled_from(["NEW_AND_OLD_IMAGES", "NEW_IMAGE", "OLD_IMAGE", "KEYS_ONLY"]))
    for side in ("OldImage", "NewImage"):
        if draw(st.booleans()):
            data[side] = {**keys, **shape(draw(items))}
    data["ApproximateCreationDateTime"] = draw(st.integers(0, 2**33))
    name = draw(st.sampled_from(["INSERT", "MODIFY", "REMOVE"]))
    return {"eventID": draw(st.text(max_size=8)), "eventName": name, "awsRegion": "eu-west-1", "dynamodb": data}


def _events(record: dict) -> tuple:
    options = {"table": "T", "stream_arn": "arn:s", "shard_id": "shard-1", "key_names": ("pk", "sk")}
    return to_change_event(record, **options), to_change_event(record, **options, lazy=True)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(record=stream_records(), ts_ms=st.integers(0, 2**45))
def test_transcoded_values_are_the_bytes_of_the_normalized_event_and_decode_to_its_values(record, ts_ms):
    eager, lazy = _events(record)
    for codec in (CODEC, RAW_CODEC):
        assert codec.encode(lazy, ts_ms) == codec.encode(eager, ts_ms)
    assert lazy.encoded is not None  # the images really went through the transcoder
    assert {id(lazy._before), id(lazy._after)} <= {id(None), id(_PENDING)}  # and no plain values were built
    decoded = decode_value(CODEC.encode(lazy, ts_ms))
    assert (decoded["keys"], decoded["before"], decoded["after"]) == (eager.keys, eager.before, eager.after)
    assert (lazy.before, lazy.after) == (eager.before, eager.after)  # plain values on demand, as before


@settings(max_examples=1000, deadline=None)
@given(
    garbage=st.one_of(malformed_values, st.dictionaries(names, malformed_values, max_size=3)),
    side=st.sampled_from(["Old", "New"]),
)
def test_malformed_images_raise_the_poison_error_normalize_raises(garbage, side):
    record = {
        "eventName": "MODIFY",
        "dynamodb": {"Keys": {"pk": {"S": "k"}}, "SequenceNumber": "1", f"{side}Image": garbage},
    }
    options = {"table": "T", "stream_arn": "arn:s", "shard_id": "shard-1"}
    try:
        expected = to_change_event(record, **options)
    except PoisonRecordError as error:
        lazy = to_change_event(record, **options, lazy=True)
        with pytest.raises(PoisonRecordError) as raised:
            CODEC.transcoder.sides(lazy)
        assert (raised.value.path, raised.value.reason) == (error.path, error.reason)
    else:
        assert CODEC.encode(to_change_event(record, **options, lazy=True), 1) == CODEC.encode(expected, 1)


@settings(max_examples=300, deadline=None)
@given(value=attribute_values)
def test_a_value_normalize_accepts_is_never_refused_by_the_transcoder(value):
    record = {"eventName": "INSERT", "dynamodb": {"Keys": {"pk": {"S": "k"}}, "SequenceNumber": "1"}}
    record["dynamodb"]["NewImage"] = {"v": as_stream_json(value)}
    eager, lazy = _events(record)
    assert CODEC.encode(lazy, 1) == CODEC.encode(eager, 1)
    assert lazy.encoded is not None


def test_numbers_that_look_integral_but_are_not_dynamodb_numbers_are_poison():
    for text in ["+5", "٣", "5 ", "", "-", "--5", "1_000"]:
        record = {
            "eventName": "INSERT",
            "dynamodb": {"Keys": {"pk": {"S": "k"}}, "SequenceNumber": "1", "NewImage": {"n": {"N": text}}},
        }
        lazy = to_change_event(record, table="T", stream_arn="a", shard_id="s", lazy=True)
        with pytest.raises(PoisonRecordError, match="not a DynamoDB number") as raised:
            CODEC.encode(lazy, 1)
        assert raised.value.path == "NewImage.n"


@pytest.mark.parametrize("current_item", [False, True])
def test_transcoded_events_carry_source_current_item_as_the_plain_writer_does(current_item):
    item = {"pk": {"S": "k"}, "n": {"N": "1.5"}, "m": {"M": {"b": {"B": "AAE="}}}}
    keys_only = {"eventName": "MODIFY", "dynamodb": {"Keys": {"pk": {"S": "k"}}, "SequenceNumber": "1"}}
    eager, _ = _events(keys_only)
    lazy = LazyChangeEvent(  # what bridge.enrich builds from a KEYS_ONLY record and the item read
        "u",
        "T",
        eager.keys,
        None,
        _PENDING,
        eager.position,
        eager.event_id,
        0,
        False,
        "",
        "",
        keys_only,
        current_item=current_item,
        raw_images=(None, item),
    )
    value = CODEC.encode(lazy, 1)
    assert lazy.encoded is not None  # the transcoder (the C writer when built) wrote the after image
    assert value == CODEC.encode(dataclasses.replace(eager, after=lazy.after, current_item=current_item), 1)
    assert decode_value(value)["source"]["current_item"] is current_item


def test_events_with_plain_images_still_encode_from_their_values():
    record = {
        "eventName": "INSERT",
        "dynamodb": {
            "Keys": {"pk": {"S": "k"}},
            "SequenceNumber": "1",
            "NewImage": {"pk": {"S": "k"}, "x": {"N": "1"}},
        },
    }
    eager, lazy = _events(record)
    replaced = dataclasses.replace(lazy, after={"pk": "k", "x": 2})  # what a filter that drops attributes does
    assert isinstance(replaced, LazyChangeEvent) and replaced.raw_images is None
    assert CODEC.encode(replaced, 1) == CODEC.encode(dataclasses.replace(eager, after={"pk": "k", "x": 2}), 1)
    assert CODEC.transcoder.sides(replaced) is None and CODEC.transcoder.sides(eager) is None
