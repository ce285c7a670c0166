"""What DynamoDB says about a table and its stream: `DescribeTable` and paged `DescribeStream`."""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from bridge.errors import ConfigError
from bridge.source.aws_errors import MalformedAnswer, ResourceGone, classify, classify_at_start

MAX_PAGES = 10_000  # DescribeStream pages of one listing (100 shards each): far beyond any real stream


@dataclass(frozen=True)
class TableInfo:
    """What the bridge learned about a table from `DescribeTable`; `stream_arn` is the stream being read."""

    name: str
    stream_arn: str
    key_names: tuple[str, ...]
    view_type: str
    region: str
    item_count: int | None = None  # DynamoDB's estimate (updated about every six hours), for progress only
    key_types: tuple[str, ...] = ()  # S, N or B of each key attribute (AttributeDefinitions); "" when not given


@dataclass(frozen=True)
class StreamListing:
    """Every shard of a stream (all `DescribeStream` pages) and the stream's status (`ENABLED`, `DISABLED`...).

    Each shard is checked: a `ShardId` string, an optional `ParentShardId` string and `SequenceNumberRange`.
    """

    status: str
    shards: list[dict]


class TableDeleted(Exception):
    """`DescribeTable` answered `ResourceNotFoundException`."""


def table_description(dynamodb, name: str, classify_error) -> dict:
    """The `Table` object of `DescribeTable`; failures as `classify_error` (`classify` or `classify_at_start`)
    makes them, `ResourceGone` for a table that does not exist, `MalformedAnswer` for an answer without it."""
    try:
        answer = dynamodb.describe_table(TableName=name)
    except (ClientError, BotoCoreError) as error:
        raise classify_error(error, f"describing table {name}") from error
    table = answer.get("Table") if type(answer) is dict else None
    if type(table) is not dict:
        raise MalformedAnswer(f"describing table {name}: the DescribeTable answer has no `Table` object")
    return table


def describe_table(dynamodb, name: str) -> TableInfo:
    """The table's latest stream and key schema, asked before the first record is read.

    `ConfigError` when the table is missing, has no stream, or access is denied; `RetriableError` when
    DynamoDB is throttling, failing (5xx) or answers something that is not a table description.
    """
    try:
        table = table_description(dynamodb, name, classify_at_start)
    except ResourceGone:
        raise ConfigError(f"table {name!r} does not exist at {dynamodb.meta.endpoint_url}") from None
    stream_arn = table.get("LatestStreamArn")
    specification = table.get("StreamSpecification") or {}
    enabled = specification.get("StreamEnabled", bool(stream_arn)) if type(specification) is dict else False
    if not stream_arn or not enabled:
        raise ConfigError(f"table {name!r} has no stream enabled; enable one (NEW_AND_OLD_IMAGES recommended)")
    key_schema = table.get("KeySchema")
    try:
        schema = sorted(key_schema, key=lambda k: k["KeyType"] != "HASH")
        key_names = tuple(k["AttributeName"] for k in schema)
    except (TypeError, KeyError):
        key_names = ()
    if type(stream_arn) is not str or not key_names or not all(type(k) is str for k in key_names):
        raise MalformedAnswer(
            f"describing table {name}: the DescribeTable answer has no usable `LatestStreamArn` and `KeySchema`"
        )
    view_type = specification.get("StreamViewType", "")
    region = stream_arn.split(":")[3] if stream_arn.count(":") >= 4 else dynamodb.meta.region_name
    count = table.get("ItemCount")
    item_count = count if type(count) is int and count >= 0 else None
    types = {}
    for definition in table.get("AttributeDefinitions") or ():
        if type(definition) is dict and definition.get("AttributeType") in ("S", "N", "B"):
            types[definition.get("AttributeName")] = definition["AttributeType"]
    key_types = tuple(types.get(key, "") for key in key_names)
    view = view_type if type(view_type) is str else ""
    return TableInfo(name, stream_arn, key_names, view, region, item_count, key_types)


def current_stream_arn(dynamodb, name: str) -> str | None:
    """The ARN of the table's enabled stream, None when its stream is disabled; raises `TableDeleted`."""
    try:
        table = table_description(dynamodb, name, classify)
    except ResourceGone:
        raise TableDeleted(name) from None
    return enabled_stream_arn(table, name)


def enabled_stream_arn(table: dict, name: str) -> str | None:
    """The ARN of the enabled stream in table `name`'s `DescribeTable` object, None when it has none enabled;
    `MalformedAnswer` for an enabled stream without a `LatestStreamArn`."""
    specification = table.get("StreamSpecification") or {}
    if type(specification) is not dict or not specification.get("StreamEnabled", False):
        return None
    arn = table.get("LatestStreamArn")
    if type(arn) is not str or not arn:
        raise MalformedAnswer(f"describing table {name}: an enabled stream but no `LatestStreamArn` string")
    return arn


def list_shards(streams, stream_arn: str) -> StreamListing:
    """All shards of the stream, paging `DescribeStream` with `ExclusiveStartShardId` until the last page.

    Raises `ResourceGone` when the stream no longer exists, `RetriableError` when throttled or unreachable,
    `MalformedAnswer` for a page that is not a stream description or paging that goes back or never ends.
    """
    shards: list[dict] = []
    seen: set[str] = set()
    args = {"StreamArn": stream_arn}
    for _ in range(MAX_PAGES):
        try:
            answer = streams.describe_stream(**args)
        except (ClientError, BotoCoreError) as error:
            raise classify(error, f"describing stream {stream_arn}") from error
        description = answer.get("StreamDescription") if type(answer) is dict else None
        page = description.get("Shards", []) if type(description) is dict else None
        if type(page) is not list or not all(_is_shard(shard) for shard in page):
            raise MalformedAnswer(f"describing stream {stream_arn}: the answer has no well-formed `Shards` list")
        shards.extend(page)
        last = description.get("LastEvaluatedShardId")
        if not last:
            status = description.get("StreamStatus", "ENABLED")
            return StreamListing(status if type(status) is str else "ENABLED", shards)
        if type(last) is not str or last in seen:
            raise MalformedAnswer(
                f"describing stream {stream_arn}: DescribeStream paging repeats (LastEvaluatedShardId {last!r} "
                "was answered before)"
            )
        seen.add(last)
        args["ExclusiveStartShardId"] = last
    raise MalformedAnswer(f"describing stream {stream_arn}: DescribeStream paging did not end after {MAX_PAGES} pages")


def _is_shard(shard) -> bool:
    if type(shard) is not dict or type(shard.get("ShardId")) is not str or not shard["ShardId"]:
        return False
    numbers = shard.get("SequenceNumberRange", {})
    parent = shard.get("ParentShardId")
    return (parent is None or type(parent) is str) and type(numbers) is dict


def table_of_stream(stream_arn: str) -> str:
    """The table name inside a stream ARN (`arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL`)."""
    _, _, rest = stream_arn.partition(":table/")
    return rest.split("/stream/")[0]
