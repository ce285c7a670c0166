"""Scan items as JSON text: `split_items` cuts them out of a page, and the snapshot writes them as it writes dicts.

`split_items(body, key_names)` must give back a page that parses, with the items in their places, to what
orjson makes of the whole page, and for each item its key attributes as orjson reads them from the item; or
None for a page it does not cut (never a crash). The Scan read path (`bridge.source.scanbody`) hands such
items on as `ScannedItem`s, and a row made of one must be the row made of the parsed item: the same event,
Avro bytes, event id and dead letter.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import orjson
import pytest
from bridge.codec._speedups import split_items
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.checkpoint import SnapshotCheckpoint
from bridge.codec.avro import EnvelopeCodec
from bridge.config import TableConfig
from bridge.errors import RejectedEvent
from bridge.normalize import Position, RawImage, ScannedItem, to_snapshot_event
from bridge.poison import DeadLetter
from bridge.route import TableRoute
from bridge.sinks import TableEncoding
from bridge.snapshots import Snapshots
from bridge.source import scanbody
from bridge.source.discovery import TableInfo
from bridge.source.scan import ScanPage
from tests.dynamo_values import as_stream_json, attribute_values, names
from tests.unit.test_speedups import TRANSCODER

KEYS = ("pk", "sk")


def restored(kept: bytes, texts: list[bytes]) -> dict:
    page = orjson.loads(kept)
    page["Items"] = [orjson.loads(texts[index]) for index in page["Items"]]
    return page


def assert_split_alike(body: bytes, key_names: tuple[str, ...] = KEYS) -> list[dict]:
    """The split of `body` restores to the whole page, each item's keys are its key attributes; the keys."""
    kept, texts, keys = split_items(body, key_names)
    whole = orjson.loads(body)
    assert restored(kept, texts) == whole
    assert len(texts) == len(keys) == len(whole["Items"])
    parsed_keys = [orjson.loads(key) for key in keys]
    for item, key in zip(whole["Items"], parsed_keys, strict=True):
        assert {name: key[name] for name in key_names if name in key} == {
            name: item[name] for name in key_names if name in item
        }
    return parsed_keys


def test_items_with_escapes_nesting_binary_and_whitespace_are_cut_with_their_keys():
    items = [
        {"pk": {"S": 'quote " backslash \\ tab \t é \u2603 \U0001f600'}, "sk": {"N": "-1.5E+3"}},
        {"pk": {"B": "AAEC/w=="}, "sk": {"N": "0"}, "m": {"M": {"pk": {"S": "inner"}, "l": {"L": [{"NULL": True}]}}}},
        {"pk": {"S": "x"}, "sk": {"S": "y"}, "bs": {"BS": ["AA==", "AQ=="]}, "ns": {"NS": ["1", "2"]}},
    ]
    page = {"Items": items, "Count": 3, "ScannedCount": 3, "LastEvaluatedKey": {"pk": {"S": "x"}, "sk": {"S": "y"}}}
    for body in [
        orjson.dumps(page),
        json.dumps(page).encode(),  # \\u escapes, spaces after , and :
        json.dumps(page, ensure_ascii=False, indent=2).encode(),
        b" \n" + orjson.dumps(page) + b" \r\n\t",
    ]:
        keys = assert_split_alike(body)
        assert keys == [{name: item[name] for name in KEYS} for item in items], body


def test_an_item_lacking_a_key_attribute_lacks_it_in_its_key():
    body = b'{"Items":[{"sk":{"N":"1"},"v":{"S":"pk"}},{}],"Count":2}'
    assert assert_split_alike(body) == [{"sk": {"N": "1"}}, {}]


def test_empty_items_and_a_page_without_items_are_cut_to_nothing():
    assert split_items(b'{"Items":[],"Count":0}', KEYS) == (b'{"Items":[],"Count":0}', [], [])
    assert split_items(b'{"Count":0}', KEYS) == (b'{"Count":0}', [], [])


def test_repeated_and_escaped_attribute_names_give_the_keys_orjson_reads():
    """orjson keeps the last of repeated names; an escaped name may spell a key name."""
    for body in [
        b'{"Items":[{"pk":{"S":"first"},"v":{"N":"1"},"pk":{"S":"last"}}]}',
        b'{"Items":[{"p\\u006b":{"S":"escaped"},"sk":{"N":"1"}}]}',
        b'{"Items":[{"pk":{"S":"plain"},"p\\u006b":{"S":"escaped"}}]}',
        b'{"Items":[{"\\u0070k":{"S":"a"},"o\\"dd":{"S":"b"}}]}',
    ]:
        whole = orjson.loads(body)["Items"][0]
        (key,) = assert_split_alike(body)
        assert {name: key[name] for name in KEYS if name in key} == {
            name: whole[name] for name in KEYS if name in whole
        }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(st.dictionaries(names | st.sampled_from(KEYS), attribute_values, max_size=4), max_size=6),
    spelling=st.sampled_from(["orjson", "ascii", "indented"]),
)
def test_a_split_page_parses_to_the_whole_page(items, spelling):
    page = {"Items": [{name: as_stream_json(value) for name, value in item.items()} for item in items], "Count": 1}
    body = {
        "orjson": lambda: orjson.dumps(page),
        "ascii": lambda: json.dumps(page).encode(),
        "indented": lambda: json.dumps(page, ensure_ascii=False, indent=1).encode(),
    }[spelling]()
    assert_split_alike(body)


