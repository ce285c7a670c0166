"""Where the bridge's time goes: the end-to-end run under py-spy, samples summed per pipeline stage.

`python -m bench.profile [--records 50000]` starts a Kafka broker and the local AWS endpoint, runs
`python -m bridge run --until-caught-up` under `py-spy record --gil` (only the thread holding the GIL is
sampled, so the figures are shares of the one core Python code can use) and prints the share of each stage
and the hottest functions. Each sample is charged to the innermost frame that belongs to a known stage.
`--snapshot` profiles the snapshot benchmark's run instead (`--records` items in the table, an idle stream,
`snapshot: initial_only`); `--exactly-once` runs the bridge with `delivery: exactly_once` (the end-to-end
benchmark's exactly-once row).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench import corpus, endtoend
from bench.process import Service, measure, python

# (stage, markers of frames that belong to it); the first stage with a marker in the innermost frame wins
STAGES = [
    ("read: JSON parse of GetRecords pages (orjson)", ("rawbody.py",)),
    ("read: JSON parse of Scan pages (orjson)", ("scanbody.py",)),
    ("read: Scan threads (bridge/source/scan.py)", ("bridge/source/scan.py",)),
    ("snapshot handoff (bridge/snapshots.py, bridge/source/snapshot.py)", ("bridge/snapshots.py", "snapshot.py")),
    ("read: botocore (request, signing, parsing)", ("botocore/",)),
    ("read: HTTP (http.client, urllib3, sockets)", ("urllib3/", "http/client.py", "socket.py", "ssl.py")),
    ("read: scheduling (bridge/source)", ("bridge/source/",)),
    ("normalize (bridge/normalize.py)", ("bridge/normalize.py",)),
    ("encode: Avro (bridge/codec)", ("bridge/codec/",)),
    ("produce: kafka-python (send, batching, network)", ("kafka/",)),
    ("transaction (bridge/sinks/transaction.py)", ("bridge/sinks/transaction.py",)),
    ("produce: Kafka sink (bridge/sinks)", ("bridge/sinks/",)),
    ("checkpoint", ("bridge/checkpoint.py", "bridge/checkpoint_kafka.py")),
    ("pipeline loop and route", ("bridge/pipeline.py", "bridge/route.py", "bridge/filters.py", "bridge/poison.py")),
    ("start-up (imports)", ("importlib", "<frozen")),
]


def stage_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for stage, markers in STAGES:
            if any(marker in frame for marker in markers):
                return stage
    return "other"


def summarize(raw: Path, top: int = 15) -> str:
    stages: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        frames = stack.split(";")
        stages[stage_of(frames)] += int(count)
        functions[frames[-1]] += int(count)
        total += int(count)
    lines = [f"{total} samples of the thread holding the GIL", "", "share  stage"]
    lines += [f"{n / total:6.1%}  {stage}" for stage, n in stages.most_common()]
    lines += ["", "share  innermost function"]
    lines += [f"{n / total:6.1%}  {name}" for name, n in functions.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Profile the end-to-end bridge run with py-spy.")
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=100, help="samples per second")
    parser.add_argument("--snapshot", action="store_true", help="profile the snapshot of a table of --records items")
    parser.add_argument("--exactly-once", action="store_true", help="the bridge with delivery: exactly_once")
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed: pip install -e '.[bench]'")
    from tests.services import KafkaBroker

    with tempfile.TemporaryDirectory(prefix="cdc-profile-") as temp:
        workdir = Path(temp)
        broker = KafkaBroker(workdir, partitions=endtoend.PARTITIONS)
        broker.start()
        if args.snapshot:
            server = Service(python("-m", "bench.fakeaws", "--records", "0", "--items", str(args.records)))
        else:
            server = Service(python("-m", "bench.fakeaws", "--records", str(args.records)))
        try:
            if args.exactly_once:
                endtoend.warm_transactions(broker.bootstrap)
            config = endtoend.bridge_config(
                workdir,
                f"http://127.0.0.1:{server.port}",
                broker.bootstrap,
                f"profile-{corpus.TABLE}",
                table={"snapshot": "initial_only"} if args.snapshot else None,
                exactly_once=args.exactly_once,
            )
            raw = workdir / "profile.txt"
            bridge = python("-m", "bridge", "--log-level", "WARNING", "run", "--config", str(config))
            if not args.snapshot:
                bridge.append("--until-caught-up")
            spied = [spy, "record", "--gil", "--threads", "--format", "raw", "--rate", str(args.rate), "-o", str(raw)]
            run = measure([*spied, "--", *bridge])
            if run.returncode != 0:
                raise SystemExit(f"the profiled run failed:\n{run.stderr[-3000:]}")
            print(
                f"{args.records} {'items' if args.snapshot else 'records'} in {run.wall_s:.1f} s "
                f"({args.records / run.wall_s:.0f}/s under py-spy)"
            )
            print(summarize(raw))
        finally:
            server.stop()
            broker.stop()


if __name__ == "__main__":
    main()
