"""Log output on stderr (bridge.ops.logs) and the live progress line (bridge.ops.progress)."""

from __future__ import annotations

import io
import json
import logging
import os
import time

import pytest

from bridge.ops import metrics
from bridge.ops.logs import print_error, setup_logging
from bridge.ops.progress import CLEAR, ProgressLine, progress_text, wants_progress


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_format_writes_one_object_per_line(restore_logging):
    stream = io.StringIO()
    setup_logging("INFO", "json", stream)

    logging.getLogger("bridge.source").info("shard %s of %s started", "shardId-1", "Orders", extra={"table": "Orders"})
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        logging.getLogger("bridge.pipeline").exception("stopped")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "INFO" and first["logger"] == "bridge.source"
    assert first["message"] == "shard shardId-1 of Orders started" and first["table"] == "Orders"
    assert first["ts"].endswith("+00:00")
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exception"]


def test_final_error_line_follows_the_log_format(restore_logging, capsys):
    setup_logging("INFO", "json")
    print_error("cdc-bridge: config error: bridge.yaml: tables: expected at least one table")
    entry = json.loads(capsys.readouterr().err)
    assert entry["level"] == "ERROR" and entry["message"].endswith("expected at least one table")

    setup_logging("INFO", "text")
    print_error("cdc-bridge: error: stopped")
    assert capsys.readouterr().err == "cdc-bridge: error: stopped\n"


def test_text_format_and_level_filter(restore_logging):
    stream = io.StringIO()
    setup_logging("WARNING", "text", stream)

    logging.getLogger("bridge.x").info("hidden")
    logging.getLogger("bridge.x").warning("shown")

    assert stream.getvalue().count("\n") == 1 and " WARNING bridge.x: shown" in stream.getvalue()


def test_client_libraries_never_log_below_warning_as_they_would_dump_payloads(restore_logging):
    setup_logging("DEBUG", "text", io.StringIO())
    assert logging.getLogger("kafka").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("botocore").getEffectiveLevel() == logging.WARNING


def test_progress_is_off_when_stderr_is_not_a_terminal():
    assert not wants_progress(io.StringIO())
    primary, secondary = os.openpty()
    try:
        with os.fdopen(secondary, "w", closefd=False) as terminal:
            assert wants_progress(terminal)
    finally:
        os.close(primary)
        os.close(secondary)


def test_progress_text_shows_rate_lag_headroom_and_shards():
    text = progress_text(12408, 1520.4, 0.4, 86000, {"A": (3, 1), "B": (1, 0)})
    assert text == ("cdc-bridge: 12,408 events · 1,520/s · lag 0.4 s · headroom 23.9 h · shards 4 active, 1 finished")


def test_progress_line_redraws_in_place_and_log_lines_clear_it_first(restore_logging):
    stream = io.StringIO()
    handler = setup_logging("INFO", "text", stream)
    clock = [100.0]
    line = ProgressLine(stream, lambda: clock[0])
    handler.before_emit = line.clear

    clock[0] = 102.0
    line.tick()
    logging.getLogger("bridge.x").info("a lifecycle event")
    line.tick()

    out = stream.getvalue()
    assert out.startswith(CLEAR + "cdc-bridge: ")
    assert "\n" not in out.split(CLEAR)[1]  # the progress line itself never ends a line
    assert CLEAR + time.strftime("%Y") in out  # cleared right before the log line


def test_progress_rate_is_events_per_second_since_last_tick(restore_logging):
    stream = io.StringIO()
    clock = [0.0]
    line = ProgressLine(stream, lambda: clock[0])

    clock[0] = 2.0
    metrics.events_written([type("E", (), {"table": "ProgressT", "op": "c"})()] * 10)
    line.tick()

    assert " · 5/s · " in stream.getvalue()


def test_progress_text_shows_a_running_snapshot_with_its_share_rate_and_eta():
    text = progress_text(0, 0, None, None, {}, {"Orders": (40_210, 9_870.2, 100_000), "Users": (12, 3.0, None)})

    assert text.endswith(" · snapshot Orders 40,210 of ~100,000 (40 %) 9,870/s ETA 6.1 s · snapshot Users 12 3/s")


def test_progress_line_shows_the_snapshot_items_per_second_since_last_tick_until_its_segments_are_done():
    stream = io.StringIO()
    clock = [0.0]
    metrics.snapshot_progress("ProgressSnap", 1_000, 2, 10_000)
    line = ProgressLine(stream, lambda: clock[0])
    line.tick()

    clock[0] = 2.0
    metrics.snapshot_progress("ProgressSnap", 5_000, 1, 10_000)
    line.tick()
    assert stream.getvalue().endswith("snapshot ProgressSnap 5,000 of ~10,000 (50 %) 2,000/s ETA 2.5 s")
    assert metrics.total("cdc_bridge_snapshot_items") >= 5_000

    metrics.snapshot_progress("ProgressSnap", 10_000, 0, 10_000)
    line.tick()
    assert "snapshot ProgressSnap" not in stream.getvalue().split(CLEAR)[-1]