def test_pages_not_shaped_as_expected_or_not_json_are_not_cut():
    for body in [
        b"",
        b"[]",
        b'"Items"',
        b'{"Items":{}}',
        b'{"Items":[1]}',  # an item that is no object
        b'{"Items":[{"pk":{"S":"a"}},"x"]}',
        b'{"Ite\\u006ds":[{"pk":{"S":"a"}}]}',  # an escaped page member it would not recognize
        b'{"Items":[{"pk":{"S":"a"}}',  # cut short
        b'{"Items":[{"pk":{"S":"a"}},{"pk":{"S":"b"}]}',  # a broken item must not swallow the next
        b'{"Items":[{"pk":{"S":"\xff"}}]}',  # not UTF-8
        b'{"Items":[{"pk":{"N":01}}]}',
        b'{"Items":[{"pk":tru}]}',
        b'{"Items":[{"pk":[1,]}]}',
        b'{"Items":[{"pk":{"S":"a\x01"}}]}',  # a control character in a string
    ]:
        assert split_items(body, KEYS) is None, body


def test_wrong_arguments_are_a_type_error():
    for args in [(b"{}", ["pk"]), ("{}", ("pk",)), (b"{}", ("pk", 1)), (b"{}",)]:
        with pytest.raises(TypeError):
            split_items(*args)


# -- the Scan read path --------------------------------------------------------------------------------

ITEMS = [
    {"pk": {"S": "a"}, "sk": {"N": "1"}, "v": {"M": {"b": {"B": "AAE="}, "l": {"L": [{"BOOL": True}]}}}},
    {"pk": {"S": "b\u00e9\\"}, "sk": {"N": "2.50"}, "ss": {"SS": ["y", "x"]}},
]
PAGE = {"Items": ITEMS, "Count": 2, "LastEvaluatedKey": {"pk": {"S": "b"}, "sk": {"N": "2.50"}}}


def answer(body: bytes, key_names: tuple[str, ...]) -> dict:
    response = {"status_code": 200, "headers": {}, "body": body}
    customized: dict = {}
    with scanbody.keyed_items(key_names):
        scanbody.keep_raw_items(response_dict=response, customized_response_dict=customized)
    assert response["body"] == b"{}"
    return customized


def test_within_keyed_items_the_read_path_hands_on_items_as_text_with_their_keys():
    got = answer(orjson.dumps(PAGE), KEYS)
    assert [type(item) for item in got["Items"]] == [ScannedItem, ScannedItem]
    assert [item.parsed() for item in got["Items"]] == ITEMS
    assert [item.key for item in got["Items"]] == [{"pk": item["pk"], "sk": item["sk"]} for item in ITEMS]
    assert got["LastEvaluatedKey"] == PAGE["LastEvaluatedKey"] and got["Count"] == 2


def test_without_key_names_or_the_c_module_items_are_dicts(monkeypatch):
    assert answer(orjson.dumps(PAGE), ())["Items"] == ITEMS
    monkeypatch.setattr(scanbody, "split_items", None)
    got = answer(orjson.dumps(PAGE), KEYS)
    assert got["Items"] == ITEMS and all(type(item) is dict for item in got["Items"])


def test_a_page_the_split_declines_is_parsed_whole_and_one_not_json_has_no_items():
    lacking = b'{"Items":[{"pk":{"S":"a"}},["not an item"]]}'
    assert answer(lacking, KEYS)["Items"] == [{"pk": {"S": "a"}}, ["not an item"]]  # the reader calls it malformed
    assert "Items" not in answer(b'{"Items":[{"pk":{"S":"\xff"}}]}', KEYS)


def test_keyed_items_applies_to_its_thread_within_it_only():
    with scanbody.keyed_items(KEYS):
        with scanbody.keyed_items(("other",)):
            pass
        assert type(answer_in_context(orjson.dumps(PAGE))["Items"][0]) is ScannedItem
    assert type(answer_in_context(orjson.dumps(PAGE))["Items"][0]) is dict


