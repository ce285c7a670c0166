"""Logging to stderr as text or as one JSON object per line (`--log-format json`).

Log lines name lifecycle events (start, shard started/finished, stream ARN change, checkpoint written) and
never carry record payloads at INFO. A live progress line (`bridge.ops.progress`) shares stderr: the handler
clears it before each log line, and the progress line redraws itself at its next tick.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

NOISY = ("kafka", "botocore", "boto3", "urllib3", "s3transfer")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: `ts` (UTC, ISO 8601), `level`, `logger`, `message`, any `extra` fields,
    `exception` with the formatted traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class StderrHandler(logging.StreamHandler):
    """Writes to `stream`, or to whatever `sys.stderr` is at the time of each record when none is given;
    first calls `before_emit` (used to clear a live progress line)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream or sys.stderr)
        self.follow_stderr = stream is None
        self.before_emit: Callable[[], None] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.follow_stderr:
            self.stream = sys.stderr
        if self.before_emit is not None:
            self.acquire()
            try:
                self.before_emit()
            finally:
                self.release()
        super().emit(record)


def setup_logging(level: str = "INFO", fmt: str = "text", stream: TextIO | None = None) -> StderrHandler:
    """Send every log record at `level` or above to stderr as `fmt` ("text" or "json"); returns the handler.

    Chatty client libraries (kafka, botocore) log at WARNING or above whatever `level` is: at DEBUG they
    would dump request and record payloads.
    """
    handler = StderrHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, StderrHandler)]:  # set up again: replace, not add
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return handler


def stderr_handler() -> StderrHandler | None:
    """The handler installed by `setup_logging`, if any."""
    return next((h for h in logging.getLogger().handlers if isinstance(h, StderrHandler)), None)


def print_error(message: str) -> None:
    """The command's last word on stderr: the plain line, or one JSON object when logs are JSON."""
    handler = stderr_handler()
    if handler is not None and isinstance(handler.formatter, JsonFormatter):
        record = logging.LogRecord("bridge", logging.ERROR, __file__, 0, message, None, None)
        message = handler.formatter.format(record)
    print(message, file=sys.stderr)


class Every:
    """`due()` is true at most once per `interval` seconds (for INFO lines of periodic events)."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.next = 0.0
        self.lock = threading.Lock()

    def due(self) -> bool:
        now = self.clock()
        with self.lock:
            if now < self.next:
                return False
            self.next = now + self.interval
            return True
