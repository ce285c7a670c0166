"""Poison records: what happens to a stream record that cannot be normalized, encoded or sent.

Each table picks `on_poison`, applied by its route (bridge/route.py): `fail` (default: stop the bridge, the
checkpoint stays before the record), `dlq` (write the raw stream record, the reason and its position to a
dead-letter destination, then go on) or `skip` (count it, log it at ERROR with its position, go on).
Nothing is dropped silently: a dead letter is flushed before the checkpoint passes its record, exactly like
an event in a sink. This module holds the letters and their destinations.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import logging
import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from kafka.errors import KafkaError, KafkaTimeoutError

from bridge.errors import ConfigError, FatalError, PoisonRecordError, RetriableError
from bridge.normalize import RawImage

log = logging.getLogger(__name__)
RECORD_OVERHEAD = 2048  # bytes kept free for the Kafka record's key, headers and batch framing


@dataclass(frozen=True)
class DeadLetter:
    """One poison record as stored in a dead-letter destination."""

    table: str
    reason: str
    stage: str  # "normalize", or the sink that refused it ("kafka")
    stream_arn: str
    shard_id: str
    sequence_number: str
    record: Any  # the stream record as read (a malformed one may be any JSON value), or the scanned item
    record_truncated: bool = False
    snapshot_keys: dict | None = None  # for a scanned item (snapshot row): its key attributes, wire JSON

    def truncated(self) -> DeadLetter:
        """The same letter with only the record's identity (event id, name, keys, sequence number; a scanned
        item's key attributes), for a destination with a size limit; the full record stays readable from the
        stream for 24 h, a scanned item from the table."""
        if self.snapshot_keys is not None:
            return dataclasses.replace(self, record=self.snapshot_keys, record_truncated=True)
        record = self.record if type(self.record) is dict else {}
        data = record.get("dynamodb") if type(record.get("dynamodb")) is dict else {}
        slim = {
            "eventID": record.get("eventID"),
            "eventName": record.get("eventName"),
            "dynamodb": {"Keys": data.get("Keys"), "SequenceNumber": data.get("SequenceNumber")},
        }
        return dataclasses.replace(self, record=slim, record_truncated=True)

    def to_json(self) -> bytes:
        """One JSON object; bytes in the raw record as base64, times as ISO 8601, numbers as text."""
        return json.dumps(
            {
                "table": self.table,
                "reason": self.reason,
                "stage": self.stage,
                "position": {
                    "stream_arn": self.stream_arn,
                    "shard_id": self.shard_id,
                    "sequence_number": self.sequence_number,
                },
                "record": self.record,
                "record_truncated": self.record_truncated,
            },
            default=_plain_json,
            sort_keys=True,
        ).encode()


def _plain_json(value: Any) -> Any:
    if isinstance(value, RawImage):  # an image the read path left as JSON text
        try:
            return value.parsed()
        except PoisonRecordError:
            return value.decode(errors="replace")
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return repr(value)


class FileDeadLetters:
    """Dead letters appended to a JSON-lines file; `flush` fsyncs it."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.file = None

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "ab")  # noqa: SIM115 - kept open for the run, closed in close()
        except OSError as error:
            raise ConfigError(f"dead-letter file {self.path} cannot be opened: {error}") from None

    def write(self, letter: DeadLetter) -> None:
        try:
            self.file.write(letter.to_json() + b"\n")
        except OSError as error:
            raise FatalError(f"cannot write dead-letter file {self.path}: {error}") from error

    def flush(self, timeout: float) -> None:
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
        except OSError as error:
            raise FatalError(f"cannot write dead-letter file {self.path}: {error}") from error

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class KafkaDeadLetters:
    """Dead letters as JSON records on `<topic>.dlq`, through the Kafka sink's connection settings."""

    def __init__(self, config: Any, topics: dict[str, str]) -> None:
        self.config = config
        self.topics = topics  # table -> dead-letter topic
        self.producer = None
        self.pending: list = []

    transaction = None  # the pipeline's Kafka transaction with delivery: exactly_once (`join`)

    def join(self, transaction) -> None:
        """Write inside the pipeline's Kafka transaction (see `bridge.sinks.base.Sink.join`)."""
        self.transaction = transaction

    def open(self) -> None:
        from bridge.sinks.kafka_client import ensure_topics, make_producer

        ensure_topics(self.config, self.topics.values())
        self.producer = self.transaction.producer if self.transaction is not None else make_producer(self.config)

    def write(self, letter: DeadLetter) -> None:
        headers = [("table", letter.table.encode()), ("reason", letter.reason.encode()[:1000])]
        value = letter.to_json()
        if len(value) + RECORD_OVERHEAD > self.config.max_request_size:
            value = letter.truncated().to_json()  # a record too large for Kafka is too large for its DLQ too
        try:
            if self.transaction is not None:
                self.transaction.begin()
            future = self.producer.send(
                self.topics[letter.table], key=letter.sequence_number.encode(), value=value, headers=headers
            )
        except KafkaError as error:
            if self.transaction is not None:
                raise self.transaction.failed(error, f"send a dead letter of {letter.table}") from error
            raise FatalError(f"dead-letter topic {self.topics[letter.table]} refused a record: {error}") from error
        self.pending.append(future)

    def flush(self, timeout: float) -> None:
        if not self.pending:
            return
        try:
            self.producer.flush(timeout=timeout)
        except KafkaTimeoutError:
            raise RetriableError(f"dead letters not acknowledged within {timeout:.0f} s") from None
        for future in self.pending:
            if future.failed():
                if self.transaction is not None:
                    self.pending = []
                    raise self.transaction.failed(future.exception, "deliver the transaction's dead letters")
                raise FatalError(f"a dead-letter topic rejected a record: {future.exception}")
        self.pending = []

    def close(self) -> None:
        """Within about a second even when no broker answers; says once how many letters were given up on."""
        if self.producer is None or self.transaction is not None:  # a transaction's producer: closed by its owner
            return
        from bridge.sinks.kafka_client import close_producer

        given_up = close_producer(self.producer, lambda: sum(1 for future in self.pending if not future.is_done))
        if given_up:
            log.warning(
                "dead-letter producer closed with %d dead letter(s) not acknowledged by Kafka at %s; the "
                "checkpoint stays before their records, which the next run routes again",
                given_up,
                self.config.bootstrap_servers,
            )


