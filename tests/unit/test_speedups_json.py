"""Images as JSON text: `split_images` cuts them out of a page and `encode_image_json` writes them to Avro.

`encode_image_json(text)` must write what `encode_image(orjson.loads(text))` writes, or decline (None) so
that the caller parses the text: for every image, in every JSON spelling (orjson's compact UTF-8, `json`'s
ASCII escapes and spaces), and for text that is not quite an image or not quite JSON. `split_images` must
give back a page that parses, with the images in their places, to what orjson makes of the whole page.
"""

from __future__ import annotations

import json

import orjson
from bridge.codec._speedups import encode_image, encode_image_json, split_images
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import corpus
from bridge.normalize import RawImage
from bridge.source.rawbody import keep_raw_records
from tests.dynamo_values import as_stream_json, attribute_values, names
from tests.unit.test_speedups import TRANSCODER, tricky_values

TAGS = TRANSCODER.tags


def from_objects(text: bytes):
    """What the object path writes for the text, or "refused" where it raises (or orjson does)."""
    try:
        return encode_image(orjson.loads(text), TAGS, TRANSCODER.one_value)
    except Exception:
        return "refused"


def spellings(image) -> list[bytes]:
    return [
        orjson.dumps(image),
        json.dumps(image).encode(),  # \\u escapes for everything past ASCII, spaces after , and :
        json.dumps(image, ensure_ascii=False, indent=1).encode(),
    ]


def assert_written_alike_or_declined(text: bytes, must_write: bool = False) -> None:
    written = encode_image_json(text, TAGS)
    if written is None:
        assert not must_write, f"declined {text[:200]!r}"
    else:
        assert written == from_objects(text)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(image=st.dictionaries(names, attribute_values, max_size=5))
def test_every_dynamodb_image_is_written_from_its_text_as_from_its_objects(image):
    image = {name: as_stream_json(value) for name, value in image.items()}
    for text in spellings(image):
        assert_written_alike_or_declined(text)


def test_realistic_images_are_written_from_their_text_not_declined():
    for _, record in corpus.records(200):
        for side in ("NewImage", "OldImage"):
            if side in record["dynamodb"]:
                assert_written_alike_or_declined(orjson.dumps(record["dynamodb"][side]), must_write=True)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(image=st.dictionaries(names, tricky_values, max_size=4))
def test_tricky_images_are_written_alike_or_declined(image):
    try:
        texts = spellings(image)
    except TypeError:  # bytes and bytearrays are no JSON: as the wire never has them
        return
    for text in texts:
        assert_written_alike_or_declined(text)


@settings(max_examples=2000, deadline=None)
@given(
    image=st.dictionaries(names, attribute_values, min_size=1, max_size=3),
    cut=st.integers(0, 10_000),
    junk=st.sampled_from([b"", b",", b"}", b"]", b'"', b"\\", b"\x00", b"\xff", b"\xed\xa0\x80", b" ", b"{}", b"1"]),
)
def test_damaged_text_is_written_alike_or_declined(image, cut, junk):
    text = orjson.dumps({name: as_stream_json(value) for name, value in image.items()})
    cut %= len(text) + 1
    assert_written_alike_or_declined(text[:cut] + junk + text[cut:])
    assert_written_alike_or_declined(text[:cut] + text[cut + 1 :])


def test_shapes_the_text_path_leaves_to_the_object_path_are_declined():
    for text in [
        b'{"a":{"S":"x"},"a":{"S":"y"}}',  # a duplicate name: a dict keeps the last
        b'{"a":{"\\u0053":"x"}}',  # an escaped type tag
        b'{"a":{"S":"x","N":"1"}}',
        b'{"a":{"N":"1e5"}}',
        b'{"a":{"B":"QQ"}}',  # base64 without its padding
        b'{"a":{"S":"\\ud800"}}',  # lone surrogates
        b'{"a":{"S":"\\udc00"}}',
        b'{"a":{"S":"\\ud800\\u0041"}}',
        b'{"a":{"S":"\xed\xa0\x80"}}',  # a surrogate in UTF-8
        b'{"a":{"S":"tab\there"}}',  # a raw control character
        b'{"a":{"NULL":false}}',
        b'{"a":{"S":"x"}} x',
    ]:
        assert encode_image_json(text, TAGS) is None, text
        assert_written_alike_or_declined(text)


