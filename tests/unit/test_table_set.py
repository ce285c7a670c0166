"""TableSet over a scripted catalog and a manual wall clock: the tables found at start with the template's
settings, new tables due at once, missed ones only once drained past the moment they were missed, and failed
discoveries changing nothing. The background discovery runs for real, every 10 ms."""

from __future__ import annotations

import logging
import threading

import pytest

from bridge.config import parse_config
from bridge.errors import RetriableError
from bridge.table_set import TableSet
from tests.polling import wait_for

CONFIG = (
    "tables: [{name: Users}]\n"
    "discover: {include: [orders-*], template: {snapshot: never, key: primary}}\n"
    "source: {discovery_interval_s: 0.01}\n"
    "sinks: [{type: stdout}]\n"
)


class FakeCatalog:
    """Answers `find()` with `answer` (a list of names, or an exception to raise); counts the calls."""

    def __init__(self, answer) -> None:
        self.lock = threading.Lock()
        self.answer = answer
        self.calls = 0

    def find(self) -> list[str]:
        with self.lock:
            self.calls += 1
            answer = self.answer
        if isinstance(answer, BaseException):
            raise answer
        return sorted(answer)

    def answers(self, answer) -> None:
        """From the next discovery on, find answers `answer`; returns once a discovery answered it."""
        with self.lock:
            self.answer = answer
            seen = self.calls
        # the call after `seen` read the new answer; the one after that starts once the first was taken in
        wait_for(lambda: self.calls >= seen + 2, 10, f"a discovery answering {answer!r}")


class WallClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


@pytest.fixture
def started(clock):
    """`start(names)`: a TableSet over a catalog that first finds `names`, started; closed after the test."""
    sets = []

    def start(names):
        catalog = FakeCatalog(names)
        table_set = TableSet(parse_config(CONFIG), catalog, wall_clock=clock)
        sets.append(table_set)
        return table_set, catalog, table_set.start()

    yield start
    for table_set in sets:
        table_set.close()
        if table_set.thread is not None:
            table_set.thread.join(5)


def names(config) -> list[str]:
    return [table.name for table in config.tables]


def never_read(name: str) -> float:
    return 0.0


def test_start_gives_the_tables_found_with_the_template_settings(started):
    _, _, config = started(["orders-2", "orders-1"])
    assert names(config) == ["Users", "orders-1", "orders-2"]
    assert config.table("Users").key == "partition"
    assert config.table("orders-1") == config.discover.template.for_table("orders-1")
    assert (config.table("orders-2").snapshot, config.table("orders-2").key) == ("never", "primary")


def test_start_logs_what_was_found(started, caplog):
    with caplog.at_level(logging.INFO, logger="bridge.table_set"):
        started(["orders-1"])
    assert "discover found 1 table(s): orders-1" in caplog.messages


def test_without_discover_the_config_is_unchanged_and_never_due():
    config = parse_config("tables: [{name: Users}]\nsinks: [{type: stdout}]\n")
    table_set = TableSet(config, None)
    assert table_set.start() is config
    assert table_set.thread is None
    assert not table_set.due(never_read)
    assert table_set.apply() == config


def test_nothing_is_due_before_a_discovery_in_the_background(clock):
    catalog = FakeCatalog(["orders-1"])
    table_set = TableSet(parse_config(CONFIG.replace("0.01", "3600")), catalog, wall_clock=clock)
    table_set.start()
    try:
        catalog.answer = ["orders-1", "orders-2"]
        assert not table_set.due(never_read)
        assert catalog.calls == 1
    finally:
        table_set.close()


def test_the_same_tables_found_again_are_not_due(started):
    table_set, catalog, _ = started(["orders-1"])
    catalog.answers(["orders-1"])
    assert not table_set.due(never_read)


def test_a_table_found_in_the_background_is_due_and_added(started, caplog):
    table_set, catalog, _ = started(["orders-1"])
    catalog.answers(["orders-1", "orders-2"])
    assert table_set.due(never_read)
    with caplog.at_level(logging.INFO, logger="bridge.table_set"):
        config = table_set.apply()
    assert names(config) == ["Users", "orders-1", "orders-2"]
    assert config.table("orders-2").key == "primary"
    assert "table orders-2 found by discover: replicating it" in caplog.messages
    assert not table_set.due(never_read)  # applied: nothing more to do


