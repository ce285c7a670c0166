"""Exponential backoff with full jitter, shared by stream reads and sink retries."""

from __future__ import annotations

import random
from collections.abc import Callable


def full_jitter(
    attempt: int,
    base: float,
    cap: float,
    floor: float = 0.0,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """A delay uniform in [floor, min(cap, base * 2 ** attempt)]; the exponent is bounded, so any attempt works."""
    return uniform(floor, max(floor, min(cap, base * 2 ** min(attempt, 32))))
