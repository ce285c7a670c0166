"""DynamoDB attribute-value JSON -> plain Python values, and stream records -> `ChangeEvent`.

Mapping (see README "Data mapping"): S -> str, N -> int (integral, within int64) or exact `Decimal`,
B -> bytes, BOOL -> bool, NULL -> None, M -> dict, L -> list, SS/NS/BS -> `DynamoSet` (a sorted list).
Binary is accepted as bytes (boto3) or base64 text (raw stream JSON, Lambda events).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from bridge.errors import PoisonRecordError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_NUMBER = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_OPS = {"INSERT": "c", "MODIFY": "u", "REMOVE": "d"}


class DynamoSet(list):
    """A DynamoDB set (SS, NS, BS) as a sorted list; `kind` is the tag it came from.

    It is a `list` so that plain consumers see a list; encoders use `kind` to keep it a set.
    """

    __slots__ = ("kind",)

    def __init__(self, kind: str, values: list) -> None:
        super().__init__(sorted(values))
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Position:
    """Where a record sits in its stream: the unit of checkpointing."""

    stream_arn: str
    shard_id: str
    sequence_number: str


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change of one item, as plain values; `keys` lists the partition key first, then the sort key."""

    op: str
    table: str
    keys: dict[str, Any]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    position: Position
    event_id: str
    approximate_creation_ms: int
    ttl_expired: bool
    view_type: str
    region: str
    record: Any = dataclasses.field(default=None, compare=False, repr=False)  # the stream record, for dead letters
    current_item: bool = False  # `after` is the item as read from the table (snapshot, enrichment), not the change's

    @property
    def partition_key(self) -> Any:
        """The value of the table's partition key (the Kafka key by default)."""
        return next(iter(self.keys.values()))


_PENDING = object()  # a lazy image not normalized yet
_EVENT_FIELDS = tuple(field.name for field in dataclasses.fields(ChangeEvent) if field.compare)


class LazyChangeEvent(ChangeEvent):
    """A `ChangeEvent` whose `before` / `after` are normalized from the raw images on first access (then cached).

    `raw_images` keeps the stream record's `(OldImage, NewImage)` so that an encoder can read the attribute-value
    JSON directly (`bridge.codec.transcode`) and no plain values are built; it is None when the images were given
    as plain values (e.g. by `dataclasses.replace`). `encoded` is a cache slot for such an encoder.
    Accessing `before` / `after` raises `PoisonRecordError` for a malformed image, exactly as `to_change_event`.
    """

    __slots__ = ("_after", "_before", "encoded", "raw_images")

    def __init__(
        self,
        op: str,
        table: str,
        keys: dict[str, Any],
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        position: Position,
        event_id: str,
        approximate_creation_ms: int,
        ttl_expired: bool,
        view_type: str,
        region: str,
        record: Any = None,
        current_item: bool = False,
        raw_images: tuple[Any, Any] | None = None,
    ) -> None:
        set_ = object.__setattr__  # frozen: the dataclass's own __setattr__ refuses
        set_(self, "op", op)
        set_(self, "table", table)
        set_(self, "keys", keys)
        set_(self, "position", position)
        set_(self, "event_id", event_id)
        set_(self, "approximate_creation_ms", approximate_creation_ms)
        set_(self, "ttl_expired", ttl_expired)
        set_(self, "view_type", view_type)
        set_(self, "region", region)
        set_(self, "record", record)
        set_(self, "current_item", current_item)
        set_(self, "raw_images", raw_images)
        set_(self, "encoded", None)
        set_(self, "_before", before)
        set_(self, "_after", after)

    def _fields(self) -> tuple:
        return tuple(getattr(self, name) for name in _EVENT_FIELDS)

    def __eq__(self, other: object) -> bool:
        """Equal to any `ChangeEvent` (lazy or not) with equal fields."""
        if not isinstance(other, ChangeEvent):
            return NotImplemented
        return self._fields() == tuple(getattr(other, name) for name in _EVENT_FIELDS)

    def __hash__(self) -> int:
        return hash(self._fields())

    @property
    def before(self) -> dict[str, Any] | None:  # type: ignore[override]
        """The old image as plain values (normalized on first access)."""
        value = self._before
        if value is _PENDING:
            value = _image({"OldImage": self.raw_images[0]}, "OldImage")
            object.__setattr__(self, "_before", value)
        return value

    @property
    def after(self) -> dict[str, Any] | None:  # type: ignore[override]
        """The new image as plain values (normalized on first access)."""
        value = self._after
        if value is _PENDING:
            value = _image({"NewImage": self.raw_images[1]}, "NewImage")
            object.__setattr__(self, "_after", value)
        return value


