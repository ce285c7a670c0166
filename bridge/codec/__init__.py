"""Encoding of change events: Avro envelopes for Kafka, exact JSON text for people, Kafka keys."""

from bridge.codec.avro import EnvelopeCodec, decode_value, encode_event

__all__ = ["EnvelopeCodec", "decode_value", "encode_event"]
