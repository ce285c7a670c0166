"""`delivery: exactly_once`: each checkpoint interval is one Kafka transaction.

One transactional producer (`transactional_id` = `checkpoint.writer_id`) carries the change records of the
Kafka sink, the dead letters on `<topic>.dlq` and the checkpoint records of the Kafka store: the pipeline
commits them together or not at all, so a `read_committed` consumer sees each change once, even across a
kill -9 (an open transaction of a dead bridge is aborted by the next one's `init_transactions`).

A second bridge with the same id fences this one: the broker refuses its next transactional step
(`ProducerFencedError`), which is a `FatalError` naming the id - never two bridges writing. Any other failure
of a transaction (broker away, a commit not confirmed in time) aborts it (`TransactionAborted`): the pipeline
starts over from the committed checkpoint with a new producer, so nothing of the aborted transaction counts.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kafka.errors import (
    AuthorizationError,
    InvalidProducerEpochError,
    KafkaError,
    KafkaTimeoutError,
    ProducerFencedError,
    TransactionalIdAuthorizationFailedError,
)

from bridge.errors import FatalError, RetriableError
from bridge.ops import metrics
from bridge.sinks.kafka_client import close_producer, make_producer

log = logging.getLogger(__name__)
# Back-to-back transactions wait on CONCURRENT_TRANSACTIONS for one retry backoff: 183 ms per 200-record
# transaction with kafka-python's default 100 ms here, 48 ms with 10 ms.
RETRY_BACKOFF_MS = 10
ABORT_WAIT_S = 2.0  # an abort the broker does not confirm by then is left to the next producer's init
FENCING = (ProducerFencedError, InvalidProducerEpochError)


class TransactionAborted(RetriableError):
    """The open transaction was aborted (or could not be confirmed): start over from the committed checkpoint."""


class KafkaTransaction:
    """The transactional producer of a run and its one open transaction (begun by the first record)."""

    def __init__(self, config: Any, transactional_id: str, timeout_s: float) -> None:
        self.config = config  # the Kafka sink's settings: the transaction lives on its cluster
        self.transactional_id = transactional_id
        self.timeout_s = timeout_s  # longest wait for init, commit and abort
        self.producer = None
        self.open_since: float | None = None  # monotonic time the open transaction began

    def open(self) -> None:
        """Connect and take the transactional id (aborting what a previous holder left open, fencing it)."""
        self.producer = producer = make_producer(
            self.config,
            transactional_id=self.transactional_id,
            retry_backoff_ms=RETRY_BACKOFF_MS,
            max_block_ms=int(self.timeout_s * 1000),
        )
        try:
            producer.init_transactions()
        except KafkaTimeoutError as error:
            self.close()
            raise RetriableError(
                f"Kafka at {self.config.bootstrap_servers} did not initialise transactional id "
                f"{self.transactional_id!r} within {self.timeout_s:g} s: {error}"
            ) from None
        except (TransactionalIdAuthorizationFailedError, AuthorizationError) as error:
            self.close()
            raise FatalError(
                f"Kafka at {self.config.bootstrap_servers} refuses transactional id {self.transactional_id!r} "
                f"({type(error).__name__}): grant WRITE and DESCRIBE on it (checkpoint.transactional_id)"
            ) from None
        except KafkaError as error:
            self.close()
            raise RetriableError(f"transactional id {self.transactional_id!r} not initialised: {error!r}") from None

    def begin(self):
        """The producer, inside a transaction (begun now if none is open)."""
        if self.open_since is None:
            try:
                self.producer.begin_transaction()
            except KafkaError as error:
                raise self.failed(error, "begin a transaction") from None
            self.open_since = time.monotonic()
        return self.producer

    def send(self, topic: str, key: bytes | None, value: bytes | None, headers: list | None = None):
        """Send one record inside the open transaction; returns its future."""
        try:
            return self.begin().send(topic, key=key, value=value, headers=headers or [])
        except KafkaError as error:
            raise self.failed(error, f"send to {topic}") from None

    def commit(self) -> None:
        """Commit the open transaction (nothing to do when none is); `TransactionAborted` when it could not be
        confirmed within `timeout_s` (its records then never count), `FatalError` when fenced."""
        if self.open_since is None:
            return
        started = time.monotonic()
        self._finish(self.producer._transaction_manager.begin_commit, "commit")
        metrics.transaction_finished("committed", time.monotonic() - started)
        self.open_since = None

    def abort(self) -> None:
        """Abort the open transaction if the broker can be told; in every case the producer is closed after,
        so a new run starts with a new one (whose `init_transactions` aborts what the broker still holds)."""
        try:
            if self.open_since is not None and self.producer is not None:
                metrics.transaction_finished("aborted", 0.0)
                self._finish(self.producer._transaction_manager.begin_abort, "abort", ABORT_WAIT_S)
        except TransactionAborted as error:
            log.warning("the open transaction could not be aborted now (%s); the next producer aborts it", error)
        finally:
            self.close()

    def close(self) -> None:
        """Close the producer within about a second (idempotent; records not committed never count)."""
        producer, self.producer = self.producer, None
        self.open_since = None
        if producer is not None:
            close_producer(producer, lambda: 0)

    def _finish(self, start, what: str, timeout_s: float | None = None) -> None:
        # kafka-python 3's `commit_transaction()` / `abort_transaction()` wait for the broker without a timeout
        # (forever while it is away); these are the same two steps with a bounded wait.
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        try:
            result = start()
            self.producer._sender.wakeup()
            done = result.wait(timeout_ms=int(timeout_s * 1000))
        except KafkaError as error:
            raise self.failed(error, what) from None
        if not done:
            raise TransactionAborted(
                f"Kafka at {self.config.bootstrap_servers} did not confirm the {what} of a transaction within "
                f"{timeout_s:g} s"
            )

    def failed(self, error: BaseException, what: str) -> BaseException:
        """The error to raise for a Kafka failure of the transaction: `FatalError` when fenced, else
        `TransactionAborted`."""
        if isinstance(error, FENCING):
            log.critical(
                "FENCED: another bridge started with transactional id %r; this one stops", self.transactional_id
            )
            return FatalError(
                f"fenced: another bridge took transactional id {self.transactional_id!r} "
                f"(checkpoint.transactional_id) while this one ran ({type(error).__name__} on {what}); this "
                "bridge stops so that only one writes. Run one bridge per id"
            )
        return TransactionAborted(f"could not {what} in Kafka at {self.config.bootstrap_servers}: {error!r}")
