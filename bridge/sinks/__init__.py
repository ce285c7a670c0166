"""Sinks, found by name through the `bridge.sinks` entry-point group (built-in ones too)."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from bridge.sinks.base import Sink, TableEncoding

__all__ = ["Sink", "TableEncoding", "sink_types"]


@cache
def sink_types() -> dict[str, type[Sink]]:
    """Every registered sink class by its `type:` name."""
    return {ep.name: ep.load() for ep in entry_points(group="bridge.sinks")}
