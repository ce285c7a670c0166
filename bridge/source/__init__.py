"""Reading DynamoDB Streams: table discovery, shard lineage and `GetRecords` scheduling."""

from bridge.source.discovery import TableInfo, describe_table
from bridge.source.stream import ShardBatch, StreamSource

__all__ = ["ShardBatch", "StreamSource", "TableInfo", "describe_table"]
