"""normalize: DynamoDB attribute-value JSON to plain Python values and change events."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from bridge.errors import PoisonRecordError
from bridge.normalize import DynamoSet, normalize_item, normalize_value, to_change_event


@pytest.mark.parametrize(
    ("av", "expected"),
    [
        ({"S": "x"}, "x"),
        ({"S": ""}, ""),
        ({"N": "12"}, 12),
        ({"N": "-9223372036854775808"}, -(2**63)),
        ({"N": "10.0"}, 10),
        ({"BOOL": False}, False),
        ({"NULL": True}, None),
        ({"B": b"\x00\xff"}, b"\x00\xff"),
        ({"B": "AP8="}, b"\x00\xff"),
        ({"L": [{"S": "a"}, {"N": "1"}]}, ["a", 1]),
        ({"M": {}}, {}),
    ],
)
def test_scalar_and_container_values_become_plain_python(av, expected):
    value = normalize_value(av)
    assert value == expected and type(value) is type(expected)


def test_numbers_beyond_int64_and_fractions_stay_exact_decimals():
    assert normalize_value({"N": "9223372036854775808"}) == Decimal("9223372036854775808")
    assert normalize_value({"N": "1E-130"}) == Decimal("1E-130")
    digits = "1234567890123456789012345678901234567.8"
    assert str(normalize_value({"N": digits})) == digits


def test_sets_become_sorted_lists_that_remember_their_kind():
    value = normalize_value({"NS": ["10", "-1.5", "2"]})
    assert isinstance(value, DynamoSet) and value.kind == "NS"
    assert value == [Decimal("-1.5"), 2, 10]
    assert normalize_value({"SS": ["b", "a"]}) == ["a", "b"]
    assert normalize_value({"BS": ["Ag==", b"\x01"]}) == [b"\x01", b"\x02"]


@pytest.mark.parametrize(
    ("image", "path", "reason"),
    [
        ({"Specs": {"M": {"ram": {"Q": "1"}}}}, "Specs.ram", "unknown DynamoDB type tag"),
        ({"Specs": {"M": {"ram": {"S": "a", "N": "1"}}}}, "Specs.ram", "exactly one type tag"),
        ({"Price": {"N": "12abc"}}, "Price", "not a DynamoDB number"),
        ({"Price": {"N": "NaN"}}, "Price", "not a DynamoDB number"),
        ({"Blob": {"B": "%%%"}}, "Blob", "not valid base64"),
        ({"Tags": {"L": [{"S": "a"}, {"M": {"x": {"BOOL": "yes"}}}]}}, "Tags[1].x", "BOOL value must be bool"),
    ],
)
def test_malformed_values_raise_poison_errors_naming_the_attribute_path(image, path, reason):
    with pytest.raises(PoisonRecordError) as caught:
        normalize_item(image)
    assert caught.value.path == path
    assert reason in caught.value.reason


def _record(event_name: str, **data) -> dict:
    return {
        "eventID": "e1",
        "eventName": event_name,
        "awsRegion": "eu-west-1",
        "dynamodb": {
            "Keys": {"Model": {"S": "X"}, "Company": {"S": "Acme"}},
            "SequenceNumber": "100",
            "ApproximateCreationDateTime": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
            **data,
        },
    }


def test_modify_record_becomes_update_event_with_both_images_and_ordered_keys():
    record = _record("MODIFY", OldImage={"Size": {"N": "1"}}, NewImage={"Size": {"N": "2"}})
    event = to_change_event(record, table="Phones", stream_arn="arn", shard_id="s1", key_names=("Company", "Model"))
    assert event.op == "u"
    assert list(event.keys) == ["Company", "Model"] and event.partition_key == "Acme"
    assert event.before == {"Size": 1} and event.after == {"Size": 2}
    assert event.approximate_creation_ms == 1767225600000
    assert event.region == "eu-west-1" and event.position.sequence_number == "100"


def test_raw_json_creation_time_in_epoch_seconds_is_accepted():
    record = _record("INSERT", ApproximateCreationDateTime=1767225600.5, NewImage={})
    assert to_change_event(record, table="T", stream_arn="a", shard_id="s").approximate_creation_ms == 1767225600500


def test_keys_only_remove_has_no_images():
    event = to_change_event(_record("REMOVE", StreamViewType="KEYS_ONLY"), table="T", stream_arn="a", shard_id="s")
    assert event.op == "d" and event.before is None and event.after is None and event.view_type == "KEYS_ONLY"


def test_ttl_expiry_is_flagged_only_for_service_removes():
    ttl = {**_record("REMOVE"), "userIdentity": {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}}
    assert to_change_event(ttl, table="T", stream_arn="a", shard_id="s").ttl_expired is True
    assert to_change_event(_record("REMOVE"), table="T", stream_arn="a", shard_id="s").ttl_expired is False


def test_record_without_event_name_is_poison():
    with pytest.raises(PoisonRecordError, match="eventName"):
        to_change_event({"dynamodb": {}}, table="T", stream_arn="a", shard_id="s")


def test_lambda_event_spelling_of_the_ttl_identity_is_recognised():
    lambda_ttl = {**_record("REMOVE"), "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"}}
    assert to_change_event(lambda_ttl, table="T", stream_arn="a", shard_id="s").ttl_expired is True
    user = {**_record("REMOVE"), "userIdentity": {"type": "Service", "principalId": "someone.else"}}
    assert to_change_event(user, table="T", stream_arn="a", shard_id="s").ttl_expired is False


def test_ttl_flag_is_never_set_on_inserts_or_updates():
    identity = {"userIdentity": {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}}
    record = {**_record("MODIFY", NewImage={}), **identity}
    assert to_change_event(record, table="T", stream_arn="a", shard_id="s").ttl_expired is False


@pytest.mark.parametrize("view_type", ["OLD_IMAGE", "NEW_IMAGE"])
def test_single_image_view_types_give_only_their_side(view_type):
    side = "OldImage" if view_type == "OLD_IMAGE" else "NewImage"
    record = _record("MODIFY", StreamViewType=view_type, **{side: {"Size": {"N": "3"}}})
    event = to_change_event(record, table="T", stream_arn="a", shard_id="s")
    assert (event.before, event.after) == (({"Size": 3}, None) if side == "OldImage" else (None, {"Size": 3}))


def test_unknown_event_name_is_poison_naming_it():
    with pytest.raises(PoisonRecordError, match="unknown eventName 'UPSERT'"):
        to_change_event(_record("UPSERT"), table="T", stream_arn="a", shard_id="s")


@pytest.mark.parametrize(
    ("av", "path"),
    [({"NS": ["1", "x"]}, "[1]"), ({"BS": ["AA==", "%"]}, "[1]"), ({"SS": ["a", 1]}, "[1]")],
)
def test_bad_set_member_is_poison_naming_its_index(av, path):
    with pytest.raises(PoisonRecordError) as caught:
        normalize_item({"Tags": av})
    assert caught.value.path == "Tags" + path


@pytest.mark.parametrize("text", ["١٢", "1_000", " 1", "+1", "1e", "Infinity", "0x10", ""])
def test_only_ascii_decimal_number_text_is_a_number(text):
    with pytest.raises(PoisonRecordError, match="not a DynamoDB number"):
        normalize_value({"N": text})


def test_extreme_dynamodb_numbers_keep_every_digit():
    for text in ["1E-130", "-9.9999999999999999999999999999999999999E+125", "12345678901234567890123456789012345678"]:
        value = normalize_value({"N": text})
        assert isinstance(value, Decimal) and value == Decimal(text) and len(value.as_tuple().digits) <= 38
    assert normalize_value({"N": "9223372036854775807"}) == 2**63 - 1
    assert type(normalize_value({"N": "9223372036854775807"})) is int
