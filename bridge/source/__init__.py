"""Reading DynamoDB Streams: table discovery, shard lineage and `GetRecords` scheduling."""

from bridge.source.stream import ShardBatch, StreamSource, TableInfo, describe_table

__all__ = ["ShardBatch", "StreamSource", "TableInfo", "describe_table"]