class DeadLetters:
    """The dead-letter destinations of the `dlq` tables: a JSON-lines file or `<topic>.dlq` on Kafka."""

    def __init__(self, destinations: dict[str, Any]) -> None:
        self.destinations = destinations  # table -> FileDeadLetters | KafkaDeadLetters (dlq tables only)

    def _unique(self) -> list:
        unique: list = []
        for destination in self.destinations.values():
            if all(destination is not seen for seen in unique):
                unique.append(destination)
        return unique

    def open(self) -> None:
        for destination in self._unique():
            destination.open()

    def write(self, letters: list[DeadLetter]) -> None:
        """Hand letters to their table's destination; durable once `flush` returns."""
        for letter in letters:
            self.destinations[letter.table].write(letter)

    def flush(self, timeout: float) -> None:
        for destination in self._unique():
            destination.flush(timeout)

    def close(self) -> None:
        for destination in self._unique():
            destination.close()

    def join(self, transaction) -> None:
        """Write the Kafka dead letters inside the pipeline's transaction (exactly-once allows no file ones)."""
        for destination in self._unique():
            destination.join(transaction)


def build_dead_letters(config: Any) -> DeadLetters:
    """The destinations of a `Config`: `dlq` tables write to `dead_letter_path`, else to `<topic>.dlq` on Kafka."""
    kafka = config.kafka
    destinations: dict[str, Any] = {}
    files: dict[str, FileDeadLetters] = {}
    kafka_topics: dict[str, str] = {}
    for index, table in enumerate(config.tables):
        if table.on_poison != "dlq":
            continue
        if table.dead_letter_path:
            destinations[table.name] = files.setdefault(table.dead_letter_path, FileDeadLetters(table.dead_letter_path))
        elif kafka is None:
            raise ConfigError(
                f"tables[{index}].on_poison: `dlq` needs `dead_letter_path` (a JSON-lines file) or a kafka sink "
                "(whose `<topic>.dlq` then receives the dead letters)"
            )
        else:
            kafka_topics[table.name] = kafka.topic.format(table=table.name) + ".dlq"
    if kafka_topics:
        shared = KafkaDeadLetters(kafka, kafka_topics)
        destinations.update(dict.fromkeys(kafka_topics, shared))
    return DeadLetters(destinations)
