"""The `fingerprint -> writer schema` lookup that lets a consumer decode single-object values with no registry.

It knows the generic envelope and the envelope derived from every item schema shipped in `schemas/`,
every schema a codec of this process writes with (`register`), and the schemas of any folder a consumer
adds (`add_folder`). Fingerprints are CRC-64-AVRO of the schema's Parsing Canonical Form, which leaves out
`doc`, defaults and logical types: two schemas that differ only there share a fingerprint, and the one
registered last wins (keep such variants out of one folder).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import fastavro
from fastavro.schema import to_parsing_canonical_form

from bridge.codec.item_schema import generic_envelope_json, is_envelope, shipped_schemas, typed_envelope_json

_CRC64_POLY = 0xC15D213AA4D7A795


def _crc64_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_POLY & -(fp & 1))
        table.append(fp)
    return table


_CRC64 = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """The Avro spec's 64-bit Rabin fingerprint (CRC-64-AVRO) of `data`."""
    fp = _CRC64_POLY
    for byte in data:
        fp = (fp >> 8) ^ _CRC64[(fp ^ byte) & 0xFF]
    return fp


def fingerprint(schema: dict) -> bytes:
    """The 8-byte little-endian fingerprint of a schema (JSON object or parsed), as single-object encoding writes it."""
    canonical = to_parsing_canonical_form(schema).encode()
    return crc64_avro(canonical).to_bytes(8, "little")


class SchemaLookup:
    """Writer schemas by fingerprint: envelope JSON objects in, parsed schemas out. Thread-safe."""

    def __init__(self) -> None:
        self._schemas: dict[bytes, dict] = {}
        self._lock = threading.Lock()

    def register(self, envelope: dict) -> tuple[bytes, dict]:
        """Add an envelope schema (JSON object); returns its fingerprint and the parsed schema."""
        parsed = fastavro.parse_schema(envelope)
        key = fingerprint(parsed)
        with self._lock:
            self._schemas[key] = parsed
        return key, parsed

    def add_schema(self, schema: dict, name: str = "<schema>") -> bytes:
        """Add an envelope, or the envelope derived from an item record schema; returns its fingerprint."""
        envelope = schema if is_envelope(schema) else typed_envelope_json(schema, name)
        return self.register(envelope)[0]

    def add_folder(self, folder: str | Path) -> list[bytes]:
        """Add every `.avsc` file of `folder` (envelopes and item schemas); returns their fingerprints."""
        return [
            self.add_schema(json.loads(path.read_text()), str(path)) for path in sorted(Path(folder).glob("*.avsc"))
        ]

    def find(self, key: bytes) -> dict | None:
        """The parsed writer schema with fingerprint `key`, or None."""
        with self._lock:
            return self._schemas.get(key)


def _shipped() -> SchemaLookup:
    lookup = SchemaLookup()
    lookup.register(generic_envelope_json())
    for name, schema in shipped_schemas():
        lookup.add_schema(schema, name)
    return lookup


SCHEMAS = _shipped()
"""The process-wide lookup used by `decode_value`: shipped schemas plus those registered since."""
