"""Exact JSON text of plain values: Decimals print with every stored digit, bytes as base64."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

_string = json.encoder.encode_basestring


def dumps(value: Any, indent: int | None = None) -> str:
    """`value` as JSON; numbers exactly as stored (no float rounding); `indent` pretty-prints."""
    parts: list[str] = []
    _write(value, parts, indent, 0)
    return "".join(parts)


def _write(value: Any, out: list[str], indent: int | None, depth: int) -> None:
    kind = type(value)
    if kind is str:
        out.append(_string(value))
    elif value is None:
        out.append("null")
    elif kind is bool:
        out.append("true" if value else "false")
    elif kind is int or kind is Decimal:
        out.append(str(value))
    elif kind is float:
        out.append(json.dumps(value))
    elif kind is bytes:
        out.append(_string(base64.b64encode(value).decode()))
    elif isinstance(value, dict):
        _container("{", "}", [(k, v) for k, v in value.items()], out, indent, depth)
    elif isinstance(value, list | tuple):
        _container("[", "]", [(None, v) for v in value], out, indent, depth)
    else:
        raise TypeError(f"cannot write {kind.__name__} as JSON")


def _container(open_: str, close: str, entries: list, out: list[str], indent: int | None, depth: int) -> None:
    if not entries:
        out.append(open_ + close)
        return
    inner = "\n" + " " * (indent * (depth + 1)) if indent else ""
    out.append(open_)
    for index, (key, value) in enumerate(entries):
        if index:
            out.append(",")
        out.append(inner)
        if key is not None:
            out.append(_string(str(key)) + (": " if indent else ":"))
        _write(value, out, indent, depth + 1)
    out.append("\n" + " " * (indent * depth) + close if indent else close)
