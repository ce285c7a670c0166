"""backoff: full jitter between a floor and a capped exponential bound, for any attempt count."""

from __future__ import annotations

from bridge.backoff import full_jitter


def test_bound_doubles_per_attempt_up_to_the_cap():
    highest = [full_jitter(n, base=0.5, cap=30.0, uniform=lambda low, high: high) for n in (1, 2, 3, 10)]
    assert highest == [1.0, 2.0, 4.0, 30.0]


def test_floor_is_the_lowest_delay():
    assert full_jitter(1, base=0.5, cap=30.0, floor=0.5, uniform=lambda low, high: low) == 0.5


def test_hours_of_retries_never_overflow():
    assert full_jitter(5000, base=0.5, cap=30.0, floor=0.5, uniform=lambda low, high: high) == 30.0
