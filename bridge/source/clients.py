"""The boto3 clients the bridge reads DynamoDB with: region, endpoint, timeouts and the raw GetRecords parser."""

from __future__ import annotations

import boto3
from botocore.config import Config as BotoConfig

from bridge.config import Config
from bridge.source import rawbody

# Seconds. A call that stalls is given up and retried (by botocore, then by the reader): it never holds a stop.
AWS_TIMEOUTS = {"connect_timeout": 5, "read_timeout": 15}


def aws_clients(config: Config, session: boto3.Session | None = None):
    """DynamoDB and DynamoDB Streams clients for the configured region and endpoint.

    With an `endpoint_url` (a local stack) and no AWS credentials anywhere, dummy credentials are used.
    """
    session = session or boto3.Session()
    source = config.source
    options = {
        "region_name": source.region,
        "endpoint_url": source.endpoint_url,
        "config": BotoConfig(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=32, **AWS_TIMEOUTS),
    }
    if source.endpoint_url and session.get_credentials() is None:
        options.update(aws_access_key_id="local", aws_secret_access_key="local")
    streams = session.client("dynamodbstreams", **options)
    rawbody.install(streams)  # GetRecords bodies parsed whole by orjson, not attribute by attribute
    return session.client("dynamodb", **options), streams
