"""The bridge as an AWS Lambda function on DynamoDB Streams' event source mapping (ESM): `handler`.

AWS's poller reads the shards (parents before children), hands one shard's records in order as an event,
and checkpoints what the function reports delivered. The handler is a thin entry point: each record goes
through its table's route (bridge/route.py: normalize, filters, codec, `on_poison`), the events to the
Kafka sink and the dead letters to `<topic>.dlq`, both flushed before it answers. The answer
(`FunctionResponseTypes: ReportBatchItemFailures`) names the first record not delivered; the ESM retries
from it, so a broker away mid-batch neither loses nor skips records: the records before it were
acknowledged, the ones from it on may reach the topic twice (same `event_id` and `sequence_number`).

Cold start (first invocation of an execution environment): the config from `$CDC_BRIDGE_CONFIG`, else
`cdc-bridge.yaml` in `$LAMBDA_TASK_ROOT` (the unpacked package), validated, plus the Lambda rules below;
every table's key names and view type from `DescribeTable`; the producer. All of it stays for the warm
invocations. A bad config fails every invocation with its one-line message.

Lambda rules: exactly one sink, of type `kafka` (there is no stdout or disk worth writing to); dead letters
on Kafka only (no `dead_letter_path`); `delivery: at_least_once` (the ESM's checkpoint is not part of a
Kafka transaction). The stream settings (`source.poll_*`, `start_position`, `snapshot`, `on_trimmed`,
`checkpoint`) are not used: the ESM's `StartingPosition` and retries take their place.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field

from bridge.config import Config, load_config
from bridge.errors import ConfigError, FatalError, RejectedEvent, RetriableError
from bridge.normalize import creation_ms, sequence_number_of
from bridge.pipeline import deliver
from bridge.poison import build_dead_letters
from bridge.route import TableRoute, build_routes
from bridge.sinks import load_sink
from bridge.source.clients import aws_clients
from bridge.source.discovery import describe_table, table_of_stream

log = logging.getLogger(__name__)
CONFIG_ENV = "CDC_BRIDGE_CONFIG"
CONFIG_FILE = "cdc-bridge.yaml"
CHUNK_ENV = "CDC_BRIDGE_LAMBDA_CHUNK_RECORDS"
CHUNK_RECORDS = 250  # records routed, written and flushed together: a failure retries at most this many twice
TIME_MARGIN_S = 2.0  # of the invocation's remaining time, kept for answering after the last flush
SHARD_ID = ""  # the ESM event does not say which shard its records come from
NAMESPACE = "cdc-bridge"


class _Refused(Exception):
    """A sink refused an event of a table whose `on_poison` is `fail`: that record is reported undelivered."""

    def __init__(self, error: RejectedEvent) -> None:
        super().__init__(str(error))
        self.event = error.event


@dataclass
class _Tally:
    """What one invocation did, for its metrics line."""

    records: int = 0
    events: int = 0
    letters: int = 0
    failed: int = 0  # records reported back undelivered (this one and every later one)
    newest_ms: int | None = None
    tables: set[str] = field(default_factory=set)


class LambdaBridge:
    """The warm state of one execution environment: config, routes, the Kafka sink and dead letters."""

    def __init__(self, config: Config, dynamodb=None) -> None:
        """Describe every table (key names, view type) and open the Kafka sink; `RetriableError` when DynamoDB
        or the broker does not answer yet (the next invocation starts over)."""
        self.config = config
        self.chunk = _chunk_records()
        if dynamodb is None:
            dynamodb, _ = aws_clients(config)
        # region "": each event names its own (`awsRegion`), as the ESM may read a stream of another region
        infos = [dataclasses.replace(describe_table(dynamodb, table.name), region="") for table in config.tables]
        self.routes: dict[str, TableRoute] = build_routes(config, infos, dynamodb)
        spec = config.sinks[0]
        encodings = {name: route.encoding for name, route in self.routes.items()}
        self.sink = load_sink(spec.type)(spec.settings, encodings)
        for route in self.routes.values():
            route.serve([self.sink])
        self.dead_letters = build_dead_letters(config)
        try:
            self.sink.open()
            self.dead_letters.open()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.sink.close()
        self.dead_letters.close()

    def handle(self, event: dict, context) -> dict:
        """Route, write and flush the records of one ESM event; the `batchItemFailures` answer."""
        started, cpu = time.monotonic(), time.process_time()
        records = event.get("Records") if type(event) is dict else None
        if type(records) is not list:
            raise FatalError("the Lambda event has no `Records` list: not a DynamoDB Streams event")
        tally = _Tally(records=len(records))
        counts = {name: route.counts.copy() for name, route in self.routes.items()}
        failed_at = self._deliver_all(records, tally, _deadline(context))
        skipped = sum(route.counts["skip"] - counts[name]["skip"] for name, route in self.routes.items())
        failures = []
        if failed_at is not None:
            tally.failed = len(records) - failed_at
            failures = [{"itemIdentifier": _sequence_number(records, failed_at)}]
        _emit_metrics(tally, skipped, time.monotonic() - started, time.process_time() - cpu)
        return {"batchItemFailures": failures}

    def _deliver_all(self, records: list, tally: _Tally, deadline: float) -> int | None:
        """Deliver `records` a chunk at a time; the index of the first one not delivered, None when all were."""
        start = 0
        while start < len(records):
            arn = _stream_arn(records[start])
            end = start + 1
            while end < len(records) and end - start < self.chunk and _stream_arn(records[end]) == arn:
                end += 1
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                log.warning("the invocation's time is up: %d record(s) left for the next one", len(records) - start)
                return start
            failed = self._deliver_chunk(records[start:end], arn, tally, min(timeout, self.config.shutdown_timeout_s))
            if failed is not None:
                return start + failed
            start = end
        return None

    def _deliver_chunk(self, chunk: list, arn: str, tally: _Tally, timeout: float) -> int | None:
        """Route, write and flush `chunk` (records of one stream); the index of the first record not delivered."""
        table = table_of_stream(arn)
        route = self.routes.get(table)
        if route is None:
            raise ConfigError(
                f"records of table {table!r} (stream {arn}) arrived, but the config lists only "
                f"{', '.join(sorted(self.routes))}: add the table to `tables` or remove the event source mapping"
            )
        tally.tables.add(table)
        failed = None
        try:
            try:
                routed = route.route(chunk, arn, SHARD_ID)
                events, letters = routed.events, routed.letters
            except FatalError:  # a poison record under `fail`: find it, deliver what comes before it
                events, letters, failed = _route_until_failure(route, chunk, arn)
            try:
                deliver(
                    events, letters, [self.sink], self.dead_letters, lambda error, sink: _rejected(route, error, sink)
                )
            except _Refused as refused:
                sequence = refused.event.position.sequence_number
                log.error("table %s, sequence number %s: %s (on_poison: fail)", table, sequence, refused)
                failed = next(i for i, record in enumerate(chunk) if sequence_number_of(record) == sequence)
                events = events[: next(i for i, event in enumerate(events) if event is refused.event)]
            self.sink.flush(timeout)
            self.dead_letters.flush(timeout)
        except RetriableError as error:
            log.warning("table %s: not delivered in time (%s); reporting the chunk undelivered", table, error)
            return 0
        tally.events += len(events)
        tally.letters += len(letters)
        for record in chunk[: len(chunk) if failed is None else failed]:
            created = _created_ms(record)
            if created is not None and (tally.newest_ms is None or created > tally.newest_ms):
                tally.newest_ms = created
        return failed


def _route_until_failure(route: TableRoute, chunk: list, arn: str) -> tuple[list, list, int | None]:
    """Route `chunk` one record at a time up to the first one its route fails on (`on_poison: fail`): the
    events and dead letters before it, and its index."""
    events, letters = [], []
    for index, record in enumerate(chunk):
        try:
            routed = route.route([record], arn, SHARD_ID)
        except FatalError as error:
            log.error("%s", error)
            if sequence_number_of(record) is None:  # not reportable: the whole invocation fails
                raise
            return events, letters, index
        events += routed.events
        letters += routed.letters
    return events, letters, None


def _rejected(route: TableRoute, error: RejectedEvent, sink: str):
    """`TableRoute.rejected`, except that `fail` reports the record instead of stopping the function."""
    if route.table.on_poison == "fail":
        raise _Refused(error)
    return route.rejected(error, sink)


def _stream_arn(record) -> str:
    arn = record.get("eventSourceARN") if type(record) is dict else None
    if type(arn) is not str or ":table/" not in arn:
        raise FatalError(f"a record of the Lambda event has no DynamoDB stream `eventSourceARN`: {arn!r}")
    return arn


def _sequence_number(records: list, index: int) -> str:
    sequence = sequence_number_of(records[index])
    if sequence is None:
        raise FatalError(f"record {index} of the batch is not delivered and has no SequenceNumber to report")
    return sequence


def _created_ms(record) -> int | None:
    data = record.get("dynamodb") if type(record) is dict else None
    value = data.get("ApproximateCreationDateTime") if type(data) is dict else None
    try:
        return creation_ms(value) if value is not None else None
    except Exception:
        return None


def _deadline(context) -> float:
    """Monotonic time by which the last flush must end: the invocation's remaining time less a margin."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    seconds = remaining() / 1000 if callable(remaining) else 900.0
    return time.monotonic() + max(0.1, seconds - TIME_MARGIN_S)


