"""Fixtures shared by the unit tests of the stream source (tests/unit/test_stream_source_*.py)."""

from __future__ import annotations

import pytest

from tests.fake_streams import FakeAWS
from tests.stream_harness import Changes


@pytest.fixture
def aws() -> FakeAWS:
    """An empty scripted AWS world."""
    return FakeAWS()


@pytest.fixture
def changes(aws) -> Changes:
    """Changes written to `aws`, remembered in write order."""
    return Changes(aws)