def test_escapes_and_surrogate_pairs_are_decoded():
    text = b'{"n\\u00e9":{"S":"\\ud83d\\ude00 \\"q\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u0000"}}'
    assert encode_image_json(text, TAGS) == from_objects(text)


def _page(records: list) -> dict:
    return {"Records": records, "NextShardIterator": "arn:aws:dynamodb:...|1|AAAA"}


def _record(index: int, image: dict | None, old: dict | None) -> dict:
    data: dict = {"Keys": {"pk": {"S": str(index)}}, "SequenceNumber": str(index)}
    if image is not None:
        data["NewImage"] = image
    if old is not None:
        data["OldImage"] = old
    return {"eventID": str(index), "eventName": "MODIFY", "dynamodb": data}


def _restored(kept: bytes, images: list[bytes]) -> dict:
    page = orjson.loads(kept)
    for record in page["Records"]:
        for side in ("NewImage", "OldImage"):
            if side in record["dynamodb"]:
                record["dynamodb"][side] = orjson.loads(images[record["dynamodb"][side]])
    return page


@settings(max_examples=300, deadline=None)
@given(
    images=st.lists(
        st.tuples(
            st.none() | st.dictionaries(names, attribute_values, max_size=3),
            st.none() | st.dictionaries(names, attribute_values, max_size=3),
        ),
        max_size=5,
    ),
    indent=st.booleans(),
)
def test_a_split_page_parses_to_the_whole_page(images, indent):
    def wire(image):
        return None if image is None else {name: as_stream_json(value) for name, value in image.items()}

    page = _page([_record(i, wire(new), wire(old)) for i, (new, old) in enumerate(images)])
    body = json.dumps(page, indent=1).encode() if indent else orjson.dumps(page)
    kept, cut = split_images(body)
    assert len(cut) == sum((new is not None) + (old is not None) for new, old in images)
    assert _restored(kept, cut) == orjson.loads(body)


def test_pages_of_another_shape_are_not_split():
    for page in [
        b"[]",
        b'{"Records":{}}',
        b'{"Records":[{"dynamodb":{"NewImage":"text"}}]}',  # an image that is no object
        b'{"Records":[{"dynamodb":{"New\\u0049mage":{}}}]}',  # an escaped name it would not recognize
        b'{"Records":[{"dynamodb":{"NewImage":{"a":1}',  # cut short
    ]:
        assert split_images(page) is None, page


def test_a_page_with_an_image_that_is_not_json_is_not_split():
    """Cut out unchecked, a broken image could swallow the records after it and leave a page that parses."""
    for page in [
        b'{"Records":[{"dynamodb":{"NewImage":{"a":{"S":"x"}},"OldImage":{q":{"S":"y"}}}},'
        b'{"dynamodb":{"NewImage":{"b":{"S":"lost"}}}},{"dynamodb":{"NewImage":{"c":{"S":"z"}},"OldImage":{d":{}}}}]}',
        b'{"Records":[{"dynamodb":{"NewImage":{"a":{"S":"\xff"}}}}]}',  # not UTF-8
        b'{"Records":[{"dynamodb":{"NewImage":{"a":{"N":01}}}}]}',  # not a JSON number
        b'{"Records":[{"dynamodb":{"NewImage":{"a":tru}}}]}',
        b'{"Records":[{"dynamodb":{"NewImage":{"a":[1,]}}}]}',
    ]:
        assert split_images(page) is None, page
        response: dict = {"status_code": 200, "body": page}
        keep_raw_records(response, {})
        assert response["body"] == page, "left to botocore, which reports the page as unreadable"


def test_the_read_path_hands_out_images_as_text_and_the_rest_as_values():
    image = {"pk": {"S": "1"}, "v": {"N": "2"}}
    body = orjson.dumps(_page([_record(1, image, None), {"eventID": "odd"}]))
    response: dict = {"status_code": 200, "body": body}
    parsed: dict = {}
    keep_raw_records(response, parsed)
    first = parsed["Records"][0]
    assert type(first["dynamodb"]["NewImage"]) is RawImage
    assert first["dynamodb"]["NewImage"].parsed() == image
    assert first["dynamodb"]["Keys"] == {"pk": {"S": "1"}} and parsed["Records"][1] == {"eventID": "odd"}
    assert parsed["NextShardIterator"] == "arn:aws:dynamodb:...|1|AAAA" and response["body"] == b"{}"
