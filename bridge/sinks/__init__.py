"""Sinks, found by name through the `bridge.sinks` entry-point group (built-in ones too): the plugin API.

Everything a sink needs is importable from here: the contract (`Sink`), what it is given (`TableEncoding`,
`ChangeEvent`, `Position`, `kafka_key`), the per-event refusal (`RejectedEvent`) and the errors it may raise
(`ConfigError`, `RetriableError`, `FatalError`). A third-party package registers its sink the same way the
built-in ones are registered in `pyproject.toml`:

    [project.entry-points."bridge.sinks"]
    s3 = "my_package.sink:S3Sink"
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

from bridge.codec.keys import kafka_key
from bridge.errors import ConfigError, FatalError, RejectedEvent, RetriableError
from bridge.normalize import ChangeEvent, Position
from bridge.sinks.base import Sink, TableEncoding

__all__ = [
    "ChangeEvent",
    "ConfigError",
    "FatalError",
    "Position",
    "RejectedEvent",
    "RetriableError",
    "Sink",
    "TableEncoding",
    "builtin_sink_names",
    "kafka_key",
    "load_sink",
    "sink_names",
]


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group="bridge.sinks")}


def sink_names() -> list[str]:
    """The `type:` names of every registered sink, sorted (nothing is imported)."""
    return sorted(_entry_points())


def builtin_sink_names() -> list[str]:
    """The sinks that ship with cdc-bridge (the ones `docs/config.md` documents)."""
    return sorted(name for name, ep in _entry_points().items() if ep.value.startswith("bridge."))


@cache
def load_sink(name: str) -> type[Sink]:
    """The sink class registered as `name`; a plugin that fails to import or breaks the contract is a ConfigError."""
    entry = _entry_points().get(name)
    if entry is None:
        raise ConfigError(f"no sink is registered as {name!r}; known: {', '.join(sink_names())}")
    try:
        sink_class = entry.load()
    except Exception as error:  # a broken third-party package must not crash with a traceback
        raise ConfigError(f"sink {name!r} ({entry.value}) cannot be imported: {error!r}") from None
    config = getattr(sink_class, "Config", None)
    if not (isinstance(sink_class, type) and issubclass(sink_class, Sink) and isinstance(config, type)):
        raise ConfigError(
            f"sink {name!r} ({entry.value}) is not a bridge.sinks.Sink subclass with a `Config` dataclass"
        )
    return sink_class
