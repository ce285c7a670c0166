"""DynamoDB attribute-value JSON straight to Avro bytes of the generic envelope's items (numbers: exact).

The default Kafka path reads stream records, normalizes every attribute into a plain Python value and then
writes those values as Avro. For the generic envelope with exact numbers the plain values are not needed:
`Transcoder` walks the raw image once and appends the same bytes `bridge.codec.writer` (and so fastavro)
writes for the normalized image: S -> string, N -> long when integral and within int64 else
VariableScaleDecimal, B -> bytes (base64 text or bytes), BOOL, NULL, M -> map, L -> array, SS/NS/BS -> the
set records with their members sorted exactly as `bridge.normalize.DynamoSet` sorts them
(tests/unit/test_transcode.py checks this byte for byte for arbitrary records).

It validates as it goes; on any problem it hands the image to `bridge.normalize`, which raises the
`PoisonRecordError` (attribute path and reason) a malformed value has always raised.

The walk itself runs in C (`bridge/codec/csrc/`) when the install compiled it: the C writer handles
the common shapes and calls this module's Python writer for every other attribute value, so the rules of
what is accepted live here (tests/unit/test_speedups.py checks both write the same bytes). Without a C
compiler the Python writer does the whole walk.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from bridge.codec.writer import _LENGTH, _SMALL_LONG, _TABLE_SIZE, _branches, _long, _string, _vsd, zigzag
from bridge.normalize import LazyChangeEvent, RawImage, _binary, _image, normalize_number

try:
    from bridge.codec._speedups import encode_image, encode_image_json
except ImportError:  # installed without a C compiler: the Python writer writes the same bytes
    encode_image = encode_image_json = None

# the union branches `encode_image` takes, in the order of its tag bytes
C_BRANCHES = ("null", "boolean", "long", "string", "bytes", "VariableScaleDecimal", "map", "array")
C_BRANCHES += ("StringSet", "NumberSet", "BinarySet")


class _Malformed(Exception):
    """Something the fast path does not accept; `bridge.normalize` then says what exactly."""


def _exact(text: Any) -> int | Decimal:
    """`normalize_number`, with short plain integers read without its regular expression."""
    if type(text) is str and text.isascii() and len(text) < 19 and (text[1:] if text[:1] == "-" else text).isdigit():
        return int(text)
    return normalize_number(text)


class Transcoder:
    """Writes raw item images as generic AttributeValue maps; build one per parsed envelope schema.

    `sides(event)` gives the encoded `before` and `after` union values of a `LazyChangeEvent` built from raw
    images (cached on the event), or None when the event carries plain images only.
    """

    def __init__(self, schema: dict) -> None:
        self.item, value = image_writer(schema)
        self.tags = branch_tags(schema)

        def one_value(av: Any) -> bytes:
            out = bytearray()
            value(out, av)
            return bytes(out)

        self.one_value = one_value  # what the C writer calls for a value it leaves to Python

    def sides(self, event: Any) -> tuple[bytes, bytes] | None:
        """The encoded `before` and `after` of `event` (`\\x00`, or `\\x02` and the map), or None (no raw images).

        Raises `PoisonRecordError` as `bridge.normalize` does when an image is malformed.
        """
        if type(event) is not LazyChangeEvent or event.raw_images is None:
            return None
        encoded = event.encoded
        if encoded is None:
            old, new = event.raw_images
            encoded = (self._side(old, "OldImage"), self._side(new, "NewImage"))
            object.__setattr__(event, "encoded", encoded)
        return encoded

    def _side(self, image: Any, name: str) -> bytes:
        if image is None:
            return b"\x00"
        try:
            if type(image) is RawImage:  # still JSON text (bridge/source/rawbody.py)
                encoded = encode_image_json(image, self.tags)
                if encoded is not None:
                    return encoded
                image = image.parsed()
            if type(image) is not dict:
                raise _Malformed
            if encode_image is not None:
                return encode_image(image, self.tags, self.one_value)
            out = bytearray(b"\x02")
            self.item(out, image)
            return bytes(out)
        except Exception:  # whatever it was, normalize names it (or accepts the image)
            _image({name: image}, name)  # raises PoisonRecordError with the attribute path
            raise  # not reached for images normalize refuses; an image it accepts is a bug here: surface it


def branch_tags(schema: dict) -> bytes:
    """The one-byte union tags of `C_BRANCHES` in the AttributeValue union of `schema`."""
    index = _branches(schema)
    return b"".join(zigzag(index[name]) for name in C_BRANCHES)


def image_writer(schema: dict) -> tuple[Callable[[bytearray, dict], None], Callable[[bytearray, Any], None]]:
    """Functions that append a raw image (`{"attr": {"S": "x"}, ...}`) as an AttributeValue map, and one
    attribute value (`{"S": "x"}`) as an AttributeValue, to a buffer.

    They raise on anything `bridge.normalize` would refuse (not always `PoisonRecordError`: `Transcoder` asks
    normalize for the precise error).
    """
    tag = {name: zigzag(i) for name, i in _branches(schema).items()}
    null, long_, vsd, map_, bytes_ = tag["null"], tag["long"], tag["VariableScaleDecimal"], tag["map"], tag["bytes"]
    string, array = tag["string"], tag["array"]
    booleans = {True: tag["boolean"] + b"\x01", False: tag["boolean"] + b"\x00"}
    set_tags = {"SS": tag["StringSet"], "NS": tag["NumberSet"], "BS": tag["BinarySet"]}
    length, table_size = _LENGTH, _TABLE_SIZE
    string_head = [string + n for n in _LENGTH]
    array_head = [array + n for n in _LENGTH]
    small_long = [long_ + n for n in _SMALL_LONG]
    names: dict[str, bytes] = {}  # attribute name -> its encoded form; names repeat a lot

    def number(out: bytearray, text: Any) -> None:
        """An exact number: long when integral within int64, else VariableScaleDecimal (as normalize decides)."""
        if type(text) is str and text.isascii():
            body = text[1:] if text[:1] == "-" else text
            if len(body) < 19 and body.isdigit():
                n = int(text)
                if -table_size <= n < table_size:
                    out += small_long[n + table_size]
                else:
                    out += long_
                    out += _long(n)
                return
            whole, dot, fraction = body.partition(".")
            # plain decimal notation of DynamoDB's 38 digits at most: no Decimal needed (and no int() of a
            # digit string longer than Python converts)
            if dot and len(whole) + len(fraction) <= 38 and (whole + fraction).isdigit():
                if fraction.strip("0"):
                    unscaled = int(text[: len(text) - len(body)] + whole + fraction)
                    size = ((unscaled if unscaled >= 0 else ~unscaled).bit_length() + 8) // 8  # twos_complement
                    data = unscaled.to_bytes(size, "big", signed=True)
                    out += vsd
                    out += _long(len(fraction))
                    out += length[len(data)] if len(data) < table_size else zigzag(len(data))
                    out += data
                    return
                if len(whole) < 19:
                    n = int(text[: len(text) - len(body)] + (whole or "0"))
                    out += long_
                    out += _long(n)
                    return
        exact_number(out, normalize_number(text))

    def exact_number(out: bytearray, exact: int | Decimal) -> None:
        """A normalized number: the long branch when it is an int, else VariableScaleDecimal."""
        if type(exact) is int:
            out += long_
            out += _long(exact)
        else:
            out += vsd
            out += _vsd(exact)

    def value(out: bytearray, av: Any) -> None:
        if type(av) is not dict:
            raise _Malformed
        (kind,) = av  # ValueError unless exactly one type tag
        inner = av[kind]
        if kind == "S":
            if type(inner) is not str:
                raise _Malformed
            data = inner.encode()
            n = len(data)
            out += string_head[n] if n < table_size else string + zigzag(n)
            out += data
        elif kind == "N":
            number(out, inner)
        elif kind == "M":
            if type(inner) is not dict:
                raise _Malformed
            out += map_
            item(out, inner)
        elif kind == "L":
            if type(inner) is not list:
                raise _Malformed
            n = len(inner)
            if n:
                out += array_head[n] if n < table_size else array + zigzag(n)
                for element in inner:
                    value(out, element)
                out += b"\x00"
            else:
                out += array_head[0]
        elif kind == "BOOL":
            if type(inner) is not bool:
                raise _Malformed
            out += booleans[inner]
        elif kind == "NULL":
            if inner is not True:
                raise _Malformed
            out += null
        elif kind == "B":
            data = _binary(inner)
            out += bytes_
            out += length[len(data)] if len(data) < table_size else zigzag(len(data))
            out += data
        elif kind in set_tags:
            members(out, kind, inner)
        else:
            raise _Malformed

    def members(out: bytearray, kind: str, values: Any) -> None:
        """An SS / NS / BS set record: members sorted as `DynamoSet` sorts them."""
        if type(values) is not list:
            raise _Malformed
        out += set_tags[kind]
        if values:
            n = len(values)
            out += length[n] if n < table_size else zigzag(n)
            if kind == "NS":
                for exact in sorted([_exact(v) for v in values]):
                    exact_number(out, exact)
            else:
                if kind == "SS":
                    if any(type(v) is not str for v in values):
                        raise _Malformed
                    encoded = [v.encode() for v in sorted(values)]
                else:
                    encoded = sorted([_binary(v) for v in values])
                for data in encoded:
                    out += length[len(data)] if len(data) < table_size else zigzag(len(data))
                    out += data
        out += b"\x00"

    def item(out: bytearray, image: dict) -> None:
        if image:
            n = len(image)
            out += length[n] if n < table_size else zigzag(n)
            for name, av in image.items():
                key = names.get(name)
                if key is None:
                    if type(name) is not str:
                        raise _Malformed
                    key = _string(name)
                    if len(names) < 10_000:
                        names[name] = key
                out += key
                inner = av.get("S") if type(av) is dict and len(av) == 1 else None
                if type(inner) is str:  # the most common value, inline: a call less
                    data = inner.encode()
                    n = len(data)
                    out += string_head[n] if n < table_size else string + zigzag(n)
                    out += data
                else:
                    value(out, av)
        out += b"\x00"

    return item, value
