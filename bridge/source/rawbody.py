"""A faster `GetRecords` read path: parse the raw JSON body with orjson instead of botocore's parser.

botocore turns each response into Python values attribute by attribute, following the service model (it
base64-decodes binaries and turns timestamps into datetimes on the way); for a 1 MB page of stream records
that is the largest CPU cost of the bridge. `install(client)` registers a `before-parse` handler on a
`dynamodbstreams` client that, for a successful `GetRecords` response only, parses the body in one call
and hands botocore an empty body, so botocore's parser has nothing left to do. Records then look exactly
like the wire (and like a Lambda event): B/BS as base64 text and `ApproximateCreationDateTime` as epoch
seconds, both of which `bridge.normalize` accepts.

Everything else stays boto3's: signing, endpoints, retries and error responses (any status other than
200, or a body that is not JSON, is left to botocore unchanged).

When the C module is built (bridge/codec/csrc/), the parse goes further: `split_images` cuts every
record's `NewImage` and `OldImage` out of the page first (each checked to be whole, valid JSON; a page
with a broken one, or of an unexpected shape, is parsed whole), orjson parses what is left (event metadata
and keys), and each image stays JSON text (`bridge.normalize.RawImage`). Images are most of a page - some
90 % of its objects - and the transcoder writes them from their text straight to Avro; anything that needs
them as values parses them then.

The cyclic garbage collector is paused while a page is parsed: a 1 MB page creates some 100,000 dicts and
lists that cannot form cycles, and collections triggered by them (which scan every live object, including
the pages still queued) cost more than the parse itself (35-60 ms against 13 ms per page, measured).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import orjson

from bridge.normalize import RawImage

try:
    from bridge.codec._speedups import split_images
except ImportError:  # installed without a C compiler: pages are parsed whole
    split_images = None

EVENT = "before-parse.dynamodb-streams.GetRecords"


def parsed_whole(body: Any, parse: Callable[[Any], Any] = orjson.loads) -> Any:
    """`parse(body)` with the cyclic garbage collector paused (see above; the same holds for Scan and
    BatchGetItem answers); None when the body is not JSON."""
    collecting = gc.isenabled()
    gc.disable()  # ~10^5 new containers that cannot form cycles: collecting during the parse is waste
    try:
        return parse(body)
    except (orjson.JSONDecodeError, TypeError):
        return None
    finally:
        if collecting:
            gc.enable()


def keep_raw_records(response_dict: dict, customized_response_dict: dict, **_: Any) -> None:
    """botocore `before-parse` handler: parse a 200 `GetRecords` body with orjson, skip botocore's parser.

    What the answer lacks stays missing (no `Records` is the reader's malformed answer, never an empty page)."""
    if response_dict.get("status_code") != 200:
        return
    parsed = parsed_whole(response_dict.get("body"), _parse)
    if type(parsed) is not dict:
        return
    for name in ("Records", "NextShardIterator"):
        if parsed.get(name) is not None:
            customized_response_dict[name] = parsed[name]
    response_dict["body"] = b"{}"


def _parse(body: Any) -> Any:
    """The page as orjson parses it, with each record's images left as `RawImage` text when they can be."""
    split = split_images(body) if split_images is not None and type(body) is bytes else None
    if split is None:
        return orjson.loads(body)
    kept, images = split
    parsed = orjson.loads(kept)
    for record in parsed.get("Records") or ():  # each image the split cut out is now its index
        data = record.get("dynamodb") if type(record) is dict else None
        if type(data) is dict:
            for side in ("NewImage", "OldImage"):
                if side in data:
                    data[side] = RawImage(images[data[side]])
    return parsed


def install(client) -> None:
    """Make `client` (a boto3 `dynamodbstreams` client) read `GetRecords` bodies with `keep_raw_records`."""
    client.meta.events.register(EVENT, keep_raw_records, unique_id="cdc-bridge-raw-get-records")
