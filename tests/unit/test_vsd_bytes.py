"""VariableScaleDecimal `value` holds the unscaled number as Java's `BigInteger.toByteArray()` writes it.

Debezium and Java consumers write (and so expect) the shortest big-endian two's complement: -128 is `80`,
not `ff 80`. Every writer is checked at the edges of each byte length, -2^(8k-1), -2^(8k-1)-1, 2^(8k-1)-1
and 2^(8k-1) for k = 1..17, against the reference below: the fastavro datum (`decimal_to_vsd`), the Python
writer of normalized items (`value_writer`), the Python writer of raw images (`Transcoder`) and the C
module's two entry points (attribute-value objects and JSON text).
"""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from bridge.codec import EnvelopeCodec
from bridge.codec.avro import decimal_to_vsd
from bridge.codec.transcode import Transcoder, encode_image, encode_image_json
from bridge.codec.writer import value_writer, zigzag
from bridge.normalize import INT64_MAX, INT64_MIN, RawImage

SCHEMA = EnvelopeCodec().schema
TRANSCODER = Transcoder(SCHEMA)
VSD_TAG = b"\x0a"  # zigzag(5): "VariableScaleDecimal" is branch 5 of the AttributeValue union


def java_to_byte_array(n: int) -> bytes:
    """`BigInteger.valueOf(n).toByteArray()`: the fewest bytes whose two's complement is n, big-endian."""
    size = 1
    while not -(2 ** (8 * size - 1)) <= n < 2 ** (8 * size - 1):
        size += 1
    rest = n % 2 ** (8 * size)  # the two's complement pattern of n in `size` bytes, as an unsigned number
    out = []
    for _ in range(size):
        rest, low = divmod(rest, 256)
        out.append(low)
    return bytes(reversed(out))


def test_the_reference_is_java_s_byte_array():
    assert java_to_byte_array(0) == b"\x00"
    assert java_to_byte_array(-1) == b"\xff"
    assert java_to_byte_array(127) == b"\x7f"
    assert java_to_byte_array(128) == b"\x00\x80"
    assert java_to_byte_array(-128) == b"\x80"
    assert java_to_byte_array(-129) == b"\xff\x7f"
    assert java_to_byte_array(-32768) == b"\x80\x00"
    assert java_to_byte_array(2**63) == b"\x00\x80" + bytes(7)


EDGE = [2 ** (8 * k - 1) for k in range(1, 18)]  # the smallest magnitude that needs k bytes when negative
EDGES = [n for edge in EDGE for n in (-edge, -edge - 1, edge - 1, edge)]
# (unscaled, scale): every edge with two decimal places, and as an integer where it is past int64 (within, it is a long)
CASES = [(n, 2) for n in EDGES] + [(n, 0) for n in EDGES if not INT64_MIN <= n <= INT64_MAX]


def _number(unscaled: int, scale: int) -> int | Decimal:
    return unscaled if scale == 0 else Decimal(f"{unscaled}e-{scale}")  # exact, whatever the context precision


def _text(unscaled: int, scale: int) -> str:
    text = str(_number(unscaled, scale))
    assert "E" not in text, text  # plain notation, as DynamoDB sends it
    return text


def _vsd_value(unscaled: int, scale: int) -> bytes:
    """One AttributeValue: the VariableScaleDecimal branch, `scale`, then `value` with its length."""
    value = java_to_byte_array(unscaled)
    return VSD_TAG + zigzag(scale) + zigzag(len(value)) + value


def _item(value: bytes) -> bytes:
    """The item map {"n": value}: one entry, the name, the value, the end of the map."""
    return b"\x02" + b"\x02n" + value + b"\x00"


def _ids(case: tuple[int, int]) -> str:
    return f"{case[0]}e-{case[1]}"


def test_the_vsd_union_tag_is_the_one_the_writers_use():
    assert TRANSCODER.one_value({"N": "0.5"})[:1] == VSD_TAG


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_decimal_to_vsd_writes_java_s_bytes(case):
    unscaled, scale = case
    assert decimal_to_vsd(_number(unscaled, scale)) == {"scale": scale, "value": java_to_byte_array(unscaled)}


def test_decimal_to_vsd_writes_zero_as_one_zero_byte():
    assert decimal_to_vsd(Decimal("0.00")) == {"scale": 2, "value": b"\x00"}
    assert decimal_to_vsd(0) == {"scale": 0, "value": b"\x00"}


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_python_item_writer_writes_java_s_bytes(case):
    out = bytearray()
    value_writer(SCHEMA)(out, {"n": _number(*case)})
    assert bytes(out) == _item(_vsd_value(*case))


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_python_raw_image_writer_writes_java_s_bytes(case):
    assert TRANSCODER.one_value({"N": _text(*case)}) == _vsd_value(*case)


@pytest.mark.skipif(encode_image is None, reason="the C module was not built")
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_c_writer_writes_java_s_bytes(case):
    image = {"n": {"N": _text(*case)}}
    expected = b"\x02" + _item(_vsd_value(*case))  # `\x02`: the map branch of `before`/`after`
    assert encode_image(image, TRANSCODER.tags, TRANSCODER.one_value) == expected
    assert encode_image_json(RawImage(orjson.dumps(image)), TRANSCODER.tags) in (expected, None)


@pytest.mark.skipif(encode_image is None, reason="the C module was not built")
@pytest.mark.parametrize("case", [c for c in CASES if len(str(abs(c[0]))) <= 38], ids=_ids)
def test_c_json_writer_writes_java_s_bytes_for_numbers_it_writes_itself(case):
    image = {"n": {"N": _text(*case)}}
    assert encode_image_json(RawImage(orjson.dumps(image)), TRANSCODER.tags) == b"\x02" + _item(_vsd_value(*case))
