"""Encoding of change events: Avro envelopes for Kafka, exact JSON text for people, Kafka keys.

A downstream Python consumer needs only `decode_value(kafka_value)`; `SCHEMAS` is the fingerprint lookup
it uses (add a folder of your own `.avsc` files with `SCHEMAS.add_folder(path)`).
"""

from bridge.codec.avro import EnvelopeCodec, decode_value, encode_event
from bridge.codec.lookup import SCHEMAS, SchemaLookup, fingerprint

__all__ = ["SCHEMAS", "EnvelopeCodec", "SchemaLookup", "decode_value", "encode_event", "fingerprint"]