def normalize_number(text: str) -> int | Decimal:
    """A DynamoDB number string as `int` (integral, within int64) or an exact `Decimal`."""
    if type(text) is not str or not _NUMBER.fullmatch(text):
        raise PoisonRecordError(f"not a DynamoDB number: {text!r}")
    if len(text) < 19 and text.lstrip("-").isdigit():
        return int(text)
    number = Decimal(text)
    if number == number.to_integral_value() and INT64_MIN <= number <= INT64_MAX:
        return int(number)
    return number


def _binary(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise PoisonRecordError(f"binary value is not valid base64: {value[:40]!r}") from None
    raise PoisonRecordError(f"binary value must be bytes or base64 text, got {type(value).__name__}")


def _expect(value: Any, kind: type, tag: str) -> Any:
    if not isinstance(value, kind):
        raise PoisonRecordError(f"{tag} value must be {kind.__name__}, got {type(value).__name__}")
    return value


def _child_path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"[{key}]" + (parent if parent.startswith("[") or not parent else "." + parent)
    return key if not parent else (f"{key}{parent}" if parent.startswith("[") else f"{key}.{parent}")


def normalize_value(av: Any) -> Any:
    """One attribute value (`{"S": "x"}`, `{"M": {...}}`, ...) as a plain Python value."""
    if type(av) is not dict or len(av) != 1:
        raise PoisonRecordError(f"attribute value must be an object with exactly one type tag, got {av!r:.80}")
    ((tag, value),) = av.items()
    if tag == "S":
        return _expect(value, str, tag)
    if tag == "N":
        return normalize_number(value)
    if tag == "M":
        return normalize_item(_expect(value, dict, tag))
    if tag == "L":
        items = []
        for index, element in enumerate(_expect(value, list, tag)):
            try:
                items.append(normalize_value(element))
            except PoisonRecordError as error:
                raise PoisonRecordError(error.reason, _child_path(error.path, index)) from None
        return items
    if tag == "BOOL":
        return _expect(value, bool, tag)
    if tag == "NULL":
        if value is not True:
            raise PoisonRecordError(f"NULL value must be true, got {value!r}")
        return None
    if tag == "B":
        return _binary(value)
    if tag in _SET_MEMBERS:
        return DynamoSet(tag, _members(tag, _expect(value, list, tag)))
    raise PoisonRecordError(f"unknown DynamoDB type tag {tag!r}")


def _string(value: Any) -> str:
    return _expect(value, str, "SS")


_SET_MEMBERS = {"SS": _string, "NS": normalize_number, "BS": _binary}


def _members(tag: str, values: list) -> list:
    convert = _SET_MEMBERS[tag]
    members = []
    for index, value in enumerate(values):
        try:
            members.append(convert(value))
        except PoisonRecordError as error:
            raise PoisonRecordError(error.reason, f"[{index}]") from None
    return members


def normalize_item(image: dict) -> dict[str, Any]:
    """An item image (`{"attr": {"S": "x"}, ...}`) as a dict of plain values."""
    if type(image) is not dict:
        raise PoisonRecordError(f"an item must be an object of attribute values, got {type(image).__name__}")
    item = {}
    for name, av in image.items():
        try:
            item[name] = normalize_value(av)
        except PoisonRecordError as error:
            raise PoisonRecordError(error.reason, _child_path(error.path, name)) from None
    return item


def creation_ms(value: Any) -> int:
    """ApproximateCreationDateTime as epoch milliseconds: boto3 gives a datetime, raw JSON epoch seconds."""
    if isinstance(value, dt.datetime):
        return round(value.timestamp() * 1000)
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return round(float(value) * 1000)
    raise PoisonRecordError(f"ApproximateCreationDateTime must be a time or epoch seconds, got {value!r}")


def _is_ttl_delete(record: dict) -> bool:
    """A REMOVE by Time to Live: GetRecords spells the identity `Type`/`PrincipalId`, Lambda `type`/`principalId`."""
    identity = record.get("userIdentity") or {}
    if type(identity) is not dict:
        raise PoisonRecordError(f"userIdentity must be an object, got {type(identity).__name__}", "userIdentity")
    kind = identity.get("Type", identity.get("type"))
    principal = identity.get("PrincipalId", identity.get("principalId"))
    return kind == "Service" and principal == "dynamodb.amazonaws.com"


class RawImage(bytes):
    """An item image still as its JSON text, as the fast read path (bridge/source/rawbody.py) leaves it:
    the transcoder writes it to Avro without building Python objects; `parsed()` gives the attribute-value
    JSON as dicts for everything else (normalizing, dead letters)."""

    __slots__ = ()

    def parsed(self) -> Any:
        """The image as orjson parses it; `PoisonRecordError` when the text is not JSON."""
        try:
            return orjson.loads(memoryview(self))  # orjson takes bytes, not subclasses of it
        except orjson.JSONDecodeError as error:
            raise PoisonRecordError(f"image is not valid JSON: {error}") from None


class ScannedItem(RawImage):
    """A scanned item still as its JSON text (bridge/source/scanbody.py), with `key`: its key attributes as
    attribute-value JSON (`{"pk": {"S": "a"}}`; an item lacking one lacks it there too). Only the key names
    may be read from `key`: it can hold other attributes (those whose names the text spells with escapes).

    It is a `RawImage` to whatever reads it as one (dead letters write it as its parsed JSON), but not one
    to the transcoder, which takes exact `RawImage`s only: `to_snapshot_event` hands that a copy."""

    def __new__(cls, text: bytes, key: dict) -> ScannedItem:
        item = super().__new__(cls, text)
        item.key = key
        return item

    def __reduce__(self) -> tuple:
        return ScannedItem, (bytes(self), self.key)


def _image(data: dict, name: str) -> dict | None:
    image = data.get(name)
    if image is None:
        return None
    try:
        if type(image) is RawImage:
            image = image.parsed()
        return normalize_item(_expect(image, dict, name))
    except PoisonRecordError as error:
        raise PoisonRecordError(error.reason, _child_path(error.path, name)) from None


def sequence_number_of(record: Any) -> str | None:
    """The record's `dynamodb.SequenceNumber` when it is one (a string of decimal digits), else None."""
    data = record.get("dynamodb") if type(record) is dict else None
    sequence = data.get("SequenceNumber") if type(data) is dict else None
    if type(sequence) is str and sequence.isascii() and sequence.isdigit():
        return sequence
    return None


def last_sequence_number(records: Sequence) -> str | None:
    """The sequence number of the last of `records` that has one (a malformed record has none), else None."""
    return next(filter(None, map(sequence_number_of, reversed(records))), None)


def to_change_event(
    record: dict,
    *,
    table: str,
    stream_arn: str,
    shard_id: str,
    key_names: tuple[str, ...] = (),
    region: str = "",
    lazy: bool = False,
) -> ChangeEvent:
    """One stream record (as `GetRecords` or a Lambda event gives it) as a `ChangeEvent`.

    `key_names` (partition key, then sort key) orders `keys`; `region` defaults to the record's `awsRegion`.
    With `lazy`, the result is a `LazyChangeEvent`: keys and metadata are checked now, the images when first
    read (or transcoded), so a malformed image raises `PoisonRecordError` then.
    """
    if type(record) is not dict:
        raise PoisonRecordError(f"stream record must be a JSON object, got {type(record).__name__}")
    name = record.get("eventName")
    if type(name) is not str or name not in _OPS:
        raise PoisonRecordError(f"unknown eventName {name!r} (expected INSERT, MODIFY or REMOVE)", "eventName")
    data = record.get("dynamodb")
    if type(data) is not dict:
        raise PoisonRecordError("stream record has no `dynamodb` object", "dynamodb")
    sequence_number = sequence_number_of(record)
    if sequence_number is None:
        raise PoisonRecordError(
            f"SequenceNumber must be a string of digits, got {data.get('SequenceNumber')!r}", "dynamodb.SequenceNumber"
        )
    raw_keys = data.get("Keys")
    if type(raw_keys) is not dict:
        raise PoisonRecordError("stream record has no `Keys` object", "dynamodb.Keys")
    event_id = record.get("eventID", "")
    if type(event_id) is not str:
        raise PoisonRecordError(f"eventID must be a string, got {event_id!r}", "eventID")
    op = _OPS[name]
    keys = _image({"Keys": raw_keys}, "Keys") or {}
    if key_names and set(key_names) <= keys.keys():
        keys = {name: keys[name] for name in key_names}
    if not keys:
        raise PoisonRecordError("stream record has no key attributes", "Keys")
    created = data.get("ApproximateCreationDateTime")
    if lazy:
        old_image, new_image = data.get("OldImage"), data.get("NewImage")
        return LazyChangeEvent(
            op,
            table,
            keys,
            None if old_image is None else _PENDING,
            None if new_image is None else _PENDING,
            Position(stream_arn, shard_id, sequence_number),
            event_id,
            creation_ms(created) if created is not None else 0,
            op == "d" and _is_ttl_delete(record),
            data.get("StreamViewType", ""),
            region or record.get("awsRegion", ""),
            record,
            raw_images=(old_image, new_image),
        )
    return ChangeEvent(
        op=op,
        table=table,
        keys=keys,
        before=_image(data, "OldImage"),
        after=_image(data, "NewImage"),
        position=Position(stream_arn, shard_id, sequence_number),
        event_id=event_id,
        approximate_creation_ms=creation_ms(created) if created is not None else 0,
        ttl_expired=op == "d" and _is_ttl_delete(record),
        view_type=data.get("StreamViewType", ""),
        region=region or record.get("awsRegion", ""),
        record=record,
    )


def to_snapshot_event(
    item: Any,
    *,
    table: str,
    key_names: tuple[str, ...],
    region: str,
    position: Position,
    event_id: str,
    read_ms: int,
    view_type: str,
) -> LazyChangeEvent:
    """One item of a table `Scan` (attribute-value JSON as the answer gives it, parsed or a `ScannedItem`) as
    an `op: r` change event.

    `after` is the item (normalized when first read, like a stream image), `before` is None; `position` names
    the scan segment, `read_ms` is when the page holding the item was read. `record` is the item as given.
    """
    if type(item) is ScannedItem:
        attributes, image = item.key, RawImage(item)
    elif type(item) is dict:
        attributes = image = item
    else:
        raise PoisonRecordError(f"a scanned item must be an object of attribute values, got {type(item).__name__}")
    missing = [name for name in key_names if name not in attributes]
    if missing or not key_names:
        raise PoisonRecordError(f"scanned item has no key attribute {', '.join(missing) or '?'}", "Keys")
    keys = _image({"Keys": {name: attributes[name] for name in key_names}}, "Keys")
    return LazyChangeEvent(
        "r",
        table,
        keys,
        None,
        _PENDING,
        position,
        event_id,
        read_ms,
        False,
        view_type,
        region,
        item,
        current_item=True,
        raw_images=(None, image),
    )
