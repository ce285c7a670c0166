"""Creating DynamoDB tables with streams on the moto server, as the tests and benchmarks need them."""

from __future__ import annotations


def create_stream_table(dynamodb, name: str, key: str = "pk", view_type: str = "NEW_AND_OLD_IMAGES") -> None:
    """A PAY_PER_REQUEST table with a string hash key `key` and a stream of `view_type`."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": view_type},
    )