def test_a_missed_table_stays_until_its_stream_is_read_past_the_moment_it_was_missed(started, clock, caplog):
    table_set, catalog, _ = started(["orders-1", "orders-2"])
    catalog.answers(["orders-1"])
    watermarks = {"orders-1": 5_000_000.0, "orders-2": 0.0}
    with caplog.at_level(logging.INFO, logger="bridge.table_set"):
        assert not table_set.due(watermarks.get)  # missed now, at 1,000,000 ms
        assert "table orders-2 is no longer found by discover: its stream is read up to now, then no more" in (
            caplog.messages
        )
        clock.now = 2_000.0  # time goes on: the moment it was missed does not
        watermarks["orders-2"] = 999_999.0
        assert not table_set.due(watermarks.get)
        watermarks["orders-2"] = 1_000_000.0
        assert table_set.due(watermarks.get)
        config = table_set.apply()
    assert names(config) == ["Users", "orders-1"]
    assert "table orders-2 removed: every change until it was no longer found was delivered" in caplog.messages
    assert not table_set.due(watermarks.get)


def test_a_missed_table_is_kept_while_another_is_added(started):
    table_set, catalog, _ = started(["orders-1", "orders-2"])
    catalog.answers(["orders-1", "orders-3"])
    assert table_set.due(never_read)  # orders-3 is new; orders-2 is not drained
    assert names(table_set.apply()) == ["Users", "orders-1", "orders-2", "orders-3"]
    assert not table_set.due(never_read)
    assert table_set.due(lambda name: 1_000_000.0)  # drained now
    assert names(table_set.apply()) == ["Users", "orders-1", "orders-3"]


def test_a_table_found_again_before_it_is_drained_stays(started, clock, caplog):
    table_set, catalog, _ = started(["orders-1", "orders-2"])
    catalog.answers(["orders-1"])
    assert not table_set.due(never_read)  # missed at 1,000,000 ms
    catalog.answers(["orders-1", "orders-2"])
    with caplog.at_level(logging.INFO, logger="bridge.table_set"):
        assert not table_set.due(lambda name: 1_500_000.0)  # read past the miss, but it is back
    assert "table orders-2 is found by discover again: it stays" in caplog.messages
    assert names(table_set.apply()) == ["Users", "orders-1", "orders-2"]


def test_a_table_missed_again_later_is_drained_from_the_later_moment(started, clock):
    table_set, catalog, _ = started(["orders-1", "orders-2"])
    catalog.answers(["orders-1"])
    assert not table_set.due(never_read)  # missed at 1,000,000 ms
    catalog.answers(["orders-1", "orders-2"])
    assert not table_set.due(never_read)  # back
    clock.now = 3_000.0
    catalog.answers(["orders-1"])
    assert not table_set.due(lambda name: 2_000_000.0)  # missed again at 3,000,000 ms
    assert table_set.due(lambda name: 3_000_000.0)


def test_a_removed_table_found_again_is_added_again(started):
    table_set, catalog, _ = started(["orders-1", "orders-2"])
    catalog.answers(["orders-1"])
    table_set.due(never_read)
    assert table_set.due(lambda name: 1_000_000.0)
    assert names(table_set.apply()) == ["Users", "orders-1"]
    catalog.answers(["orders-1", "orders-2"])
    assert table_set.due(never_read)
    assert names(table_set.apply()) == ["Users", "orders-1", "orders-2"]


@pytest.mark.parametrize(
    ("error", "level", "shown"),
    [
        (RetriableError("listing tables: throttled"), logging.WARNING, "listing tables: throttled"),
        (KeyError("TableNames"), logging.ERROR, "KeyError('TableNames')"),
    ],
    ids=["retriable", "unexpected"],
)
def test_a_failed_discovery_changes_nothing_and_is_logged(started, caplog, error, level, shown):
    table_set, catalog, _ = started(["orders-1", "orders-2"])
    with caplog.at_level(logging.INFO, logger="bridge.table_set"):
        catalog.answers(error)
    assert not table_set.due(never_read)  # orders-1 and orders-2 are not taken for missed
    assert names(table_set.apply()) == ["Users", "orders-1", "orders-2"]
    failures = [r for r in caplog.records if r.name == "bridge.table_set" and r.levelno == level]
    assert failures and all(
        r.getMessage() == f"finding the tables of `discover` failed (the tables stay as they are): {shown}"
        for r in failures
    )


def test_a_failed_discovery_keeps_what_the_last_one_found(started):
    table_set, catalog, _ = started(["orders-1"])
    catalog.answers(["orders-1", "orders-2"])
    catalog.answers(RetriableError("throttled"))
    assert table_set.due(never_read)
    assert names(table_set.apply()) == ["Users", "orders-1", "orders-2"]


def test_discovery_goes_on_after_an_unexpected_failure(started):
    table_set, catalog, _ = started(["orders-1"])
    catalog.answers(ValueError("bug"))
    catalog.answers(["orders-1", "orders-2"])
    assert table_set.due(never_read)
    assert names(table_set.apply()) == ["Users", "orders-1", "orders-2"]


def test_close_stops_the_background_discovery(started):
    table_set, catalog, _ = started(["orders-1"])
    catalog.answers(["orders-1"])
    table_set.close()
    table_set.thread.join(5)
    assert not table_set.thread.is_alive()
