"""The C image writer (`bridge/codec/csrc/`) writes exactly the bytes of the Python image writer.

Both are given the same raw images: well-formed ones of every shape (numbers in every notation and length,
base64 with and without padding, sets with ties and more members than the C writer sorts itself, deep
nesting) and malformed ones. Where the Python writer writes bytes the C writer must write the same bytes;
where it raises, the C writer must raise too (the transcoder then asks `bridge.normalize` for the poison
error, tests/unit/test_transcode.py).
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.codec import EnvelopeCodec
from bridge.codec.transcode import Transcoder, encode_image
from tests.dynamo_values import as_stream_json, attribute_values, malformed_values, names

TRANSCODER = Transcoder(EnvelopeCodec().schema)


def python_bytes(image: dict) -> bytes:
    out = bytearray(b"\x02")
    TRANSCODER.item(out, image)
    return bytes(out)


def c_bytes(image: dict) -> bytes:
    return encode_image(image, TRANSCODER.tags, TRANSCODER.one_value)


def outcome(write, image: dict):
    try:
        return write(image)
    except Exception:  # the type may differ: only "refused" matters, normalize names the reason
        return "refused"


def assert_same(image: dict) -> None:
    assert outcome(c_bytes, image) == outcome(python_bytes, image)


def test_the_install_compiled_the_c_writer():
    assert encode_image is not None, "bridge/codec/csrc/ was not built: is a C compiler installed?"


_DIGITS = st.text("0123456789", max_size=45)
# every notation the writers tell apart: plain integers short and long, decimals with zero and nonzero
# fractions, leading zeros, exponents, and near misses
number_texts = st.one_of(
    st.builds(lambda sign, whole: sign + whole, st.sampled_from(["", "-", "+"]), _DIGITS),
    st.builds(lambda sign, whole, fraction: f"{sign}{whole}.{fraction}", st.sampled_from(["", "-"]), _DIGITS, _DIGITS),
    st.builds(lambda n, e: f"{n}e{e}", st.integers(-99, 99), st.integers(-140, 130)),
    st.integers(-(2**130), 2**130).map(str),
    st.sampled_from(["0", "-0", "-0.0", ".5", "5.", "-.5", ".", "-", "", "1..2", "1.2.3", "١٢", " 1", "0x10"]),
    st.sampled_from(["9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809"]),
    st.sampled_from(["99999999999999999999999999999999999999", "999999999999999999999999999999999999999"]),
    st.sampled_from(["1234567890123456789012.000", "-0000000000000000000000000001", "0.00000000000000000001"]),
)
base64_texts = st.one_of(
    st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode()),
    st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode().rstrip("=")),
    st.text("ABCab01+/=-_ é", max_size=10),
)


def _scalar(draw_texts: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.builds(lambda n: {"N": n}, draw_texts),
        st.builds(lambda b: {"B": b}, st.one_of(base64_texts, st.binary(max_size=8), st.binary().map(bytearray))),
        st.builds(lambda v: {"NS": v}, st.lists(draw_texts, max_size=6)),
        st.builds(lambda v: {"BS": v}, st.lists(st.one_of(base64_texts, st.binary(max_size=4)), max_size=6)),
        st.builds(lambda v: {"SS": v}, st.lists(st.text(max_size=4), max_size=6)),
        st.builds(lambda v: {"S": v}, st.text(max_size=6)),
        st.builds(lambda v: {"BOOL": v}, st.one_of(st.booleans(), st.integers(0, 1))),
        st.builds(lambda v: {"NULL": v}, st.one_of(st.just(True), st.booleans(), st.none())),
    )


tricky_values = st.recursive(
    _scalar(number_texts),
    lambda children: st.one_of(
        st.builds(lambda v: {"L": v}, st.lists(children, max_size=3)),
        st.builds(lambda v: {"M": v}, st.dictionaries(names, children, max_size=3)),
    ),
    max_leaves=10,
)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(image=st.dictionaries(names, tricky_values, max_size=4))
def test_c_and_python_writers_agree_on_tricky_values(image):
    assert_same(image)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(image=st.dictionaries(names, attribute_values, max_size=4))
def test_c_and_python_writers_agree_on_dynamodb_values(image):
    image = {name: as_stream_json(value) for name, value in image.items()}
    assert c_bytes(image) == python_bytes(image)


@settings(max_examples=1500, deadline=None)
@given(image=st.dictionaries(st.one_of(names, st.integers()), malformed_values, max_size=3))
def test_c_and_python_writers_refuse_the_same_malformed_images(image):
    assert_same(image)


@pytest.mark.parametrize(
    "value",
    [
        {"NS": [str(n) for n in range(100, 0, -1)]},  # more members than the C writer sorts itself
        {"NS": ["1.50", "1", "1.5", "1.0", "-0", "0.0", "0"]},  # ties keep their order (stable sort)
        {"NS": ["1.55", "1.505", "1.5", "-1.5", "-1.55", "10.5", "01.5"]},  # a fraction that extends another
        {"NS": ["-1.5", "-1.25", "-10", "2.5", "0.001", "-0.001", "10", "9.99"]},
        {"NS": ["1", "99999999999999999999999999999999999999999"]},  # a member past 38 digits
        {"SS": ["é", "z", "a", "ÿ", "€", "😀", "", "zz"]},  # code point order is UTF-8 byte order
        {"SS": ["a\ud800"]},  # a lone surrogate: refused by both
        {"BS": ["AAE=", b"\x00", "AA==", b""]},
        {"B": "QQ"},  # missing padding
        {"B": "QUJD=="},  # excess padding
        {"S": "x\udc80"},
        {"M": {1: {"S": "x"}}},  # a name that is not a string
        {"N": "0." + "0" * 5000 + "1"},  # longer than Python's int() reads, still an exact DynamoDB-style number
        {"N": "0" * 5000 + "1.5"},
        {"N": "0" * 5000 + "12.000"},
    ],
)
def test_c_and_python_writers_agree_on_edge_cases(value):
    assert_same({"v": value})
    if "N" in value:
        assert c_bytes({"v": value}) == python_bytes({"v": value}), "a number normalize accepts is written"


def test_nesting_deeper_than_the_c_writer_goes_is_written_by_python_the_same():
    value: dict = {"S": "bottom"}
    for level in range(100):
        value = {"L": [value]} if level % 2 else {"M": {"deeper": value}}
    assert c_bytes({"v": value}) == python_bytes({"v": value})
