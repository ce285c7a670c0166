"""A table's route decides from what its sinks declare whether images stay raw (transcoded) or are normalized."""

from __future__ import annotations

from bridge.codec.avro import EnvelopeCodec
from bridge.config import TableConfig
from bridge.route import TableRoute
from bridge.sinks import TableEncoding
from tests.stream_harness import MemorySink


class EncodingOnlySink(MemorySink):
    reads_plain_values = False


def _route(**table) -> TableRoute:
    return TableRoute(TableConfig(name="T", **table), TableEncoding(EnvelopeCodec()), ("pk",), "r")


def test_images_stay_raw_only_when_no_sink_reads_plain_values():
    route = _route()
    route.serve([EncodingOnlySink(), EncodingOnlySink()])
    assert route.transcoder is route.encoding.codec.transcoder is not None
    route.serve([EncodingOnlySink(), MemorySink()])
    assert route.transcoder is None
    route.serve([])
    assert route.transcoder is None


def test_excluded_attributes_need_plain_values():
    route = _route(exclude_attributes=("Email",))
    route.serve([EncodingOnlySink()])
    assert route.transcoder is None
