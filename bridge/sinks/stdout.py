"""stdout sink: one JSON object per line, the envelope as a Kafka consumer would decode it.

Delivery: at-least-once; `flush()` flushes the process's stdout. Meant for local debugging.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from bridge.codec import text
from bridge.codec.avro import decode_value
from bridge.codec.keys import kafka_key
from bridge.normalize import ChangeEvent
from bridge.sinks.base import Sink


@dataclass(frozen=True)
class StdoutConfig:
    """Print each change event as JSON on standard output."""

    format: Literal["json", "pretty"] = field(
        default="json", metadata={"doc": "`json`: one line per event; `pretty`: indented."}
    )
    topic: str = field(
        default="dynamodb.{table}", metadata={"doc": "Topic name shown with each event; `{table}` is replaced."}
    )


class StdoutSink(Sink):
    """Writes the decoded envelope, topic and key of every event to stdout."""

    Config = StdoutConfig

    def open(self) -> None:
        self.out = sys.stdout
        self.indent = 2 if self.config.format == "pretty" else None

    def write(self, events: Sequence[ChangeEvent]) -> None:
        ts_ms = int(time.time() * 1000)
        lines = []
        for event in events:
            table = self.tables[event.table]
            envelope = decode_value(table.codec.encode(event, ts_ms), table.codec.schema)
            key = kafka_key(event, table.key)
            shown = {"topic": self.config.topic.format(table=event.table)}
            try:
                shown["key"] = key.decode() if not isinstance(event.partition_key, bytes) else key
            except UnicodeDecodeError:
                shown["key"] = key
            shown.update(envelope)
            lines.append(text.dumps(shown, self.indent) + "\n")
        self.out.write("".join(lines))

    def flush(self, timeout: float) -> None:
        self.out.flush()

    def close(self) -> None:
        self.out.flush()
