"""How a change event looks to people: the stdout sink, JSON-lines files and `cdc-bridge tail` share it.

An event is shown as the decoded Kafka record: `topic` (when there is one), `key`, then the envelope
(`op`, `keys`, `before`, `after`, `source`, `ts_ms`). `fields` picks parts of it by dotted path
(`op`, `after.Model`, `source.sequence_number`); colour marks field names and the operation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge.codec import text

TOP_LEVEL = ("topic", "key", "op", "keys", "before", "after", "source", "ts_ms")
_RESET = "\x1b[0m"
_NAME = "\x1b[36m"  # cyan
_OPS = {"c": "\x1b[32m", "u": "\x1b[33m", "d": "\x1b[31m", "r": "\x1b[34m"}  # green, yellow, red, blue


def shown_key(key: bytes) -> str | bytes:
    """A Kafka key as text when it is UTF-8 (S and N keys, JSON primary keys), else the raw bytes (base64)."""
    try:
        return key.decode()
    except UnicodeDecodeError:
        return key


def event_view(envelope: dict, key: bytes, topic: str | None = None) -> dict:
    """The shown form of one event: topic, key, then the plain envelope."""
    view: dict[str, Any] = {} if topic is None else {"topic": topic}
    view["key"] = shown_key(key)
    view.update(envelope)
    return view


def check_fields(fields: Sequence[str]) -> str | None:
    """Why `fields` cannot select from an event view, or None when every path starts at a known field."""
    for path in fields:
        head = path.split(".", 1)[0]
        if head not in TOP_LEVEL or not all(path.split(".")):
            return f"field {path!r} is not a dotted path into {', '.join(TOP_LEVEL)}"
    return None


def select(view: dict, fields: Sequence[str]) -> dict:
    """Only the dotted paths `fields` of `view`, nested as in the view; absent attributes are left out."""
    if not fields:
        return view
    out: dict[str, Any] = {}
    for path in fields:
        parts = path.split(".")
        source: Any = view
        target = out
        for depth, part in enumerate(parts):
            if not isinstance(source, dict) or part not in source:
                break
            source = source[part]
            if depth == len(parts) - 1 or not isinstance(source, dict):
                target[part] = source
                break
            target = target.setdefault(part, {})
    return out


def render(view: dict, pretty: bool = False, colour: bool = False) -> str:
    """One event as exact JSON text (numbers as stored, bytes as base64), one line unless `pretty`."""
    if not colour:
        return text.dumps(view, 2 if pretty else None)
    separator, gap = (",\n  ", "\n  ") if pretty else (",", "")
    parts = []
    for name, value in view.items():
        body = text.dumps(value, 2 if pretty else None)
        if pretty:
            body = body.replace("\n", "\n  ")
        if name == "op" and value in _OPS:
            body = _OPS[value] + body + _RESET
        parts.append(f"{_NAME}{text.dumps(name)}{_RESET}:{' ' if pretty else ''}{body}")
    end = "\n" if pretty else ""
    return "{" + gap + separator.join(parts) + end + "}"
