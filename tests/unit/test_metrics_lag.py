"""Iterator age and retention headroom per shard (bridge.ops.lag), computed from stream records and checkpoints."""

from __future__ import annotations

import datetime as dt
import logging

from bridge.ops.lag import RETENTION_S, LagTracker, creation_time, format_duration, worst

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/2026-01-01T00:00:00.000"
T0 = 1_800_000_000.0


def record(sequence: int, created: float) -> dict:
    return {"dynamodb": {"SequenceNumber": str(sequence), "ApproximateCreationDateTime": created}}


def lag_of(tracker: LagTracker, now: float, shard: str = "shard-1"):
    return next(lag for lag in tracker.snapshot(now) if lag.shard_id == shard)


def test_iterator_age_is_now_minus_newest_read_record():
    tracker = LagTracker()
    tracker.read("Orders", ARN, "shard-1", [record(1, T0), record(2, T0 + 30)], now=T0 + 100)

    assert lag_of(tracker, T0 + 100).iterator_age_s == 70.0
    assert lag_of(tracker, T0 + 160).iterator_age_s == 130.0  # grows while nothing more is read


def test_iterator_age_is_zero_once_an_empty_read_shows_the_shard_is_caught_up():
    tracker = LagTracker()
    tracker.read("Orders", ARN, "shard-1", [record(1, T0)], now=T0 + 3600)
    tracker.read("Orders", ARN, "shard-1", [], now=T0 + 3601)

    lag = lag_of(tracker, T0 + 3602)
    assert lag.iterator_age_s == 0.0 and lag.caught_up


def test_headroom_counts_from_oldest_record_not_yet_checkpointed():
    tracker = LagTracker()
    tracker.read("Orders", ARN, "shard-1", [record(1, T0), record(2, T0 + 10)], now=T0 + 20)
    tracker.read("Orders", ARN, "shard-1", [record(3, T0 + 50)], now=T0 + 60)
    tracker.read("Orders", ARN, "shard-1", [], now=T0 + 61)

    assert lag_of(tracker, T0 + 100).headroom_s == RETENTION_S - 100
    tracker.acked(ARN, "shard-1", "2")
    assert lag_of(tracker, T0 + 100).headroom_s == RETENTION_S - 50
    tracker.acked(ARN, "shard-1", "3")
    assert lag_of(tracker, T0 + 100).headroom_s == RETENTION_S  # caught up and all checkpointed: nothing at risk


def test_headroom_of_a_shard_behind_is_bounded_by_the_newest_record_read():
    tracker = LagTracker()
    tracker.read("Orders", ARN, "shard-1", [record(1, T0)], now=T0 + 5)
    tracker.acked(ARN, "shard-1", "1")

    assert lag_of(tracker, T0 + 7200).headroom_s == RETENTION_S - 7200


def test_headroom_keeps_falling_while_records_wait_for_a_checkpoint():
    tracker = LagTracker()
    tracker.read("Orders", ARN, "shard-1", [record(1, T0)], now=T0 + 1)
    tracker.read("Orders", ARN, "shard-1", [], now=T0 + 2)

    assert lag_of(tracker, T0 + 10 * 3600).headroom_s == RETENTION_S - 10 * 3600


def test_shard_without_reads_has_unknown_lag():
    tracker = LagTracker()
    tracker.started("Orders", ARN, "shard-1")

    lag = lag_of(tracker, T0)
    assert lag.iterator_age_s is None and lag.headroom_s is None
    assert tracker.counts() == {"Orders": (1, 0)}


def test_finished_shard_is_forgotten_and_counted():
    tracker = LagTracker()
    tracker.read("Orders", ARN, "shard-1", [record(1, T0)], now=T0)
    tracker.read("Orders", ARN, "shard-2", [record(1, T0)], now=T0)
    tracker.acked(ARN, "shard-1", "1", finished=True)

    assert [lag.shard_id for lag in tracker.snapshot(T0)] == ["shard-2"]
    assert tracker.counts() == {"Orders": (1, 1)}


def test_retention_warning_is_logged_once_when_headroom_drops_below_threshold(caplog):
    tracker = LagTracker(warning_s=6 * 3600)
    caplog.set_level(logging.INFO, logger="bridge.ops.lag")
    tracker.read("Orders", ARN, "shard-1", [record(1, T0)], now=T0 + 60)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]

    late = T0 + 19 * 3600  # 5 h left
    assert [lag.shard_id for lag in tracker.check_retention(late)] == ["shard-1"]
    tracker.check_retention(late + 60)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "shard-1" in warnings[0].getMessage() and "Orders" in warnings[0].getMessage()
    assert "5.0 h" in warnings[0].getMessage()

    tracker.read("Orders", ARN, "shard-1", [], now=late + 61)
    tracker.acked(ARN, "shard-1", "1")
    assert tracker.check_retention(late + 62) == []
    assert "above the threshold again" in caplog.records[-1].getMessage()


def test_creation_time_accepts_boto3_datetimes_and_epoch_numbers():
    aware = dt.datetime(2027, 1, 15, 8, 0, tzinfo=dt.UTC)
    naive = dt.datetime(2027, 1, 15, 8, 0)
    assert creation_time({"dynamodb": {"ApproximateCreationDateTime": aware}}) == aware.timestamp()
    assert creation_time({"dynamodb": {"ApproximateCreationDateTime": naive}}) == aware.timestamp()
    assert creation_time({"dynamodb": {"ApproximateCreationDateTime": 1700000000}}) == 1700000000.0
    assert creation_time({"dynamodb": {}}) is None


def test_worst_lag_and_durations_read_well():
    tracker = LagTracker()
    tracker.read("Orders", ARN, "shard-1", [record(1, T0)], now=T0)
    tracker.read("Orders", ARN, "shard-2", [record(1, T0 + 40)], now=T0)
    assert worst(tracker.snapshot(T0 + 100)) == (100.0, RETENTION_S - 100)
    assert worst([]) == (None, None)
    assert [format_duration(s) for s in (None, 4.25, 750, 86000)] == ["-", "4.2 s", "12.5 min", "23.9 h"]


def test_a_table_forgotten_is_no_longer_reported_nor_warned_about(caplog):
    tracker = LagTracker(warning_s=3600)
    other = ARN.replace("Orders", "Carts")
    tracker.read("Orders", ARN, "shard-1", [record(1, T0)], now=T0 + 10)
    tracker.read("Carts", other, "shard-9", [record(1, T0)], now=T0 + 10)

    tracker.forget("Orders")

    assert [(lag.table, lag.shard_id) for lag in tracker.snapshot(T0 + 20)] == [("Carts", "shard-9")]
    assert tracker.counts() == {"Carts": (1, 0)}
    with caplog.at_level(logging.WARNING):
        tracker.check_retention(now=T0 + RETENTION_S)  # both would be near their trim by now
    assert "Orders" not in caplog.text and "Carts" in caplog.text