def answer_in_context(body: bytes) -> dict:
    customized: dict = {}
    scanbody.keep_raw_items(response_dict={"status_code": 200, "body": body}, customized_response_dict=customized)
    return customized


# -- rows of both shapes -----------------------------------------------------------------------------------


def both_shapes(page: dict) -> tuple[list, list]:
    """The items of `page` as the read path hands them on without and with the text."""
    body = orjson.dumps(page)
    return answer(body, ())["Items"], answer(body, KEYS)["Items"]


def row(item):
    return to_snapshot_event(
        item,
        table="T",
        key_names=KEYS,
        region="r",
        position=Position("arn", "snapshot-segment-0", ""),
        event_id="id",
        read_ms=5,
        view_type="NEW_AND_OLD_IMAGES",
    )


def test_a_row_of_a_scanned_item_is_the_row_of_its_parsed_item_to_the_byte():
    dicts, texts = both_shapes(PAGE)
    for parsed, text in zip(dicts, texts, strict=True):
        as_dict, as_text = row(parsed), row(text)
        assert as_text == as_dict and as_text.after == as_dict.after and as_text.keys == as_dict.keys
        assert type(as_text.raw_images[1]) is RawImage  # what the transcoder writes from its text
        assert TRANSCODER.sides(as_text) == TRANSCODER.sides(as_dict)


def test_a_malformed_scanned_item_is_the_same_poison_in_both_shapes():
    page = {"Items": [{"pk": {"S": "a"}, "sk": {"N": "1"}, "bad": {"N": "not a number"}}]}
    (parsed,), (text,) = both_shapes(page)
    errors = []
    for item in (parsed, text):
        event = row(item)
        with pytest.raises(Exception) as raised:
            TRANSCODER.sides(event)
        errors.append(str(raised.value))
    assert errors[0] == errors[1] and "bad" in errors[0]


def test_event_ids_are_the_same_for_both_shapes():
    info = TableInfo("T", "arn", KEYS, "NEW_AND_OLD_IMAGES", "r", 2)
    snapshots = Snapshots(SimpleNamespace(tables=[]), None, None)  # no snapshot to resume: no checkpoint read
    snapshots.open([info])
    snapshot = SimpleNamespace(table="T", checkpoint=SnapshotCheckpoint(1_000, "initial", ()))  # what it reads
    page = {"Items": [*ITEMS, {"sk": {"N": "3"}}]}  # the last one lacks its partition key
    ids = [list(snapshots.event_ids(snapshot, ScanPage("T", 0, items, None, 0, 0))) for items in both_shapes(page)]
    assert ids[0] == ids[1]
    assert ids[0][0] == 'snapshot-1000-[{"S":"a"},{"N":"1"}]' and ids[0][2] == 'snapshot-1000-[null,{"N":"3"}]'


def test_dead_letters_of_both_shapes_are_the_same_json():
    (parsed, _), (text, _) = both_shapes(PAGE)
    letters = [DeadLetter("T", "too large", "kafka", "arn", "snapshot-segment-0", "", item) for item in (parsed, text)]
    assert letters[0].to_json() == letters[1].to_json()
    assert letters[0].truncated().to_json() == letters[1].truncated().to_json()


def test_a_route_gives_rows_of_both_shapes_the_same_events_and_dead_letters():
    page = {
        "Items": [
            *ITEMS,
            {"sk": {"N": "3"}, "v": {"S": "lacks its partition key"}},
            {"pk": {"S": "c"}, "sk": {"N": "4"}, "bad": {"NS": ["1", "x"]}},
        ]
    }
    outcomes = []
    for items in both_shapes(page):
        route = TableRoute(TableConfig(name="T", on_poison="dlq"), TableEncoding(EnvelopeCodec()), KEYS, "r")
        route.transcoder = TRANSCODER  # as `serve` sets it for Kafka sinks
        routed = route.rows(items, "arn", 0, 5, iter(["id1", "id2", "id3", "id4"]))
        rejected = route.rejected(RejectedEvent(routed.events[1], "too large"), "kafka")
        outcomes.append(
            (
                [(event, event.encoded) for event in routed.events],
                [letter.to_json() for letter in [*routed.letters, rejected]],
                [letter.truncated().to_json() for letter in [*routed.letters, rejected]],
            )
        )
    assert outcomes[0] == outcomes[1]
    events, letters, truncated = outcomes[1]
    assert [event.event_id for event, _ in events] == ["id1", "id2"] and all(encoded for _, encoded in events)
    assert len(letters) == 3 and b"key attribute pk" in letters[0] and b"bad" in letters[1]
    assert orjson.loads(truncated[2])["record"] == {"pk": ITEMS[1]["pk"], "sk": ITEMS[1]["sk"]}
