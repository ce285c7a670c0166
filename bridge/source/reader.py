"""Reads one shard with `GetShardIterator` / `GetRecords`, one call at a time.

What each DynamoDB Streams error means here:
- `ExpiredIteratorException`: the iterator is renewed `AFTER_SEQUENCE_NUMBER` of the last record read.
- `TrimmedDataAccessException`: records between the checkpoint and the trim horizon are lost; `FatalError`
  naming the shard, the checkpoint and the window, unless `on_trimmed` is `resume_from_trim_horizon`.
- throttling (`LimitExceededException`, ...), 5xx and connection failures: `RetriableError`; the caller backs off.
- `ResourceNotFoundException`: `ResourceGone`; the caller re-describes the table and the stream.
"""

from __future__ import annotations

import logging

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from bridge.errors import FatalError, RetriableError

log = logging.getLogger(__name__)
THROTTLED = {
    "LimitExceededException",
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
}
NETWORK_ERRORS = (ConnectionError, HTTPClientError)


class ResourceGone(Exception):
    """DynamoDB answered `ResourceNotFoundException`: the stream (or the shard) no longer exists."""


def error_code(error: ClientError) -> str:
    """The AWS error code of a botocore `ClientError` (`LimitExceededException`, ...)."""
    return error.response.get("Error", {}).get("Code", "")


def is_retriable(error: ClientError) -> bool:
    """Throttling and server-side (5xx) errors: worth retrying after a pause."""
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return error_code(error) in THROTTLED or status >= 500


class ShardReader:
    """The read state of one shard: where to resume and the current iterator.

    `start` is `TRIM_HORIZON`, `LATEST` or `AFTER_SEQUENCE_NUMBER` (with `sequence_number`, the checkpoint).
    `caught_up` is true when the last `GetRecords` returned no records.
    """

    def __init__(
        self,
        client,
        stream_arn: str,
        shard_id: str,
        start: str = "TRIM_HORIZON",
        sequence_number: str | None = None,
        on_trimmed: str = "fail",
    ) -> None:
        self.client = client
        self.stream_arn = stream_arn
        self.shard_id = shard_id
        self.start = start
        self.last_sequence = sequence_number if start == "AFTER_SEQUENCE_NUMBER" else None
        self.on_trimmed = on_trimmed
        self.iterator: str | None = None
        self.caught_up = False

    def _new_iterator(self) -> str:
        args = {"StreamArn": self.stream_arn, "ShardId": self.shard_id}
        if self.last_sequence is not None:
            args.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=self.last_sequence)
        else:
            args["ShardIteratorType"] = self.start if self.start != "AFTER_SEQUENCE_NUMBER" else "TRIM_HORIZON"
        return self.client.get_shard_iterator(**args)["ShardIterator"]

    def fetch(self, limit: int = 1000) -> tuple[list[dict], bool]:
        """One `GetRecords` call: the records read (as `GetRecords` gives them) and whether the shard ended.

        After an expired iterator it only renews the iterator and returns `([], False)` without changing
        `caught_up`, so that the caller's limit of calls per second also covers the retry.
        Raises `RetriableError` (back off), `ResourceGone` (re-describe) or `FatalError`.
        """
        try:
            if self.iterator is None:
                self.iterator = self._new_iterator()
            response = self.client.get_records(ShardIterator=self.iterator, Limit=limit)
        except ClientError as error:
            self.iterator = None
            code = error_code(error)
            if code == "ExpiredIteratorException":
                log.info("iterator of shard %s expired; renewing after %s", self.shard_id, self.last_sequence)
                return self._renew()
            if code == "TrimmedDataAccessException":
                return self._trimmed(error)
            if code == "ResourceNotFoundException":
                raise ResourceGone(f"shard {self.shard_id} of {self.stream_arn}: {error}") from error
            if is_retriable(error):
                raise RetriableError(f"shard {self.shard_id}: {error}") from error
            raise FatalError(f"reading shard {self.shard_id} of {self.stream_arn} failed: {error}") from error
        except NETWORK_ERRORS as error:
            self.iterator = None
            raise RetriableError(f"shard {self.shard_id}: {error}") from error
        records = response.get("Records", [])
        if records:
            self.last_sequence = records[-1]["dynamodb"]["SequenceNumber"]
        self.iterator = response.get("NextShardIterator")
        self.caught_up = not records
        return records, self.iterator is None

    def _renew(self) -> tuple[list[dict], bool]:
        try:
            self.iterator = self._new_iterator()
        except ClientError as error:
            if error_code(error) == "TrimmedDataAccessException":
                return self._trimmed(error)
            if error_code(error) == "ResourceNotFoundException":
                raise ResourceGone(f"shard {self.shard_id} of {self.stream_arn}: {error}") from error
            if is_retriable(error):
                raise RetriableError(f"shard {self.shard_id}: {error}") from error
            raise FatalError(f"renewing the iterator of shard {self.shard_id} failed: {error}") from error
        return [], False

    def _trimmed(self, error: ClientError) -> tuple[list[dict], bool]:
        self.iterator = None
        if self.last_sequence:
            window = f"after sequence number {self.last_sequence} (the checkpoint) up to the trim horizon"
        else:
            window = f"from the shard's start ({self.start}) up to the trim horizon"
        if self.on_trimmed != "resume_from_trim_horizon":
            raise FatalError(
                f"shard {self.shard_id} of {self.stream_arn}: records {window} were trimmed (older than the "
                "stream's 24 h retention) and are lost to the bridge. Set `on_trimmed: resume_from_trim_horizon` "
                "on the table to accept the gap and continue."
            ) from error
        log.error(
            "DATA GAP: shard %s of %s: records %s were trimmed; resuming at TRIM_HORIZON",
            self.shard_id,
            self.stream_arn,
            window,
        )
        self.last_sequence = None
        self.start = "TRIM_HORIZON"
        return [], False