def _emit_metrics(tally: _Tally, skipped: int, seconds: float, cpu_seconds: float) -> None:
    """One line in CloudWatch Embedded Metric Format on stdout (Lambda sends it to CloudWatch Logs)."""
    now_ms = int(time.time() * 1000)
    names = [
        ("Records", "Count"),
        ("Events", "Count"),
        ("DeadLetters", "Count"),
        ("Skipped", "Count"),
        ("Failed", "Count"),
        ("DurationMs", "Milliseconds"),
        ("CpuMs", "Milliseconds"),
    ]
    line = {
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [["Table"]], "Metrics": []}],
        },
        "Table": ",".join(sorted(tally.tables)) or "-",
        "Records": tally.records,
        "Events": tally.events,
        "DeadLetters": tally.letters,
        "Skipped": skipped,
        "Failed": tally.failed,
        "DurationMs": round(seconds * 1000, 3),
        "CpuMs": round(cpu_seconds * 1000, 3),
    }
    if tally.newest_ms is not None:
        line["LagMs"] = max(0, now_ms - tally.newest_ms)
        names.append(("LagMs", "Milliseconds"))
    line["_aws"]["CloudWatchMetrics"][0]["Metrics"] = [{"Name": name, "Unit": unit} for name, unit in names]
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def check_lambda_config(config: Config, file: str) -> None:
    """The Lambda rules of the module docstring; `ConfigError` naming the field otherwise."""
    if len(config.sinks) != 1 or config.sinks[0].type != "kafka":
        index = next((i for i, sink in enumerate(config.sinks) if sink.type != "kafka"), 1)
        raise ConfigError(
            f"{file}: sinks[{index}]: on AWS Lambda the bridge writes to exactly one sink, of type kafka (the "
            "stdout and file sinks would write into the function's logs or its temporary disk)"
        )
    if config.delivery != "at_least_once":
        raise ConfigError(
            f"{file}: delivery: `exactly_once` is not supported on AWS Lambda: the event source mapping's "
            "checkpoint cannot be part of a Kafka transaction; use `at_least_once` (consumers deduplicate by "
            "event_id)"
        )
    if config.discover.enabled:
        raise ConfigError(
            f"{file}: discover: on AWS Lambda the event source mappings choose the streams; list each table under "
            "`tables` instead"
        )
    for index, table in enumerate(config.tables):
        if table.dead_letter_path:
            raise ConfigError(
                f"{file}: tables[{index}].dead_letter_path: a Lambda function has no lasting disk; remove it "
                "so dead letters go to the Kafka topic `<topic>.dlq`"
            )


