"""The one way tests wait: poll a condition until it holds, or fail naming what was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class TimedOut(AssertionError):
    """`wait_for` gave up: the condition did not hold within the timeout."""


def wait_for(condition: Callable[[], T], timeout: float, what: str, *, interval: float = 0.02) -> T:
    """Call `condition` every `interval` s until it returns something truthy, and return that.

    Raises `TimedOut` naming `what` when it is still falsy at the first check after `timeout` s; an exception
    the condition raises (a process that exited, say) ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimedOut(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def held_within(timeout: float, condition: Callable[[], object], what: str, *, interval: float = 0.02) -> bool:
    """Whether `condition` held within `timeout` s (`wait_for`), for a test that asserts it once its figures are
    in rather than stopping at the first thing that did not happen."""
    try:
        return bool(wait_for(condition, timeout, what, interval=interval))
    except TimedOut:
        return False
