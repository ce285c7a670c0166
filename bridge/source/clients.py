"""The boto3 clients the bridge reads DynamoDB with: credentials, region, endpoint, timeouts and the raw
GetRecords parser."""

from __future__ import annotations

import boto3
from botocore.config import Config as BotoConfig

from bridge.config import Config, SourceConfig
from bridge.source import rawbody
from bridge.source.credentials import Clock, Identity, assumed_role_session, base_session, caller_identity

# Seconds. A call that stalls is given up and retried (by botocore, then by the reader): it never holds a stop.
AWS_TIMEOUTS = {"connect_timeout": 5, "read_timeout": 15}


def _options(source: SourceConfig, **config) -> dict:
    retries = {"mode": "standard", "max_attempts": 3}
    return {
        "region_name": source.region,
        "endpoint_url": source.endpoint_url,
        "config": BotoConfig(retries=retries, **AWS_TIMEOUTS, **config),
    }


def aws_session(source: SourceConfig, session: boto3.Session | None = None, clock: Clock | None = None):
    """The session the bridge's calls are signed by, and the extra options of its clients.

    `session` replaces the default chain or `source.profile`; with `source.role_arn` the role is assumed from
    its credentials (see `bridge.source.credentials`), at `clock`'s time when given. With an `endpoint_url` (a
    local stack) and no AWS credentials anywhere, the extra options are dummy credentials.
    """
    session = session or base_session(source)
    if source.role_arn is not None:
        extra = {"clock": clock} if clock is not None else {}
        return assumed_role_session(source, session, _options(source), **extra), {}
    if source.endpoint_url and session.get_credentials() is None:
        return session, {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
    return session, {}


def aws_clients(config: Config, session: boto3.Session | None = None, clock: Clock | None = None):
    """DynamoDB and DynamoDB Streams clients for the configured credentials, region and endpoint."""
    session, credentials = aws_session(config.source, session, clock)
    options = {**_options(config.source, max_pool_connections=32), **credentials}
    streams = session.client("dynamodbstreams", **options)
    rawbody.install(streams)  # GetRecords bodies parsed whole by orjson, not attribute by attribute
    return session.client("dynamodb", **options), streams


def aws_identity(config: Config, session: boto3.Session | None = None) -> Identity:
    """Who the bridge runs as (STS GetCallerIdentity at the configured endpoint or the regional one)."""
    session, credentials = aws_session(config.source, session)
    return caller_identity(session, {**_options(config.source), **credentials})
