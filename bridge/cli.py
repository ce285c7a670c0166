"""The `cdc-bridge` command: parses arguments, loads the config, calls the pipeline.

Exit codes: 0 ok, 1 runtime failure, 2 usage or config error (printed without a traceback).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from bridge import __version__
from bridge.errors import BridgeError, ConfigError

log = logging.getLogger("bridge")

EXAMPLES = {
    "run": "example: cdc-bridge run --config config/local.yaml --until-caught-up",
    "demo": "example: cdc-bridge demo",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdc-bridge",
        description="Replicate DynamoDB Streams to Kafka as Avro records.",
        epilog="exit codes: 0 ok, 1 runtime failure, 2 usage or config error",
    )
    parser.add_argument("--version", action="version", version=f"cdc-bridge {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (logs go to stderr)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="replicate the tables of a config file", epilog=EXAMPLES["run"])
    run.add_argument("--config", required=True, help="YAML config file")
    run.add_argument(
        "--until-caught-up",
        action="store_true",
        help="exit 0 once every shard is read to its current end and everything is checkpointed",
    )
    demo = commands.add_parser(
        "demo", help="run on an in-process DynamoDB with the Phones example table", epilog=EXAMPLES["demo"]
    )
    demo.add_argument("--config", default="config/demo.yaml", help="config file (default: %(default)s)")
    return parser


def _install_signal_handlers(pipeline) -> None:
    def handle(signum, frame):
        if pipeline.stop_requested.is_set():
            log.error(
                "second %s: exiting at once; the checkpoint stays before unacknowledged data",
                signal.Signals(signum).name,
            )
            os._exit(128 + signum)
        log.info("%s received: draining (flush sinks, write checkpoint)", signal.Signals(signum).name)
        pipeline.request_stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def _run(args: argparse.Namespace) -> None:
    from bridge.config import load_config
    from bridge.pipeline import Pipeline

    config = load_config(args.config)
    pipeline = Pipeline(config)
    _install_signal_handlers(pipeline)
    pipeline.run(until_caught_up=args.until_caught_up)


def _demo(args: argparse.Namespace) -> None:
    from bridge.demo import run_demo

    run_demo(args.config)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("kafka", "botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        {"run": _run, "demo": _demo}[args.command](args)
    except ConfigError as error:
        print(f"cdc-bridge: config error: {error}", file=sys.stderr)
        return 2
    except BridgeError as error:
        print(f"cdc-bridge: error: {error}", file=sys.stderr)
        return 1
    return 0
