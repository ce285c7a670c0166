"""stdout sink: every event as JSON on standard output, the envelope as a Kafka consumer would decode it.

Delivery: at-least-once; `flush()` returns after the process's stdout buffer was handed to the OS (a pipe or
terminal has no stronger durability). Meant for local debugging, `| jq`, and piping into other tools.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from bridge.codec.avro import decode_value
from bridge.codec.keys import kafka_key
from bridge.normalize import ChangeEvent
from bridge.sinks.base import Sink
from bridge.sinks.render import check_fields, event_view, render, select


@dataclass(frozen=True)
class StdoutConfig:
    """Print each change event as JSON on standard output."""

    format: Literal["json", "pretty"] = field(
        default="json", metadata={"doc": "`json`: one line per event; `pretty`: indented, several lines."}
    )
    fields: tuple[str, ...] = field(
        default=(),
        metadata={"doc": "Only these dotted paths of each event (`op`, `key`, `after.Model`); all when empty."},
    )
    color: Literal["auto", "always", "never"] = field(
        default="auto",
        metadata={
            "doc": "Colour field names and operations: `auto` only when stdout is a terminal (and NO_COLOR unset)."
        },
    )
    topic: str = field(
        default="dynamodb.{table}", metadata={"doc": "Topic name shown with each event; `{table}` is replaced."}
    )


class StdoutSink(Sink):
    """Writes the decoded envelope, topic and key of every event to stdout."""

    Config = StdoutConfig

    @classmethod
    def check_config(cls, config: StdoutConfig, tables: Sequence[str]) -> list[tuple[str, str]]:
        problem = check_fields(config.fields)
        return [("fields", problem)] if problem else []

    def open(self) -> None:
        self.out = sys.stdout
        if self.config.color == "auto":
            self.colour = self.out.isatty() and not os.environ.get("NO_COLOR")
        else:
            self.colour = self.config.color == "always"

    def write(self, events: Sequence[ChangeEvent]) -> None:
        ts_ms = int(time.time() * 1000)
        pretty = self.config.format == "pretty"
        lines = []
        for event in events:
            table = self.tables[event.table]
            envelope = decode_value(table.codec.encode(event, ts_ms), table.codec.schema)
            topic = self.config.topic.format(table=event.table)
            view = select(event_view(envelope, kafka_key(event, table.key), topic), self.config.fields)
            lines.append(render(view, pretty, self.colour) + "\n")
        self.out.write("".join(lines))

    def flush(self, timeout: float) -> None:
        self.out.flush()

    def close(self) -> None:
        out = getattr(self, "out", None)
        if out is not None:
            out.flush()
