"""`cdc-bridge demo`: the classic Phones table on an in-process moto DynamoDB, bridged to stdout."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

from bridge.config import load_config
from bridge.errors import ConfigError

PHONES = [
    ("Motorola", "Cool Phone", 12),
    ("Motorola", "Lame Phone", 9),
    ("Goole", "Awesome Phone", 8),
    ("Google", "Confusing Phone", 18),
]


def create_phones(dynamodb) -> None:
    """Create the Phones table with a NEW_AND_OLD_IMAGES stream, then insert, update and delete items."""
    dynamodb.create_table(
        TableName="Phones",
        KeySchema=[{"AttributeName": "Company", "KeyType": "HASH"}, {"AttributeName": "Model", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "Company", "AttributeType": "S"},
            {"AttributeName": "Model", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    for company, model, size in PHONES:
        dynamodb.put_item(
            TableName="Phones",
            Item={
                "Company": {"S": company},
                "Model": {"S": model},
                "Size": {"N": str(size)},
                "Colors": {"SS": ["Green", "Blue", "Orange"]},
            },
        )
    dynamodb.update_item(
        TableName="Phones",
        Key={"Company": {"S": "Motorola"}, "Model": {"S": "Lame Phone"}},
        UpdateExpression="SET #size = :size",
        ExpressionAttributeNames={"#size": "Size"},
        ExpressionAttributeValues={":size": {"N": "10"}},
    )
    dynamodb.delete_item(TableName="Phones", Key={"Company": {"S": "Goole"}, "Model": {"S": "Awesome Phone"}})


def run_demo(config_path: str) -> None:
    """Run the bridge once over the demo table; checkpoints go to a temporary folder."""
    try:
        from moto import mock_aws
    except ImportError:
        raise ConfigError("the demo needs moto: pip install 'cdc-bridge[demo]'") from None
    from bridge.pipeline import Pipeline
    from bridge.source.clients import aws_clients

    config = load_config(config_path)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "demo")
    # moto intercepts the classic streams.dynamodb.<region> host, not account-based endpoints
    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
    with tempfile.TemporaryDirectory() as folder, mock_aws():
        config = dataclasses.replace(
            config,
            source=dataclasses.replace(config.source, endpoint_url=None),
            checkpoint=dataclasses.replace(config.checkpoint, path=str(Path(folder) / "checkpoints.json")),
        )
        dynamodb, streams = aws_clients(config)
        create_phones(dynamodb)
        Pipeline(config, dynamodb=dynamodb, streams=streams).run(until_caught_up=True)
