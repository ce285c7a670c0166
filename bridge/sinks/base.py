"""The sink contract. Every sink, built-in or third-party, implements these four methods.

The pipeline calls `open()` once, then `write()` and `flush()` any number of times from one thread, then
`close()` once. A checkpoint is written only after `flush()` returned, so `flush()` is what makes the
bridge at-least-once: it must not return before everything written so far is durable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from bridge.codec.avro import EnvelopeCodec
from bridge.normalize import ChangeEvent


@dataclass(frozen=True)
class TableEncoding:
    """How the events of one table are encoded: Avro codec and Kafka key mode (`partition` | `primary`)."""

    codec: EnvelopeCodec
    key: str = "partition"


class Sink(ABC):
    """A destination of change events. Subclasses set `Config` to a frozen dataclass: their YAML section."""

    Config: ClassVar[type]

    def __init__(self, config: object, tables: Mapping[str, TableEncoding]) -> None:
        self.config = config
        self.tables = tables

    @abstractmethod
    def open(self) -> None:
        """Called once before the first `write`: connect and check the destination is usable.

        Raises `ConfigError` when it never can be (missing topic, bad path), `RetriableError` when not yet.
        """

    @abstractmethod
    def write(self, events: Sequence[ChangeEvent]) -> None:
        """Accept events in order; may buffer. Events of one item must reach the destination in this order.

        Raises `PoisonRecordError` for an event that cannot be written at all (too large, does not fit).
        """

    @abstractmethod
    def flush(self, timeout: float) -> None:
        """Return only when every event written so far is durable at the destination.

        Raises `FatalError` (or `RetriableError`) when that cannot be confirmed within `timeout` seconds;
        the pipeline then keeps its checkpoint before these events.
        """

    @abstractmethod
    def close(self) -> None:
        """Release connections and files. Does not flush: events written since the last `flush` may be lost,
        which is safe because no checkpoint covers them. Called once, also after a failure."""
