"""`enrich: current_item`: the current state of items whose stream record carries no new image.

Streams of view type `KEYS_ONLY` or `OLD_IMAGE` give inserts and modifies without `after`. `CurrentItems`
reads those items with strongly consistent `BatchGetItem` calls and gives each such event the item as it is
*now* - which may already hold later changes than this one (their own records follow in the stream) - marked
`current_item` so a consumer can tell it from an image the stream recorded. An item deleted since keeps
`after` None (still marked): its REMOVE follows in the stream.

Reads: one per distinct key of a batch, 100 keys per request (DynamoDB's limit), matched back to the events
by their key attributes. `UnprocessedKeys` (normal under throttling, or past 16 MB per answer) are asked
again with exponential backoff and full jitter, and so are throttling, 5xx and network failures (logged,
indefinitely) and answers that are not well-formed (`MalformedAnswer`; `FatalError` after `MALFORMED_LIMIT`
in a row). Access denied is the `ConfigError` of `classify`; a table that no longer exists is a `FatalError`.
No event that needs the item is given back without it, or without DynamoDB saying the item is gone.

`install(client)` makes the `dynamodb` client parse `BatchGetItem` bodies with orjson (as
`bridge/source/rawbody.py` does for `GetRecords`): items stay wire JSON - B as base64 text, N as text -
which is what stream images look like, so the transcoder writes them straight to Avro.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bridge.backoff import full_jitter
from bridge.errors import FatalError, PoisonRecordError, RejectedEvent, RetriableError
from bridge.normalize import _PENDING, ChangeEvent, LazyChangeEvent, normalize_value
from bridge.source.aws_errors import MalformedAnswer, ResourceGone, classify, malformed_streak
from bridge.source.rawbody import parsed_whole

log = logging.getLogger(__name__)

EVENT = "before-parse.dynamodb.BatchGetItem"
BATCH_LIMIT = 100  # keys per BatchGetItem request: DynamoDB refuses more
BACKOFF_BASE, BACKOFF_CAP = 0.1, 10.0  # seconds
_ENRICHED_OPS = ("c", "u")
_KEY_TAGS = ("S", "N", "B")

Identity = tuple  # an item's key values in key order, as `normalize_value` gives them (B as bytes)


def keep_raw_items(response_dict: dict, customized_response_dict: dict, **_: Any) -> None:
    """botocore `before-parse` handler: parse a 200 `BatchGetItem` body with orjson, skip botocore's parser.

    Other statuses, and a body that is not a JSON object, are left to botocore unchanged.
    """
    if response_dict.get("status_code") != 200:
        return
    parsed = parsed_whole(response_dict.get("body"))  # up to 16 MB of items
    if type(parsed) is not dict:
        return
    for name in ("Responses", "UnprocessedKeys"):  # checked by `CurrentItems`; a missing one stays missing
        if name in parsed:
            customized_response_dict[name] = parsed[name]
    response_dict["body"] = b"{}"


def install(client) -> None:
    """Make `client` (a boto3 `dynamodb` client) read `BatchGetItem` bodies with `keep_raw_items`."""
    client.meta.events.register(EVENT, keep_raw_items, unique_id="cdc-bridge-raw-batch-get-item")


class _BadKey(Exception):
    """The stream record's `Keys` do not hold the table's key attributes as S, N or B values."""


class CurrentItems:
    """The current state of items of one table, read with consistent BatchGetItem.

    `dynamodb` is a boto3 `dynamodb` client (`install` is applied to it here); `key_names` are the table's
    partition key, then sort key. `sleep(seconds)` waits between attempts; it may raise (a stopping bridge)
    to abandon a read, and the exception goes to the caller of `enrich`.
    """

    def __init__(
        self, dynamodb, table: str, key_names: tuple[str, ...], *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        if not key_names:
            raise ValueError("a table has at least a partition key")
        install(dynamodb)
        self.dynamodb = dynamodb
        self.table = table
        self.key_names = key_names
        self._sleep = sleep
        self._doing = f"reading current items of table {table} (BatchGetItem)"

    def enrich(self, events: list[ChangeEvent]) -> list[ChangeEvent]:
        """`events` in the same order, each insert or modify without a new image given the item as read now.

        Such an event (op `c` / `u`, `after` None, with its stream record) becomes a new `LazyChangeEvent`
        with `raw_images=(the record's OldImage, the item as wire JSON)` and `current_item=True`; when the
        item no longer exists, `after` stays None (still `current_item=True`): its REMOVE follows in the
        stream. Every other event is returned as it is (the same object).

        Returns only once every item is read or known to be gone. Raises `RejectedEvent` (before reading
        anything) for an event whose record's `Keys` lack a key attribute or hold one that is not S, N or
        B: the caller routes it by `on_poison` and enriches the others again. Raises `ConfigError` (access
        denied), `FatalError` (table gone, `MALFORMED_LIMIT` malformed answers in a row, a refused request),
        or whatever `sleep` raises.
        """
        wanted: dict[Identity, dict] = {}  # distinct key -> its request key
        todo: list[tuple[int, Identity, Any]] = []  # (index in events, key, the record's OldImage)
        names = self.key_names
        for index, event in enumerate(events):
            if event.op not in _ENRICHED_OPS or event.record is None or _has_new_image(event):
                continue
            try:
                data = _stream_data(event)
                identity = tuple([event.keys[name] for name in names])
                if identity not in wanted:  # TypeError for a key value that is a map or list
                    wanted[identity] = _request_key(event.keys, data, names)
            except (KeyError, TypeError, _BadKey):
                raise RejectedEvent(
                    event,
                    f"cannot read the current item: the stream record's Keys do not hold the key attributes "
                    f"{', '.join(names)} of table {self.table} as S, N or B values",
                    "dynamodb.Keys",
                ) from None
            todo.append((index, identity, data.get("OldImage")))
        if not todo:
            return events
        items = self._read(wanted)
        enriched = list(events)
        for index, identity, old in todo:
            enriched[index] = _with_item(events[index], old, items.get(identity))
        return enriched

    def _read(self, wanted: dict[Identity, dict]) -> dict[Identity, dict]:
        """The items of `wanted` that exist, by key; returns once DynamoDB answered for every key."""
        items: dict[Identity, dict] = {}
        pending = dict(wanted)  # insertion order: keys left unprocessed are asked first next time
        attempt = 0  # answers in a row that failed or left keys unprocessed
        malformed = 0
        while pending:
            chunk = dict(itertools.islice(pending.items(), BATCH_LIMIT))
            try:
                answered, unprocessed = self._batch(chunk)
            except RetriableError as error:  # MalformedAnswer included
                malformed = malformed_streak(malformed, error)
                attempt += 1
                delay = full_jitter(attempt, BACKOFF_BASE, BACKOFF_CAP)
                log.warning(
                    "table %s: BatchGetItem attempt %d failed: %s; retrying in %.2f s",
                    self.table,
                    attempt,
                    error,
                    delay,
                )
                self._sleep(delay)
                continue
            malformed = 0
            items.update(answered)
            for identity in chunk:
                if identity not in unprocessed:
                    del pending[identity]
            if not unprocessed:
                attempt = 0
                continue
            attempt += 1
            delay = full_jitter(attempt, BACKOFF_BASE, BACKOFF_CAP)
            log.debug(
                "table %s: %d keys unprocessed by BatchGetItem; asking again in %.2f s",
                self.table,
                len(unprocessed),
                delay,
            )
            self._sleep(delay)
        return items

    def _batch(self, chunk: dict[Identity, dict]) -> tuple[dict[Identity, dict], set[Identity]]:
        """One BatchGetItem of the keys of `chunk`: the items found, and the keys left unprocessed."""
        request = {self.table: {"Keys": list(chunk.values()), "ConsistentRead": True}}
        try:
            answer = self.dynamodb.batch_get_item(RequestItems=request)
        except (ClientError, BotoCoreError) as error:
            problem = classify(error, self._doing)
            if isinstance(problem, ResourceGone):
                raise FatalError(
                    f"table {self.table} no longer exists ({self._doing}: ResourceNotFoundException); its current "
                    "items cannot be read"
                ) from error
            raise problem from error
        return self._check(answer, chunk)

    def _check(self, answer: Any, chunk: dict[Identity, dict]) -> tuple[dict[Identity, dict], set[Identity]]:
        """The found items and unprocessed keys of a BatchGetItem answer, each one of `chunk`'s keys, or
        `MalformedAnswer`. `Responses` lists the table whenever it answers for some key: a table missing
        from it is no answer ("no item found" would say every item is gone), unless every key is unprocessed."""
        responses = answer.get("Responses") if type(answer) is dict else None
        unprocessed = answer.get("UnprocessedKeys") if type(answer) is dict else None
        if type(responses) is not dict:
            raise self._malformed("no `Responses` object")
        if type(unprocessed) is not dict:
            raise self._malformed("no `UnprocessedKeys` object")
        left = unprocessed.get(self.table)
        skipped: set[Identity] = set()
        if left is not None:
            keys = left.get("Keys") if type(left) is dict else None
            if type(keys) is not list:
                raise self._malformed(f"`UnprocessedKeys.{self.table}` has no `Keys` list")
            skipped = {self._asked(key, chunk, "an unprocessed key") for key in keys}
        found = responses.get(self.table)
        if found is None and skipped != chunk.keys():
            raise self._malformed(f"no `Responses.{self.table}` for the keys it did not leave unprocessed")
        if type(found) is not list and found is not None:
            raise self._malformed(f"`Responses.{self.table}` is a {type(found).__name__}, not a list")
        answered = {self._asked(item, chunk, "an item"): item for item in found or ()}
        if not skipped.isdisjoint(answered):
            raise self._malformed("a key is both answered and unprocessed")
        return answered, skipped

    def _asked(self, item: Any, chunk: dict[Identity, dict], what: str) -> Identity:
        """The key of `item` (an item or a key, attribute-value JSON), which must be one of `chunk`'s."""
        if type(item) is not dict:
            raise self._malformed(f"{what} is a {type(item).__name__}, not an object")
        try:
            identity = tuple([normalize_value(item[name]) for name in self.key_names])
            if identity in chunk:  # TypeError when a key value is a map or list
                return identity
        except (KeyError, TypeError, PoisonRecordError):
            raise self._malformed(f"{what} has no valid key attributes {', '.join(self.key_names)}") from None
        raise self._malformed(f"{what} with a key that was not asked for")

    def _malformed(self, problem: str) -> MalformedAnswer:
        return MalformedAnswer(f"{self._doing}: the BatchGetItem answer is not well-formed ({problem})")


