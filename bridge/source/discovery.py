"""What DynamoDB says about a table and its stream: `DescribeTable` and paged `DescribeStream`."""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError

from bridge.errors import ConfigError, FatalError, RetriableError
from bridge.source.reader import NETWORK_ERRORS, ResourceGone, error_code, is_retriable


@dataclass(frozen=True)
class TableInfo:
    """What the bridge learned about a table from `DescribeTable`; `stream_arn` is the stream being read."""

    name: str
    stream_arn: str
    key_names: tuple[str, ...]
    view_type: str
    region: str


@dataclass(frozen=True)
class StreamListing:
    """Every shard of a stream (all `DescribeStream` pages) and the stream's status (`ENABLED`, `DISABLED`...)."""

    status: str
    shards: list[dict]


class TableDeleted(Exception):
    """`DescribeTable` answered `ResourceNotFoundException`."""


def describe_table(dynamodb, name: str) -> TableInfo:
    """The table's latest stream and key schema; `ConfigError` when it is missing or has no stream."""
    try:
        table = dynamodb.describe_table(TableName=name)["Table"]
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            raise ConfigError(f"table {name!r} does not exist at {dynamodb.meta.endpoint_url}") from None
        raise
    stream_arn = table.get("LatestStreamArn")
    enabled = table.get("StreamSpecification", {}).get("StreamEnabled", bool(stream_arn))
    if not stream_arn or not enabled:
        raise ConfigError(f"table {name!r} has no stream enabled; enable one (NEW_AND_OLD_IMAGES recommended)")
    schema = sorted(table["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
    view_type = table.get("StreamSpecification", {}).get("StreamViewType", "")
    region = stream_arn.split(":")[3] if stream_arn.count(":") >= 4 else dynamodb.meta.region_name
    return TableInfo(name, stream_arn, tuple(k["AttributeName"] for k in schema), view_type, region)


def current_stream_arn(dynamodb, name: str) -> str | None:
    """The ARN of the table's enabled stream, None when its stream is disabled; raises `TableDeleted`."""
    try:
        table = dynamodb.describe_table(TableName=name)["Table"]
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            raise TableDeleted(name) from None
        if is_retriable(error):
            raise RetriableError(f"describing table {name}: {error}") from error
        raise FatalError(f"describing table {name} failed: {error}") from error
    except NETWORK_ERRORS as error:
        raise RetriableError(f"describing table {name}: {error}") from error
    if not table.get("StreamSpecification", {}).get("StreamEnabled", False):
        return None
    return table.get("LatestStreamArn")


def list_shards(streams, stream_arn: str) -> StreamListing:
    """All shards of the stream, paging `DescribeStream` with `ExclusiveStartShardId` until the last page.

    Raises `ResourceGone` when the stream no longer exists, `RetriableError` when throttled or unreachable.
    """
    shards: list[dict] = []
    args = {"StreamArn": stream_arn}
    try:
        while True:
            description = streams.describe_stream(**args)["StreamDescription"]
            shards.extend(description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return StreamListing(description.get("StreamStatus", "ENABLED"), shards)
            args["ExclusiveStartShardId"] = last
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            raise ResourceGone(f"stream {stream_arn}: {error}") from error
        if is_retriable(error):
            raise RetriableError(f"describing stream {stream_arn}: {error}") from error
        raise FatalError(f"describing stream {stream_arn} failed: {error}") from error
    except NETWORK_ERRORS as error:
        raise RetriableError(f"describing stream {stream_arn}: {error}") from error


def table_of_stream(stream_arn: str) -> str:
    """The table name inside a stream ARN (`arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL`)."""
    _, _, rest = stream_arn.partition(":table/")
    return rest.split("/stream/")[0]
