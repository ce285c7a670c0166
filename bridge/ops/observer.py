"""Everything an operator sees of a running bridge, started and stopped around one pipeline run.

The metrics/health server (when `metrics.port` is set), a once-a-second watch that warns when a shard's
retention headroom falls below `metrics.retention_warning_hours`, and the live progress line (only when
stderr is a terminal).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

from bridge import __version__
from bridge.ops import metrics
from bridge.ops.health import HealthServer
from bridge.ops.logs import stderr_handler
from bridge.ops.progress import ProgressLine, wants_progress

log = logging.getLogger(__name__)
TICK_S = 1.0


class Observer:
    """Use as `with Observer(config, pipeline): pipeline.run()`; logs the start of the run."""

    def __init__(self, config, pipeline, stream: TextIO | None = None) -> None:
        self.config = config
        self.settings = config.metrics
        self.pipeline = pipeline
        self.stream = stream or sys.stderr
        self.server: HealthServer | None = None
        self.progress: ProgressLine | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="observer", daemon=True)

    def __enter__(self) -> Observer:
        checkpoint = self.config.checkpoint
        log.info(
            "cdc-bridge %s starting: tables %s; sinks %s; checkpoint %s; delivery %s",
            __version__,
            ", ".join(table.name for table in self.config.tables),
            ", ".join(sink.type for sink in self.config.sinks),
            f"topic {checkpoint.topic}" if checkpoint.store == "kafka" else checkpoint.path,
            self.config.delivery.replace("_", "-"),
        )
        metrics.set_retention_warning(self.settings.retention_warning_hours * 3600)
        if self.settings.port is not None:
            self.server = HealthServer(self.settings.host, self.settings.port, self.pipeline.readiness)
            self.server.start()
        if wants_progress(self.stream):
            self.progress = ProgressLine(self.stream, time.monotonic)
            handler = stderr_handler()
            if handler is not None:
                handler.before_emit = self.progress.clear
        self.thread.start()
        return self

    def _watch(self) -> None:
        while not self.stopping.wait(TICK_S):
            metrics.LAG.check_retention()
            if self.progress is not None:
                self.progress.tick()

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        if self.progress is not None:
            self.progress.clear()
            handler = stderr_handler()
            if handler is not None:
                handler.before_emit = None
        if self.server is not None:
            self.server.stop()
        log.info(
            "cdc-bridge stopped: %d events written, %d records read this run",
            metrics.total("cdc_bridge_records_written_total"),
            metrics.total("cdc_bridge_records_read_total"),
        )
