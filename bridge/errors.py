"""The error taxonomy: each class says who handles it and what happens next."""

from __future__ import annotations


class BridgeError(Exception):
    """Base class of every error the bridge raises on purpose."""


class ConfigError(BridgeError):
    """Bad configuration or schema file: the CLI prints it and exits 2, no traceback."""


class FatalError(BridgeError):
    """Cannot go on safely (lost data window, broker refused records): stop, keep the last checkpoint, exit 1."""


class RetriableError(BridgeError):
    """A transient failure (throttling, unreachable endpoint): the caller backs off and tries again."""


class PoisonRecordError(BridgeError):
    """One stream record cannot be normalized or encoded: routed by the table's `on_poison` policy.

    `path` names the attribute or field that is wrong (`Specs.ram`, `after.Price`).
    """

    def __init__(self, reason: str, path: str = "") -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"{path}: {reason}" if path else reason)


class RejectedEvent(PoisonRecordError):
    """A sink cannot take this one event at all (too large, does not encode): raised by `Sink.write`, the
    pipeline routes `event` by its table's `on_poison` and writes the rest of the batch."""

    def __init__(self, event, reason: str, path: str = "") -> None:
        super().__init__(reason, path)
        self.event = event  # the ChangeEvent, exactly as the sink was given it
