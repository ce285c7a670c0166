"""The C record writer (bridge/codec/csrc/record.c) against kafka-python's own `DefaultRecordBatchBuilder`:
the same batches byte for byte (records, batch header, CRC), the same refusals of a record that does not fit,
the same sizes, and kafka-python's code for any argument of another type."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatchBuilder, DefaultRecordMetadata

from bridge.sinks import kafka_append
from bridge.sinks.kafka_append import install_record_writer, record_append, record_size

assert install_record_writer() or record_append is None  # what the Kafka sink does at its first producer
PYTHON_APPEND = getattr(DefaultRecordBatchBuilder.append, "__wrapped__", DefaultRecordBatchBuilder.append)
STATE = ("_first_timestamp", "_max_timestamp", "_num_records", "_last_offset", "_batch_size")


def test_the_install_compiled_the_c_record_writer():
    assert record_append is not None, "bridge/codec/csrc/ was not built: is a C compiler installed?"
    assert DefaultRecordBatchBuilder.append.c_writer
    assert install_record_writer() and DefaultRecordBatchBuilder.append.__wrapped__ is PYTHON_APPEND  # once only


def _builder(batch_size: int) -> DefaultRecordBatchBuilder:
    return DefaultRecordBatchBuilder(2, 0, False, 4711, 3, 100, batch_size)


def _append_all(append, records, batch_size: int) -> tuple[list, bytes, tuple]:
    builder = _builder(batch_size)
    results = []
    for offset, (timestamp, key, value, headers) in enumerate(records):
        try:
            written = append(builder, offset, timestamp, key, value, headers)
        except Exception as error:  # the same refusal from both: the same type
            results.append(type(error))
            continue
        results.append(None if written is None else (written.offset, written.size, written.timestamp))
    state = tuple(getattr(builder, name) for name in STATE)
    return results, _built(builder), state


def _built(builder: DefaultRecordBatchBuilder) -> bytes | type:
    try:
        return bytes(builder.build())
    except Exception as error:  # kafka-python's header cannot hold the value (struct.error): the same from both
        return type(error)


large = st.builds(lambda size, byte: bytes([byte]) * size, st.integers(128, 20_000), st.integers(0, 255))
fields = st.one_of(st.none(), st.binary(max_size=300), large)  # large: varint lengths of 2 and 3 bytes
headers = st.lists(st.tuples(st.text(max_size=20), st.one_of(st.none(), st.binary(max_size=200))), max_size=8)
timestamps = st.one_of(st.none(), st.integers(0, 2**45), st.integers(-(2**63), 2**63 - 1))
records = st.lists(st.tuples(timestamps, fields, fields, headers), min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(records, st.integers(61, 60_000))
def test_batches_are_kafka_pythons_byte_for_byte(records, batch_size):
    records = [(1_700_000_000_000 if t is None else t, k, v, h) for t, k, v, h in records]  # one clock reading
    assert _append_all(DefaultRecordBatchBuilder.append, records, batch_size) == _append_all(
        PYTHON_APPEND, records, batch_size
    )


@given(fields, fields, headers)
def test_record_sizes_are_kafka_pythons(key, value, record_headers):
    assert record_size(key, value, record_headers) == DefaultRecordBatchBuilder.size_of(key, value, record_headers)


OTHER_ARGUMENTS = [
    ("a bytearray value", 0, 1, b"k", bytearray(b"v"), []),
    ("a memoryview key", 0, 1, memoryview(b"k"), b"v", []),
    ("headers as a tuple", 0, 1, b"k", b"v", (("op", b"r"),)),
    ("a header value as a bytearray", 0, 1, b"k", b"v", [("op", bytearray(b"r"))]),
    ("a header as a list", 0, 1, b"k", b"v", [["op", b"r"]]),
    ("a header name with a lone surrogate", 0, 1, b"k", b"v", [("\ud800", b"r")]),
    ("a bool offset", True, 1, b"k", b"v", []),
    ("an offset beyond 64 bits", 2**64, 1, b"k", b"v", []),
    ("a str value", 0, 1, b"k", "v", []),
]


@pytest.mark.parametrize(("offset", "timestamp", "key", "value", "record_headers"), [a[1:] for a in OTHER_ARGUMENTS])
def test_other_argument_types_get_kafka_pythons_code(offset, timestamp, key, value, record_headers):
    assert record_append(_builder(10_000), offset, timestamp, key, value, record_headers, DefaultRecordMetadata) is (
        NotImplemented
    )
    records = [(timestamp, key, value, record_headers)]
    ours = _outcome(DefaultRecordBatchBuilder.append, offset, records)
    assert ours == _outcome(PYTHON_APPEND, offset, records)


def _outcome(append, offset, records):
    builder = _builder(10_000)
    try:
        append(builder, offset, *records[0])
    except Exception as error:
        return type(error)
    return _built(builder)


def test_a_kafka_python_whose_builder_differs_keeps_its_own(monkeypatch):
    monkeypatch.setattr(DefaultRecordBatchBuilder, "append", PYTHON_APPEND)
    monkeypatch.setattr(kafka_append, "_BUILDER_STATE", {*kafka_append._BUILDER_STATE, "_records_written"})

    assert install_record_writer() is False
    assert DefaultRecordBatchBuilder.append is PYTHON_APPEND


@pytest.mark.parametrize("room", [0, -1])
def test_a_record_that_fills_the_batch_exactly_fits_and_one_byte_more_does_not(room):
    two = [(1_000, b"k1", b"v" * 500, [("op", b"r")]), (1_005, b"k2", b"w" * 700, [("op", b"u")])]
    exact = len(_append_all(PYTHON_APPEND, two, 1 << 30)[1])
    ours = _append_all(DefaultRecordBatchBuilder.append, two, exact + room)
    theirs = _append_all(PYTHON_APPEND, two, exact + room)
    assert ours == theirs
    assert (ours[0][1] is None) is (room < 0)