def _chunk_records() -> int:
    """`$CDC_BRIDGE_LAMBDA_CHUNK_RECORDS` (records per flush: fewer, fewer resent after a failure; more, fewer
    round trips to the broker), else `CHUNK_RECORDS`."""
    text = os.environ.get(CHUNK_ENV, "")
    if not text:
        return CHUNK_RECORDS
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"environment variable {CHUNK_ENV}: expected a whole number of records >= 1, got {text!r}")
    return int(text)


def config_path() -> str:
    """`$CDC_BRIDGE_CONFIG`, else `cdc-bridge.yaml` in the function's task root (or the working directory)."""
    return os.environ.get(CONFIG_ENV) or os.path.join(os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd(), CONFIG_FILE)


_bridge: LambdaBridge | None = None
_config_error: str | None = None


def handler(event: dict, context) -> dict:
    """The Lambda entry point (`bridge.aws_lambda.handler`)."""
    global _bridge, _config_error
    if _config_error is not None:
        raise ConfigError(_config_error)
    if _bridge is None:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        try:
            path = config_path()
            config = load_config(path)
            check_lambda_config(config, path)
            _bridge = LambdaBridge(config)
        except ConfigError as error:
            _config_error = str(error)
            log.error("%s", _config_error)
            raise ConfigError(_config_error) from None
        except RetriableError as error:  # DynamoDB or Kafka not answering: the ESM retries the whole batch
            log.warning("not ready: %s; reporting the batch undelivered", error)
            return _undelivered(event)
    try:
        return _bridge.handle(event, context)
    except (FatalError, ConfigError):  # will not heal by retrying here: the next invocation starts cold
        _bridge.close()
        _bridge = None
        raise


def _undelivered(event: dict) -> dict:
    records = event.get("Records") if type(event) is dict else None
    if not records:
        return {"batchItemFailures": []}
    return {"batchItemFailures": [{"itemIdentifier": _sequence_number(records, 0)}]}


def reset() -> None:
    """Forget the warm state (tests, benchmarks)."""
    global _bridge, _config_error
    if _bridge is not None:
        _bridge.close()
    _bridge, _config_error = None, None
