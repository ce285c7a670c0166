"""Reads one shard with `GetShardIterator` / `GetRecords`, one call at a time.

What each DynamoDB Streams error means here:
- `ExpiredIteratorException`: the iterator is renewed `AFTER_SEQUENCE_NUMBER` of the last record read.
- `TrimmedDataAccessException`: records between the checkpoint and the trim horizon are lost; `FatalError`
  naming the shard, the checkpoint and the window, unless `on_trimmed` accepts the gap
  (`resume_from_trim_horizon`) or repairs it (`resnapshot`: `trimmed` is set for the caller).
- throttling (`LimitExceededException`, ...), 5xx and connection failures: `RetriableError`; the caller backs off.
- `ResourceNotFoundException`: `ResourceGone`; the caller re-describes the table and the stream.
- a 200 answer that is not a GetRecords result (cut off, empty, `Records` not a list): `MalformedAnswer` with
  the same iterator, and after `MALFORMED_LIMIT` such answers in a row `FatalError` naming the shard. Such an
  answer never ends the shard: only a well-formed answer without `NextShardIterator` can, and the caller
  still checks that `DescribeStream` lists the shard as closed.
"""

from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError

from bridge.errors import FatalError
from bridge.normalize import last_sequence_number
from bridge.source.aws_errors import MalformedAnswer, classify, error_code, malformed_streak

log = logging.getLogger(__name__)


class ShardReader:
    """The read state of one shard: where to resume and the current iterator.

    `start` is `TRIM_HORIZON`, `LATEST` or `AFTER_SEQUENCE_NUMBER` (with `sequence_number`, the checkpoint).
    `caught_up` is true when the last `GetRecords` returned no records, `reached_tip` once any did.
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
        self.previous: str | None = None  # the iterator the last answer was asked with
        self.caught_up = False
        self.reached_tip = False  # some answer since the start had no records: read to its end at that time
        self.malformed = 0
        self.trimmed = False  # records were trimmed away unread since the caller last looked (and reset it)

    def _new_iterator(self) -> str:
        args = {"StreamArn": self.stream_arn, "ShardId": self.shard_id}
        if self.last_sequence is not None:
            args.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=self.last_sequence)
        else:
            args["ShardIteratorType"] = self.start if self.start != "AFTER_SEQUENCE_NUMBER" else "TRIM_HORIZON"
        response = self.client.get_shard_iterator(**args)
        iterator = response.get("ShardIterator") if type(response) is dict else None
        if type(iterator) is not str or not iterator:
            raise self._malformed("GetShardIterator", "no `ShardIterator` string")
        return iterator

    def fetch(self, limit: int = 1000) -> tuple[list[dict], bool]:
        """One `GetRecords` call: the records read (as `GetRecords` gives them) and whether the shard ended.

        After an expired iterator it only renews the iterator and returns `([], False)` without changing
        `caught_up`, so that the caller's limit of calls per second also covers the retry.
        Raises `RetriableError` (back off), `ResourceGone` (re-describe) or `FatalError`.
        """
        used = self.iterator
        try:
            if self.iterator is None:
                self.iterator = used = self._new_iterator()
            response = self.client.get_records(ShardIterator=self.iterator, Limit=limit)
        except ClientError as error:
            self.iterator = None
            code = error_code(error)
            if code == "ExpiredIteratorException":
                log.info("iterator of shard %s expired; renewing after %s", self.shard_id, self.last_sequence)
                return self._renew()
            if code == "TrimmedDataAccessException":
                return self._trimmed(error)
            raise classify(error, f"reading shard {self.shard_id} of {self.stream_arn}") from error
        except BotoCoreError as error:
            self.iterator = None
            raise classify(error, f"reading shard {self.shard_id} of {self.stream_arn}") from error
        records, next_iterator = self._check(response)
        self.malformed = 0
        self.last_sequence = last_sequence_number(records) or self.last_sequence
        self.iterator = next_iterator
        self.previous = used
        self.caught_up = not records
        self.reached_tip = self.reached_tip or not records
        return records, next_iterator is None

    def _check(self, response) -> tuple[list, str | None]:
        """The records and next iterator of a GetRecords answer, or the error of `_malformed`."""
        records = response.get("Records") if type(response) is dict else None
        next_iterator = response.get("NextShardIterator") if type(response) is dict else None
        if type(records) is list and (next_iterator is None or type(next_iterator) is str):
            return records, next_iterator
        if type(records) is not list:
            problem = "no `Records` list" if records is None else f"`Records` is a {type(records).__name__}"
        else:
            problem = f"`NextShardIterator` is a {type(next_iterator).__name__}"
        raise self._malformed("GetRecords", problem)

    def _malformed(self, call: str, problem: str) -> MalformedAnswer:
        """A 200 answer that is not what `call` returns: `MalformedAnswer` (the iterator is kept); raises
        `FatalError` once `MALFORMED_LIMIT` answers in a row were like that."""
        error = MalformedAnswer(
            f"shard {self.shard_id} of {self.stream_arn}: the {call} answer is not well-formed ({problem})"
        )
        self.malformed = malformed_streak(self.malformed, error)
        return error

    def end_unconfirmed(self) -> None:
        """The last answer had no `NextShardIterator`, but the shard is not listed as closed: read on from where
        that answer ended (renewed after its last record, or with the iterator it was asked with)."""
        self.iterator = None if not self.caught_up else self.previous

    def _renew(self) -> tuple[list[dict], bool]:
        try:
            self.iterator = self._new_iterator()
        except ClientError as error:
            if error_code(error) == "TrimmedDataAccessException":
                return self._trimmed(error)
            raise classify(error, f"renewing the iterator of shard {self.shard_id} of {self.stream_arn}") from error
        except BotoCoreError as error:
            raise classify(error, f"renewing the iterator of shard {self.shard_id} of {self.stream_arn}") from error
        return [], False

    def _trimmed(self, error: ClientError) -> tuple[list[dict], bool]:
        self.iterator = None
        if self.last_sequence:
            window = f"after sequence number {self.last_sequence} (the checkpoint) up to the trim horizon"
        else:
            window = f"from the shard's start ({self.start}) up to the trim horizon"
        if self.on_trimmed == "fail":
            raise FatalError(
                f"shard {self.shard_id} of {self.stream_arn}: records {window} were trimmed (older than the "
                "stream's 24 h retention) and are lost to the bridge. Set `on_trimmed: resnapshot` on the table to "
                "repair the gap with a new snapshot, or `resume_from_trim_horizon` to accept it, and continue."
            ) from error
        log.error(
            "DATA GAP: shard %s of %s: records %s were trimmed; resuming at TRIM_HORIZON%s",
            self.shard_id,
            self.stream_arn,
            window,
            " and taking a new snapshot of the table" if self.on_trimmed == "resnapshot" else "",
        )
        self.trimmed = True
        self.last_sequence = None
        self.start = "TRIM_HORIZON"
        return [], False