def _has_new_image(event: ChangeEvent) -> bool:
    """Whether the event carries a new image, asked without normalizing a lazy one."""
    if type(event) is LazyChangeEvent and event.raw_images is not None:
        return event.raw_images[1] is not None
    return event.after is not None


def _stream_data(event: ChangeEvent) -> dict:
    """The `dynamodb` object of the event's stream record (with a `Keys` object), else `_BadKey`."""
    data = event.record.get("dynamodb") if type(event.record) is dict else None
    if type(data) is not dict or type(data.get("Keys")) is not dict:
        raise _BadKey
    return data


def _request_key(keys: dict[str, Any], data: dict, names: tuple[str, ...]) -> dict:
    """The key as BatchGetItem takes it: the record's attribute values, B as bytes (botocore's serializer
    base64-encodes it; the record has base64 text, or bytes from boto3's own parser). `keys` are the
    event's normalized keys."""
    raw = data["Keys"]
    key = {}
    for name in names:
        value = raw.get(name)
        if type(value) is not dict or len(value) != 1:
            raise _BadKey
        ((tag, inner),) = value.items()
        if tag not in _KEY_TAGS:
            raise _BadKey
        key[name] = {"B": keys[name]} if tag == "B" else {tag: inner}  # keys[name]: the decoded bytes
    return key


def _with_item(event: ChangeEvent, old: Any, item: dict | None) -> LazyChangeEvent:
    """`event` with `before` its record's `old` image and `after` the current item (None: deleted since),
    marked `current_item`."""
    return LazyChangeEvent(
        event.op,
        event.table,
        event.keys,
        None if old is None else _PENDING,
        None if item is None else _PENDING,
        event.position,
        event.event_id,
        event.approximate_creation_ms,
        event.ttl_expired,
        event.view_type,
        event.region,
        event.record,
        current_item=True,
        raw_images=(old, item),
    )
