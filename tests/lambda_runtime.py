"""The bridge's Lambda handler in AWS's own runtime: `aws-lambda-rie` (the runtime interface emulator, built
by `make lambda-rie` into stack/.lambda) running `python -m awslambdaric bridge.aws_lambda.handler`, and a
stand-in for the event source mapping, which the emulator does not have: it reads a table's stream from moto,
shapes the records as the ESM's event does, posts them in shard order and resumes from reported failures.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import boto3

from tests.dynamo_values import as_stream_json
from tests.services import ROOT, ServiceError, _die_with_parent, _stop, _tail, _wait_for_port, free_port

RIE = Path(os.environ.get("AWS_LAMBDA_RIE") or ROOT / "stack" / ".lambda" / "aws-lambda-rie")
INVOCATIONS = "/2015-03-31/functions/function/invocations"


@dataclass(frozen=True)
class Invocation:
    """One invocation's answer: the handler's return value, or its error (`errorType`, `errorMessage`)."""

    payload: dict
    error: bool

    @property
    def failures(self) -> list[str]:
        """The sequence numbers of `batchItemFailures`."""
        return [item["itemIdentifier"] for item in self.payload["batchItemFailures"]]


class LambdaFunction:
    """One execution environment of the handler (cold at its first invocation, warm after)."""

    def __init__(self, workdir: Path, config: Path, env: dict[str, str] | None = None, timeout_s: int = 60) -> None:
        if not RIE.is_file():
            raise ServiceError(f"the Lambda runtime interface emulator is missing at {RIE}; run `make lambda-rie` (Go)")
        self.port = free_port()
        self.log = workdir / f"lambda-{self.port}.log"
        self.env = {
            **os.environ,
            "CDC_BRIDGE_CONFIG": str(config),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(timeout_s),
            "AWS_LAMBDA_FUNCTION_NAME": "cdc-bridge",
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> LambdaFunction:
        command = [
            str(RIE),
            "--runtime-interface-emulator-address",
            f"127.0.0.1:{self.port}",
            sys.executable,
            "-m",
            "awslambdaric",
            "bridge.aws_lambda.handler",
        ]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        _wait_for_port(self.port, self.process, timeout, self.log)
        return self

    def invoke(self, event: dict, timeout: float = 120) -> Invocation:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{INVOCATIONS}", data=json.dumps(event).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            payload = json.loads(answer.read() or b"null")
        error = type(payload) is dict and "errorType" in payload
        if not error and (type(payload) is not dict or "batchItemFailures" not in payload):
            raise AssertionError(f"unexpected answer {payload!r}; log:\n{_tail(self.log)}")
        return Invocation(payload, error)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def metric_lines(self) -> list[dict]:
        """The handler's Embedded Metric Format lines, oldest first."""
        lines = []
        for line in self.logs().splitlines():
            start = line.find('{"_aws"')
            if start >= 0:
                lines.append(json.loads(line[start:]))
        return lines

    def stop(self) -> None:
        _stop(self.process)
        self.process = None


def esm_record(record: dict, stream_arn: str) -> dict:
    """A boto3 GetRecords record as the ESM hands it to Lambda: times in epoch seconds, binary as base64,
    `eventSourceARN`, `eventVersion` 1.1, `userIdentity` keys in camel case."""
    data = dict(record["dynamodb"])
    created = data.get("ApproximateCreationDateTime")
    if isinstance(created, dt.datetime):
        data["ApproximateCreationDateTime"] = created.timestamp()
    for name in ("Keys", "NewImage", "OldImage"):
        if name in data:
            data[name] = {key: as_stream_json(value) for key, value in data[name].items()}
    shaped = {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion", "us-east-1"),
        "dynamodb": data,
        "eventSourceARN": stream_arn,
    }
    identity = record.get("userIdentity")
    if identity:
        shaped["userIdentity"] = {"type": identity.get("Type"), "principalId": identity.get("PrincipalId")}
    return shaped


def esm_records(endpoint: str, table: str) -> list[dict]:
    """Every record of the table's stream (moto: one shard), shaped as ESM event records, in stream order."""
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    streams = boto3.client("dynamodbstreams", endpoint_url=endpoint, region_name="us-east-1")
    arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")
        iterator = iterator["ShardIterator"]
        while iterator:
            answer = streams.get_records(ShardIterator=iterator, Limit=1000)
            if not answer["Records"]:
                break
            records += [esm_record(record, arn) for record in answer["Records"]]
            iterator = answer.get("NextShardIterator")
    return records


@dataclass
class EventSourceMapping:
    """Plays the ESM for one shard: batches of `batch_size` records in order; after a reported failure the
    next batch starts at the lowest reported sequence number (what Lambda does with ReportBatchItemFailures)."""

    function: LambdaFunction
    records: list[dict]
    batch_size: int = 100
    position: int = 0
    answers: list[Invocation] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.position >= len(self.records)

    def step(self) -> Invocation:
        """Invoke the function with the next batch and move past what it reports delivered."""
        batch = self.records[self.position : self.position + self.batch_size]
        answer = self.function.invoke({"Records": batch})
        self.answers.append(answer)
        if answer.error:
            return answer
        if not answer.failures:
            self.position += len(batch)
            return answer
        lowest = min(int(sequence) for sequence in answer.failures)
        numbers = [int(record["dynamodb"]["SequenceNumber"]) for record in batch]
        self.position += numbers.index(lowest)
        return answer

    def run(self, max_invocations: int = 1000) -> None:
        """Step until every record is delivered; an invocation error fails the test."""
        for _ in range(max_invocations):
            if self.done:
                return
            answer = self.step()
            if answer.error:
                raise AssertionError(f"the function failed: {answer.payload}")
        raise AssertionError(f"not done after {max_invocations} invocations (at record {self.position})")
