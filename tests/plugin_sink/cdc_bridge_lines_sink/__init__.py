"""A third-party sink as a plugin author would write one: `table key op sequence_number` per line.

It imports only `bridge.sinks`, the plugin API. Delivery: at-least-once; `flush()` fsyncs the file before it
returns. A key holding white space cannot be written as one field of a line: such an event is refused
with `RejectedEvent`, and the bridge routes it by the table's `on_poison`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from bridge.sinks import ChangeEvent, ConfigError, RejectedEvent, Sink, kafka_key


@dataclass(frozen=True)
class LinesConfig:
    """Append one text line per change event to a file."""

    path: str = field(metadata={"doc": "File the lines are appended to."})


class LinesSink(Sink):
    """Appends `table key op sequence_number` lines; see the module docstring for the guarantee."""

    Config = LinesConfig

    def open(self) -> None:
        try:
            self.file = open(self.config.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as error:
            raise ConfigError(f"lines sink: cannot open {self.config.path}: {error.strerror}") from None

    def write(self, events: Sequence[ChangeEvent]) -> None:
        for event in events:
            key = kafka_key(event, self.tables[event.table].key).decode()
            if len(key.split()) != 1:
                raise RejectedEvent(event, f"lines sink: the key {key!r} cannot be one field of a line")
            self.file.write(f"{event.table} {key} {event.op} {event.position.sequence_number}\n")

    def flush(self, timeout: float) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        file = getattr(self, "file", None)
        if file is not None:
            file.close()
