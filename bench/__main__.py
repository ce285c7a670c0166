"""`python -m bench`: every benchmark of bench/README.md, one table on stdout, figures in bench/results.json.

Environment knobs (defaults are the specified benchmark; smaller values are for development only):
`BENCH_RECORDS` (100000) corpus of the codec and end-to-end runs and items of the snapshot's table,
`BENCH_MEMORY_RECORDS` (400000) the large backlog and the large table, `BENCH_BASELINE_RECORDS` (10000) records
(items) for the three slow baselines, `BENCH_LATENCY_SECONDS` (60).
`--only codec,end-to-end,memory,latency,snapshot` runs some of them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import endtoend, latency, snapshot
from bench.process import ROOT, environment, python

RESULTS = ROOT / "bench" / "results.json"
PARTS = ("codec", "end-to-end", "memory", "latency", "snapshot")


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _codec_chain(chain: str, records: int) -> dict:
    run = subprocess.run(
        python("-m", "bench.codec", "--chain", chain, "--records", str(records)),
        env=environment(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        raise RuntimeError(f"codec chain {chain} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def _against_rate(result: dict, baseline: dict) -> None:
    """`result`'s rate set beside `baseline`'s, as `ratio`."""
    result["baseline"] = baseline["benchmark"]
    result["baseline_records_per_s"] = baseline["records_per_s"]
    result["ratio"] = round(result["records_per_s"] / baseline["records_per_s"], 2)


def _against_rss(large: dict, small: dict, label: str) -> float:
    """`large`'s peak RSS set beside `small`'s (named `label`); returns the growth."""
    growth = large["peak_rss_mb"] / small["peak_rss_mb"] - 1
    large["baseline"] = label
    large["baseline_peak_rss_mb"] = small["peak_rss_mb"]
    large["rss_growth"] = round(growth, 3)
    return growth


def codec(records: int, baseline_records: int) -> list[dict]:
    chains = ("normalize", "encode", "normalize+encode", "transcode", "naive-json")
    results = [_codec_chain(chain, records) for chain in chains]
    naive = _codec_chain("naive-avro", baseline_records)
    ours = next(r for r in results if r["benchmark"] == "codec/normalize+encode")
    json_chain = next(r for r in results if r["benchmark"] == "codec/naive-json")
    _against_rate(ours, naive)
    ours["target"] = "ratio >= 5 (stretch: >= naive-json)"
    ours["met"] = ours["ratio"] >= 5
    ours["vs_naive_json"] = round(ours["records_per_s"] / json_chain["records_per_s"], 2)
    kafka_path = next(r for r in results if r["benchmark"] == "codec/transcode")
    _against_rate(kafka_path, naive)
    return [*results, naive]


def _broker(workdir: Path):
    sys.path.insert(0, str(ROOT))
    from tests.services import KafkaBroker

    broker = KafkaBroker(workdir, partitions=endtoend.PARTITIONS)
    broker.start()
    return broker


def end_to_end(bootstrap: str, workdir: Path, records: int, baseline_records: int) -> list[dict]:
    """The bridge (at-least-once, single-object values: the defaults), with exactly-once delivery, with the
    Confluent wire format (the fake registry of tests/schema_registry.py), and the plain loop."""
    from tests.schema_registry import FakeRegistry

    bridge = endtoend.run_bridge(bootstrap, records, workdir, "end-to-end/bridge")
    exactly_once = endtoend.run_bridge(bootstrap, records, workdir, "end-to-end/exactly-once", exactly_once=True)
    registry = FakeRegistry()
    registry.start()
    try:
        confluent = endtoend.run_bridge(bootstrap, records, workdir, "end-to-end/confluent", registry=registry.url)
        registrations = registry.count("/subjects/*/versions", "POST")
    finally:
        registry.stop()
    if registrations != 1:
        raise RuntimeError(f"the confluent run registered {registrations} schemas, expected its one table's")
    plain = endtoend.run_plain_loop(bootstrap, baseline_records)
    _against_rate(bridge, plain)
    bridge["target"] = "ratio >= 5 and >= 6000 records/s"
    bridge["met"] = bridge["ratio"] >= 5 and bridge["records_per_s"] >= 6000
    _against_rate(exactly_once, bridge)
    exactly_once["target"] = "ratio >= 0.8 (of at-least-once)"
    exactly_once["met"] = exactly_once["ratio"] >= 0.8
    _against_rate(confluent, bridge)
    confluent["target"] = "ratio >= 0.95 (of single-object)"
    confluent["met"] = confluent["ratio"] >= 0.95
    return [bridge, exactly_once, confluent, plain]


def memory(bootstrap: str, workdir: Path, small: dict | None, records: int, large_records: int) -> list[dict]:
    small = small or endtoend.run_bridge(bootstrap, records, workdir, "end-to-end/bridge")
    large = endtoend.run_bridge(bootstrap, large_records, workdir, f"memory/bridge-{large_records}")
    growth = _against_rss(large, small, f"bridge with {small['records']} records")
    large["target"] = "peak RSS <= 300 MB, within 10% of the smaller backlog"
    large["met"] = max(large["peak_rss_mb"], small["peak_rss_mb"]) <= 300 and abs(growth) <= 0.10
    return [large]


def snapshot_rows(bootstrap: str, workdir: Path, items: int, baseline_items: int, large_items: int) -> list[dict]:
    bridge = snapshot.run_bridge(bootstrap, items, workdir, "snapshot/bridge")
    naive = snapshot.run_naive_loop(bootstrap, baseline_items)
    _against_rate(bridge, naive)
    bridge["target"] = "ratio >= 10 and >= 10000 items/s"
    bridge["met"] = bridge["ratio"] >= 10 and bridge["records_per_s"] >= 10_000
    large = snapshot.run_bridge(bootstrap, large_items, workdir, f"snapshot/bridge-{large_items}")
    growth = _against_rss(large, bridge, f"bridge with {items} items")
    large["target"] = "peak RSS within 10% of the smaller table"
    large["met"] = abs(growth) <= 0.10
    return [bridge, naive, large]


def measure_latency(bootstrap: str, workdir: Path) -> list[dict]:
    """Latency at-least-once (the default), then with exactly-once delivery (read_committed, default interval)."""
    rows = []
    for exactly_once, limit_s in ((False, 1.5), (True, 2.0)):
        result = latency.run(bootstrap, workdir, exactly_once=exactly_once)
        result["target"] = f"p99 <= {limit_s:g} s, nothing missing"
        result["met"] = result["p99_s"] <= limit_s and result["missing"] == 0
        rows.append(result)
    return rows


def table(results: list[dict]) -> str:
    header = (
        f"{'benchmark':<28} {'records':>8} {'records/s':>10} {'us/record':>10} {'peak RSS MB':>11}  "
        "vs baseline / target"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        if r["benchmark"].startswith("latency"):
            figures = f"p50 {r['p50_s']} s  p95 {r['p95_s']} s  p99 {r['p99_s']} s  ({r['write_rate_per_s']} writes/s)"
            lines.append(f"{r['benchmark']:<28} {r['records']:>8}  {figures}")
        else:
            lines.append(
                f"{r['benchmark']:<28} {r['records']:>8} {r['records_per_s']:>10} {r['us_per_record']:>10} "
                f"{r['peak_rss_mb']:>11}"
            )
        if "cpu_us_per_record" in r and r["benchmark"].startswith(
            ("end-to-end/bridge", "end-to-end/exactly-once", "end-to-end/confluent", "memory/", "snapshot/bridge")
        ):
            busy = r["cpu_us_per_record"] / r["us_per_record"]
            lines[-1] += f"  CPU {r['cpu_us_per_record']} us/record ({busy:.0%} of a core)"
            if "pacing_limit_records_per_s" in r:
                lines[-1] += f", GetRecords pacing allows {r['pacing_limit_records_per_s']}/s"
        if "ratio" in r:
            lines[-1] += f"  {r['ratio']}x {r['baseline']} ({r['baseline_records_per_s']}/s)"
        if "rss_growth" in r:
            lines[-1] += f"  {r['rss_growth']:+.1%} RSS vs {r['baseline_peak_rss_mb']} MB"
        if "met" in r:
            lines[-1] += f"  [{'met' if r['met'] else 'MISSED'}: {r['target']}]"
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated subset of " + ", ".join(PARTS))
    args = parser.parse_args(argv)
    parts = [p for p in args.only.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    for name, value in environment().items():
        if name.startswith("AWS_"):
            os.environ.setdefault(name, value)
    records = _int("BENCH_RECORDS", 100_000)
    baseline_records = _int("BENCH_BASELINE_RECORDS", 10_000)
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    results: list[dict] = []
    if "codec" in parts:
        results += codec(records, baseline_records)
        print(table(results), flush=True)
    if {"end-to-end", "memory", "latency", "snapshot"} & set(parts):
        with tempfile.TemporaryDirectory(prefix="cdc-bench-") as temp:
            workdir = Path(temp)
            broker = _broker(workdir)
            try:
                small = None
                if "end-to-end" in parts:
                    results += end_to_end(broker.bootstrap, workdir, records, baseline_records)
                    small = next(r for r in results if r["benchmark"] == "end-to-end/bridge")
                if "memory" in parts:
                    results += memory(broker.bootstrap, workdir, small, records, _int("BENCH_MEMORY_RECORDS", 400_000))
                if "latency" in parts:
                    results += measure_latency(broker.bootstrap, workdir)
                if "snapshot" in parts:
                    large = _int("BENCH_MEMORY_RECORDS", 400_000)
                    results += snapshot_rows(broker.bootstrap, workdir, records, baseline_records, large)
            finally:
                broker.stop()
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "duration_s": round(time.monotonic() - started, 1),
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "results": results,
    }
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    print()
    print(table(results))
    load = report["load_average_1min"]
    print(
        f"\n{report['date']}, {report['machine']['cores']} cores, load average {load['before']} -> {load['after']}, "
        f"{report['duration_s']} s; written to {RESULTS}"
    )


if __name__ == "__main__":
    main()
