"""The one classifier of failed DynamoDB and DynamoDB Streams calls: what each failure means for the bridge.

- throttling (`LimitExceededException`, ...), 5xx, timeouts and broken connections: `RetriableError`, the
  caller backs off and tries again;
- `ResourceNotFoundException`: `ResourceGone`, the caller re-describes the table (or stops, at start);
- access denied, bad or expired credentials, no credentials at all: `ConfigError` (exit 2), naming the call;
- a 200 answer that is not well-formed: `MalformedAnswer`, retried, fatal after `MALFORMED_LIMIT` in a row;
- anything else (a validation error, an unknown code): `FatalError`, the bridge stops with the checkpoint kept.

STS calls (AssumeRole, GetCallerIdentity) are classified here too: access denied or an expired token there is a
`ConfigError` naming the role (`bridge/source/credentials.py`).

Error codes that mean something more precise for one call (`ExpiredIteratorException`,
`TrimmedDataAccessException` for shard reads) are looked at by that caller before it classifies the rest.
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
)

from bridge.errors import ConfigError, FatalError, RetriableError

THROTTLED = {
    "LimitExceededException",
    "ThrottlingException",
    "Throttling",  # STS
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
}
DENIED = {
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "ExpiredTokenException",
    "ExpiredToken",  # STS
    "InvalidClientTokenId",
}
NETWORK_ERRORS = (ConnectionError, HTTPClientError)  # refused, reset, timed out, closed mid-answer
NO_CREDENTIALS = "no AWS credentials found (environment, ~/.aws or instance role)"
UNREACHABLE = "cannot reach DynamoDB (source.endpoint_url / source.region)"


MALFORMED_LIMIT = 8  # answers in a row that are not well-formed before the caller gives up (FatalError)


class MalformedAnswer(RetriableError):
    """A 200 answer that is not what the call returns (cut off, empty, a field missing or of the wrong type):
    retried like a 5xx; the caller stops with a `FatalError` after `MALFORMED_LIMIT` of them in a row."""


def malformed_streak(streak: int, error: BaseException) -> int:
    """The answers in a row that were not well-formed, counting `error` (any other failure ends the streak);
    `FatalError` once they reach `MALFORMED_LIMIT`."""
    streak = streak + 1 if isinstance(error, MalformedAnswer) else 0
    if streak >= MALFORMED_LIMIT:
        raise FatalError(f"{error} ({streak} answers in a row were not well-formed)") from None
    return streak


class ResourceGone(Exception):
    """DynamoDB answered `ResourceNotFoundException`: the table, the stream or the shard no longer exists."""


def error_code(error: ClientError) -> str:
    """The AWS error code of a botocore `ClientError` (`LimitExceededException`, ...)."""
    return error.response.get("Error", {}).get("Code", "")


def _status(error: ClientError) -> int:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return status if isinstance(status, int) else 0


def classify(error: BaseException, doing: str) -> BaseException:
    """The bridge's error for `error`, raised while `doing` ("reading shard X of S"); unknown errors as they are.

    Use as `raise classify(error, "...") from error` inside an `except (ClientError, BotoCoreError)`.
    """
    if isinstance(error, ClientError):
        code, status = error_code(error), _status(error)
        if code == "ResourceNotFoundException":
            return ResourceGone(f"{doing}: {error}")
        if code in THROTTLED or status >= 500:
            return RetriableError(f"{doing}: {error}")
        if code in DENIED or status in (401, 403):
            message = error.response.get("Error", {}).get("Message", "") or code
            return ConfigError(
                f"{doing}: access denied ({code or status}: {message}); check the credentials the bridge runs with "
                "and that their IAM policy allows this call"
            )
        return FatalError(f"{doing} failed: {error}")
    if isinstance(error, NoCredentialsError):
        return ConfigError(NO_CREDENTIALS)
    if isinstance(error, NETWORK_ERRORS):
        return RetriableError(f"{doing}: {error}")
    if isinstance(error, BotoCoreError):
        return FatalError(f"{doing} failed: {error}")
    return error


def classify_at_start(error: BaseException, doing: str) -> BaseException:
    """As `classify`, for calls made before the first record is read: an endpoint that refuses connections
    is a config error there (wrong `source.endpoint_url` or region), not something to wait for."""
    if isinstance(error, EndpointConnectionError):
        return ConfigError(f"{UNREACHABLE}: {error}")
    return classify(error, doing)
