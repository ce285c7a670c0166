"""The sink contract. Every sink, built-in or third-party, implements these four methods.

Lifecycle: the pipeline creates a sink with its validated `Config` and the tables' encodings, calls `open()`
once, then `write()` and `flush()` any number of times from one thread, then `close()` once (also after a
failure, and even when `open()` failed or was never reached). A checkpoint is written only after `flush()` of
every sink returned, so `flush()` is what makes the bridge at-least-once: it must not return before everything
written so far is durable. After a crash the events since the last checkpoint are written again, so a
destination may see duplicates (same `event_id`), never gaps. `tests/integration/test_sink_conformance.py`
holds every registered sink to this contract.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from bridge.codec.avro import EnvelopeCodec
from bridge.codec.registry import SchemaRegistry
from bridge.normalize import ChangeEvent


@dataclass(frozen=True)
class TableEncoding:
    """How the events of one table are encoded: Avro codec, Kafka key mode (`partition` | `primary`) and,
    for `wire_format: confluent`, the schema registry the Kafka sink registers the codec's schema with."""

    codec: EnvelopeCodec
    key: str = "partition"
    registry: SchemaRegistry | None = None
    key_attributes: tuple[tuple[str, str], ...] = ()  # (name, S|N|B) of the Kafka key's attributes, in key order


class Sink(ABC):
    """A destination of change events. Subclasses set `Config` to a frozen dataclass: their YAML section.

    Each field of `Config` is made with `bridge.config.doc(...)` (or `field(metadata={"doc": ...})`): the
    description appears in validation errors and in `docs/config.md`.
    """

    Config: ClassVar[type]
    reads_plain_values: ClassVar[bool] = True
    """Whether `write` reads an event's `before`/`after` as plain values. A sink that only ever encodes events
    with its table's `TableEncoding.codec` sets it False: when every sink does, the images stay as the stream
    gave them and the codec writes them to Avro straight from their attribute-value JSON, building no values."""

    def __init__(self, config: object, tables: Mapping[str, TableEncoding]) -> None:
        self.config = config
        self.tables = tables

    @classmethod
    def check_config(cls, config: object, tables: Sequence[str]) -> list[tuple[str, str]]:
        """Problems of a valid-typed `config` used with these table names, as `(field, what is wrong)` pairs.

        Called while the config file is validated, before anything is opened; no I/O. Default: none.
        """
        return []

    @abstractmethod
    def open(self) -> None:
        """Called once, before the first `write`: connect and check that the destination is usable.

        Raises `ConfigError` when it never can be (missing topic, unwritable folder), `RetriableError` when not
        yet (broker down); the pipeline retries the latter with backoff.
        """

    @abstractmethod
    def write(self, events: Sequence[ChangeEvent]) -> None:
        """Accept events (possibly none) in order; may buffer. Nothing written is durable until `flush` returns.

        Events of one item (same key) must reach the destination in the order of the calls and of `events`.
        Raises `RejectedEvent(event, reason)` for one event that cannot be written at all (too large, does not
        fit) after taking every event before it: the pipeline routes that event by its table's `on_poison`
        (`fail` stops the bridge, `dlq` writes a dead letter, `skip` counts it) and calls `write` again with the
        events after it. Any other error stops the bridge with the checkpoint before the batch.
        """

    @abstractmethod
    def flush(self, timeout: float) -> None:
        """Return only when every event written so far is durable at the destination (synced to disk,
        acknowledged by the broker). Afterwards the pipeline may checkpoint past these events.

        Raises `FatalError` (or `RetriableError`) when that cannot be confirmed within `timeout` seconds;
        the pipeline then keeps its checkpoint before these events.
        """

    def join(self, transaction) -> None:
        """`delivery: exactly_once`: before `open`, the pipeline hands over its Kafka transaction
        (`bridge.sinks.transaction.KafkaTransaction`); the sink then writes through its producer inside the
        open transaction (`transaction.begin()`), and the pipeline commits the records with the checkpoint.
        Only a sink whose records can be part of a Kafka transaction implements it (the config allows
        exactly-once with one kafka sink only)."""
        raise NotImplementedError(f"{type(self).__name__} cannot write inside a Kafka transaction")

    @abstractmethod
    def close(self) -> None:
        """Release connections and files; called exactly once, even when `open` failed or was never called.

        Does not promise a flush: events written since the last `flush` may be lost, which is safe because no
        checkpoint covers them. What an earlier `flush` made durable stays intact and readable. Returns within
        a few seconds even when the destination does not answer (it runs after a stop's deadline), and never
        raises: what it gives up on is at most one log line (how many events were left unconfirmed).
        """
