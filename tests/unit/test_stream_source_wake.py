"""`StreamSource.wake_at`: an idle shard is read just after the moment a held snapshot page waits for.

The source runs on a manual clock (tests/manual_clock.py) with a wall clock that moves with it, over the
scripted fake, one table with one open shard and no record: every call finds nothing more, and the gaps
between the calls the fake records are in the source's time.
"""

from __future__ import annotations

import itertools

import pytest

from bridge.checkpoint import CheckpointStore, CheckpointTracker
from bridge.config import TableConfig
from bridge.source.stream import MIN_CALL_INTERVAL, WAKE_AFTER, StreamSource
from tests.fake_streams import FakeAWS
from tests.manual_clock import ManualClock
from tests.polling import wait_for

STEP = 1 / 64  # s of the manual clock per poll: exact in binary, and slower than real time
EPOCH = 1_800_000_000.0  # the wall clock (epoch s) when the manual clock reads 0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def aws(clock) -> FakeAWS:
    aws = FakeAWS(clock=clock)
    aws.create_table("T")
    return aws


@pytest.fixture
def source(tmp_path, clock, aws):
    def reading(poll_interval: float) -> StreamSource:
        source = StreamSource(
            [TableConfig(name="T")],
            aws.dynamodb,
            aws.streams,
            CheckpointTracker(CheckpointStore(tmp_path / "cp.json")),
            poll_interval=poll_interval,
            clock=clock,
            wall_clock=lambda: EPOCH + clock(),
        )
        started.append(source)
        source.start()
        return source

    started: list[StreamSource] = []
    yield reading
    for source in started:
        source.stop()


def calls_at(clock: ManualClock, aws: FakeAWS, count: int) -> list[float]:
    """Move `clock` on by `STEP` at each poll until the shard had `count` calls; returns when each came."""

    def moved_on():
        if len(calls := aws.get_records_calls()) >= count:
            return [call.at for call in calls]
        clock.advance(STEP)
        return None

    return wait_for(moved_on, 20, f"{count} GetRecords calls")


def wall_ms(at: float) -> float:
    return (EPOCH + at) * 1000


def test_an_idle_shard_is_read_just_after_the_moment_a_held_page_waits_for(source, clock, aws):
    reading = source(poll_interval=1.0)
    (first,) = calls_at(clock, aws, 1)

    reading.wake_at("T", wall_ms(first + 0.5))
    _, woken, after = calls_at(clock, aws, 3)

    assert first + 0.5 + WAKE_AFTER <= woken <= first + 0.5 + 4 * STEP  # not at the poll interval (first + 1)
    assert after - woken == pytest.approx(1.0, abs=4 * STEP)  # then the poll interval again
    wait_for(lambda: reading.watermark("T") >= wall_ms(first + 0.5), 20, "the watermark past the deadline")


def test_a_deadline_after_the_next_poll_is_met_by_the_first_call_after_it(source, clock, aws):
    reading = source(poll_interval=0.4)
    (first,) = calls_at(clock, aws, 1)

    reading.wake_at("T", wall_ms(first + 0.6))
    _, polled, woken, after = calls_at(clock, aws, 4)

    assert polled == pytest.approx(first + 0.4, abs=4 * STEP)  # before the deadline: as scheduled
    assert first + 0.6 + WAKE_AFTER <= woken <= first + 0.6 + 4 * STEP  # not at polled + 0.4
    assert after - woken == pytest.approx(0.4, abs=4 * STEP)


def test_a_poll_due_just_before_a_deadline_waits_for_it_instead_of_delaying_the_call_after_it(source, clock, aws):
    reading = source(poll_interval=1.0)
    (first,) = calls_at(clock, aws, 1)

    reading.wake_at("T", wall_ms(first + 1.1))  # the poll at first + 1 would hold the next call until first + 1.2
    _, woken, after = calls_at(clock, aws, 3)

    assert first + 1.1 + WAKE_AFTER <= woken <= first + 1.1 + 4 * STEP
    assert after - woken == pytest.approx(1.0, abs=4 * STEP)


def test_a_deadline_asked_again_costs_no_further_call(source, clock, aws):
    reading = source(poll_interval=1.0)
    (first,) = calls_at(clock, aws, 1)
    deadline = wall_ms(first + 0.25)

    reading.wake_at("T", deadline)
    calls_at(clock, aws, 2)
    for _ in range(3):
        reading.wake_at("T", deadline)
        reading.wake_at("T", deadline - 100)
    times = calls_at(clock, aws, 4)

    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[1:] == pytest.approx([1.0, 1.0], abs=4 * STEP)


def test_a_woken_call_still_waits_for_the_five_calls_per_second_limit(source, clock, aws):
    reading = source(poll_interval=1.0)
    (first,) = calls_at(clock, aws, 1)

    reading.wake_at("T", wall_ms(first + 0.01))
    _, woken = calls_at(clock, aws, 2)

    assert first + MIN_CALL_INTERVAL <= woken <= first + MIN_CALL_INTERVAL + 4 * STEP
