"""A faster `Scan` read path, and the keys it hands back: parse the raw JSON body with orjson.

As `bridge.source.rawbody` does for GetRecords: `install(client)` registers a `before-parse` handler on a
`dynamodb` client that parses a 200 Scan body in one call and hands botocore an empty body, so botocore does
not parse items attribute by attribute. Items then are attribute-value JSON as the wire gives them (B/BS as
base64 text, N as strings). Other answers (any status but 200) are left to botocore and its error parsing.

When the C module is built (bridge/codec/csrc/) and the thread calling Scan says which key attributes the
table has (`keyed_items`), items stay JSON text, as `bridge.source.rawbody` leaves stream images:
`split_items` cuts each item out of the page (each checked to be whole, valid JSON; a page with a broken one,
or of an unexpected shape, is parsed whole), orjson parses what is left and each item's key attributes, and
`Items` holds `bridge.normalize.ScannedItem`s. The transcoder writes them from their text straight to Avro;
anything that needs their values parses them then. Without the module or the key names, items are dicts.

The cyclic garbage collector is paused during the parse (`rawbody.parsed_whole`): a page is thousands of new
containers that cannot form cycles, and collections triggered by them scan every live object.
"""

from __future__ import annotations

import base64
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import orjson

from bridge.normalize import ScannedItem
from bridge.source.rawbody import parsed_whole

try:
    from bridge.codec._speedups import split_items
except ImportError:  # installed without a C compiler: pages are parsed whole
    split_items = None

EVENT = "before-parse.dynamodb.Scan"
BODY_BYTES = "BodyBytes"  # added to a raw-parsed answer: the size of its body, for capacity estimates
FIELDS = ("Items", "LastEvaluatedKey", "ConsumedCapacity", "Count")
_calling = threading.local()  # `key_names`: those of the table whose Scan this thread calls (`keyed_items`)


@contextlib.contextmanager
def keyed_items(key_names: tuple[str, ...]) -> Iterator[None]:
    """Within it, the Scan answers this thread receives hand on their items as `ScannedItem`s with the
    attributes `key_names` as their key (when the C module is built; else, and for `()`, as dicts)."""
    outer = getattr(_calling, "key_names", ())
    _calling.key_names = key_names
    try:
        yield
    finally:
        _calling.key_names = outer


def keep_raw_items(response_dict: dict, customized_response_dict: dict, **_: Any) -> None:
    """botocore `before-parse` handler: a 200 Scan body parsed by orjson; botocore's parser gets `{}`.

    A 200 body that is not a JSON object gives an answer without `Items` (which the reader calls malformed):
    botocore never parses a 200 Scan body itself."""
    if response_dict.get("status_code") != 200:
        return
    body = response_dict.get("body")
    key_names = getattr(_calling, "key_names", ())
    parsed = parsed_whole(body, lambda page: _parse(page, key_names))
    response_dict["body"] = b"{}"
    customized_response_dict[BODY_BYTES] = len(body) if isinstance(body, bytes | bytearray | str) else 0
    if type(parsed) is dict:
        for field in FIELDS:
            if field in parsed:
                customized_response_dict[field] = parsed[field]


def _parse(body: Any, key_names: tuple[str, ...]) -> Any:
    """The page as orjson parses it, with its items as `ScannedItem`s when they can be (see above)."""
    split = split_items(body, key_names) if split_items is not None and key_names and type(body) is bytes else None
    if split is None:
        return orjson.loads(body)
    kept, texts, keys = split
    parsed = orjson.loads(kept)  # an object: split_items found one
    if "Items" in parsed:  # each item the split cut out is now its index
        keys = orjson.loads(b"[" + b",".join(keys) + b"]")  # one call for the page's keys
        parsed["Items"] = [ScannedItem(texts[index], keys[index]) for index in parsed["Items"]]
    return parsed


def install(client) -> None:
    """Make `client` (a boto3 `dynamodb` client) read Scan bodies with `keep_raw_items`. Idempotent."""
    client.meta.events.register(EVENT, keep_raw_items, unique_id="cdc-bridge-raw-scan")


def request_key(key: object) -> dict:
    """`key` (wire JSON, as a Scan answer gives it) as botocore's serializer takes it: B decoded to bytes,
    since the serializer base64-encodes them itself. ValueError unless it is a map of S, N or B values (the
    only types a key attribute can have)."""
    if type(key) is not dict or not key:
        raise ValueError("not a non-empty map")
    request = {}
    for name, value in key.items():
        if type(name) is not str or type(value) is not dict or len(value) != 1:
            raise ValueError(f"attribute {name!r} is not one typed value")
        ((tag, text),) = value.items()
        if tag not in ("S", "N", "B") or type(text) is not str:
            raise ValueError(f"attribute {name!r} is not an S, N or B value")
        request[name] = {"B": base64.b64decode(text, validate=True)} if tag == "B" else {tag: text}
    return request
