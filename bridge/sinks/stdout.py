"""stdout sink: every event as JSON on standard output, the envelope as a Kafka consumer would decode it.

Delivery: at-least-once; `flush()` returns after the process's stdout buffer was handed to the OS (a pipe or
terminal has no stronger durability). Meant for local debugging, `| jq`, and piping into other tools.
When stdout cannot take the events (a full disk, a pipe whose reader went away), `write`/`flush` raise
`FatalError` naming the OS error, and the checkpoint stays before those events.
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
from bridge.errors import FatalError
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
        self.failure: FatalError | None = None  # set once stdout refused events: every later call raises it
        if self.config.color == "auto":
            self.colour = self.out.isatty() and not os.environ.get("NO_COLOR")
        else:
            self.colour = self.config.color == "always"

    def write(self, events: Sequence[ChangeEvent]) -> None:
        if self.failure is not None:
            raise self.failure
        ts_ms = int(time.time() * 1000)
        pretty = self.config.format == "pretty"
        lines = []
        for event in events:
            table = self.tables[event.table]
            envelope = decode_value(table.codec.body(event, ts_ms), table.codec.schema)
            topic = self.config.topic.format(table=event.table)
            view = select(event_view(envelope, kafka_key(event, table.key), topic), self.config.fields)
            lines.append(render(view, pretty, self.colour) + "\n")
        try:
            self.out.write("".join(lines))
        except OSError as error:
            raise self._unwritable(error) from None

    def flush(self, timeout: float) -> None:
        if self.failure is not None:
            raise self.failure
        try:
            self.out.flush()
        except OSError as error:
            raise self._unwritable(error) from None

    def _unwritable(self, error: OSError) -> FatalError:
        """Remember and return the error for a stdout that refused events. Stdout is pointed at /dev/null, so
        that the flush Python makes at exit does not fail a second time on what is still buffered: those events
        were never checkpointed, the next run writes them again."""
        self.failure = FatalError(
            f"stdout sink: cannot write to standard output: {error.strerror or error}; "
            "the checkpoint stays before the events not written"
        )
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.out.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # not a real file descriptor (a test's StringIO): nothing is flushed at exit
            pass
        return self.failure

    def close(self) -> None:
        out = getattr(self, "out", None)
        if out is not None and getattr(self, "failure", None) is None:
            try:
                out.flush()
            except OSError as error:  # no promise of a flush here: what is unflushed was never checkpointed
                self._unwritable(error)
