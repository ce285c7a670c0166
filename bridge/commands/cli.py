"""The `cdc-bridge` command: parses arguments, loads the config and hands over to the module doing the work.

Exit codes: 0 ok, 1 runtime failure, 2 usage or config error (printed without a traceback).
Each subcommand is one `Command` in `COMMANDS`: its help, an example, its arguments and its handler.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

from bridge import __version__
from bridge.errors import BridgeError, ConfigError
from bridge.ops.logs import print_error, setup_logging

log = logging.getLogger("bridge")

EXIT_CODES = "exit codes: 0 ok, 1 runtime failure, 2 usage or config error"
SWITCH_INTERVAL_S = 0.001  # how long a thread holds the GIL while another waits for it (Python: 0.005)


@dataclass(frozen=True)
class Command:
    """One subcommand: `add_arguments` declares its options, `handler` runs it and may return an exit code."""

    name: str
    help: str
    example: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace], int | None]


def _config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="YAML config file")


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    _config_argument(parser)
    parser.add_argument(
        "--until-caught-up",
        action="store_true",
        help="exit 0 once every shard is read to its current end, every snapshot is done and all is checkpointed",
    )
    parser.add_argument(
        "--snapshot",
        action="append",
        default=[],
        metavar="TABLE",
        help="take a new snapshot of TABLE (a configured table; repeat for several) while its stream goes on",
    )


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
    # Start-up objects live for the whole run, and each GetRecords page brings ~10^5 short-lived containers that
    # form no cycles: fewer collections cut the CPU per record by ~18% (bench/README.md, "Garbage collection").
    # Set before the imports and the AWS clients, which would otherwise run a young collection every few
    # hundred objects they make, nearly all of which live for the whole run.
    gc.set_threshold(100_000, 50, 100)
    from bridge.config import load_config
    from bridge.pipeline import Pipeline
    from bridge.source.catalog import TableCatalog

    config = load_config(args.config)
    names = {table.name for table in config.tables}
    discover = TableCatalog.of(config, None) if config.discover.enabled else None
    for name in args.snapshot:
        if name not in names and not (discover and discover.matches(name)):
            patterns = " or one `discover` finds" if discover else ""
            raise ConfigError(
                f"--snapshot {name}: no such table in {args.config} (tables: {', '.join(sorted(names))}{patterns})"
            )
    pipeline = Pipeline(config, snapshot=args.snapshot)
    _install_signal_handlers(pipeline)
    gc.freeze()  # the start-up objects: never walked again
    # The pipeline thread is CPU-bound; the Scan, GetRecords and Kafka network threads need the GIL for short
    # turns between their I/O. With the default 5 ms switch interval each turn waits up to 5 ms, so pages,
    # watermarks and acknowledgements come late and the pipeline stalls: 1 ms gives the snapshot ~7% more
    # items/s at ~13% less CPU per item, and the stream path the same (bench/README.md, "Switch interval").
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    from bridge.ops.observer import Observer

    with Observer(pipeline.config, pipeline):  # with the tables `discover` found
        pipeline.run(until_caught_up=args.until_caught_up)


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="config/demo.yaml", metavar="FILE", help="config (default: %(default)s)")


def _demo(args: argparse.Namespace) -> None:
    from bridge.commands.demo import run_demo

    run_demo(args.config)


def _validate_arguments(parser: argparse.ArgumentParser) -> None:
    _config_argument(parser)
    parser.add_argument(
        "--connect", action="store_true", help="also check that the DynamoDB tables and Kafka brokers are reachable"
    )


def _validate(args: argparse.Namespace) -> None:
    from bridge.commands.validate import validate

    for line in validate(args.config, connect=args.connect):
        print(line)


def _tail_arguments(parser: argparse.ArgumentParser) -> None:
    _config_argument(parser)
    parser.add_argument("--table", required=True, help="table whose topic is read (topic from the first kafka sink)")
    parser.add_argument("--from-beginning", action="store_true", help="start at the oldest record, not the end")
    parser.add_argument("--max", type=int, metavar="N", help="exit after N records")
    parser.add_argument("--exit-at-end", action="store_true", help="exit once the end of the topic is reached")
    parser.add_argument("--format", choices=["json", "pretty"], default="json", help="as the stdout sink's `format`")
    parser.add_argument(
        "--fields", default="", metavar="A,B", help="comma-separated dotted paths to show (op,key,after.Model)"
    )


def _tail(args: argparse.Namespace) -> None:
    from bridge.commands.tail import tail
    from bridge.config import load_config
    from bridge.sinks.render import check_fields

    fields = [f.strip() for f in args.fields.split(",") if f.strip()]
    problem = check_fields(fields)
    if problem:
        raise ConfigError(f"--fields: {problem}")
    if args.max is not None and args.max < 1:
        raise ConfigError(f"--max: expected a number >= 1, got {args.max}")
    config = load_config(args.config)
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends a tail normally
        tail(
            config,
            args.table,
            sys.stdout,
            from_beginning=args.from_beginning,
            max_events=args.max,
            exit_at_end=args.exit_at_end,
            pretty=args.format == "pretty",
            fields=fields,
            colour=colour,
        )


def _checkpoints_arguments(parser: argparse.ArgumentParser) -> None:
    _config_argument(parser)
    parser.add_argument(
        "--copy-to",
        choices=["kafka"],
        help="copy the checkpoint file into the (empty) Kafka checkpoint topic, then set `checkpoint.store: kafka`",
    )


def _checkpoints(args: argparse.Namespace) -> None:
    from bridge.commands.checkpoints import checkpoint_rows, copy_to_kafka, format_table, stored_in
    from bridge.config import load_config

    config = load_config(args.config)
    if args.copy_to:
        print(copy_to_kafka(config))
        return
    rows = checkpoint_rows(config)
    if not rows:
        print(f"no checkpoints yet in {stored_in(config)}", file=sys.stderr)
        return
    sys.stdout.write(format_table(rows))


def _schema_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=["infer"], help="infer: propose a typed item schema")
    _config_argument(parser)
    parser.add_argument("--table", help="table name as in the config (with --register/--check: all when unset)")
    parser.add_argument("--limit", type=int, default=1000, help="with infer: items to scan (default: %(default)s)")
    registry = parser.add_mutually_exclusive_group()
    registry.add_argument(
        "--register", action="store_true", help="register the writer schemas in schema_registry (no bridge run)"
    )
    registry.add_argument(
        "--check", action="store_true", help="ask schema_registry whether the writer schemas are compatible"
    )


def _schema(args: argparse.Namespace) -> None:
    from bridge.commands.schema import registry_command, schema_command

    if args.register or args.check:
        if args.action == "infer":
            raise ConfigError("schema infer proposes an item schema; --register and --check take none")
        registry_command(args.config, args.table, sys.stdout, check=args.check)
        return
    schema_command(args.config, args.table, sys.stdout, infer=args.action == "infer", limit=args.limit)


def _status_arguments(parser: argparse.ArgumentParser) -> None:
    _config_argument(parser)
    parser.add_argument("--format", choices=["text", "json"], default="text", help="a table, or JSON")


def _status(args: argparse.Namespace) -> None:
    from bridge.commands.status import run_status
    from bridge.config import load_config

    print(run_status(load_config(args.config), args.format))


COMMANDS: list[Command] = [
    Command(
        "run",
        "replicate the tables of a config file until stopped (Ctrl-C / SIGTERM drain and exit 0)",
        "cdc-bridge run --config config/local.yaml\n  cdc-bridge run --config config/local.yaml --until-caught-up",
        _run_arguments,
        _run,
    ),
    Command(
        "demo",
        "run on an in-process DynamoDB with the Phones example table, printing changes to stdout",
        "cdc-bridge demo",
        _demo_arguments,
        _demo,
    ),
    Command(
        "validate",
        "check a config file (and its schema files); with --connect also DynamoDB tables and Kafka brokers",
        "cdc-bridge validate --config config/example.yaml\n  cdc-bridge validate --config config/local.yaml --connect",
        _validate_arguments,
        _validate,
    ),
    Command(
        "tail",
        "print the decoded records of a table's Kafka topic, like the stdout sink prints them",
        "cdc-bridge tail --config config/local.yaml --table Phones --from-beginning --max 6\n"
        "  cdc-bridge tail --config config/local.yaml --table Phones --fields op,key,after.Size",
        _tail_arguments,
        _tail,
    ),
    Command(
        "checkpoints",
        "show the stored checkpoint of every shard (stream, shard, sequence number, finished)",
        "cdc-bridge checkpoints --config config/local.yaml\n"
        "  cdc-bridge checkpoints --config config/local.yaml --copy-to kafka",
        _checkpoints_arguments,
        _checkpoints,
    ),
    Command(
        "status",
        "per table and shard: checkpoint, iterator age, retention headroom, finished (checkpoint + live stream)",
        "cdc-bridge status --config config/local.yaml\n  cdc-bridge status --config config/local.yaml --format json",
        _status_arguments,
        _status,
    ),
    Command(
        "schema",
        "print the exact Avro writer schema of a table; `schema infer` proposes a typed item schema; "
        "--register / --check push the writer schemas to the schema registry or check their compatibility",
        "cdc-bridge schema --config config/local.yaml --table Phones\n"
        "  cdc-bridge schema infer --config config/local.yaml --table Phones --limit 500\n"
        "  cdc-bridge schema --config config/local.yaml --check",
        _schema_arguments,
        _schema,
    ),
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdc-bridge",
        description="Replicate DynamoDB Streams to Kafka as Avro records. Config reference: docs/config.md",
        epilog="example:\n  cdc-bridge run --config config/local.yaml\n\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cdc-bridge {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (logs go to stderr)",
    )
    parser.add_argument(
        "--log-format", default="text", choices=["text", "json"], help="text lines, or one JSON object per line"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        sub = commands.add_parser(
            command.name,
            help=command.help,
            description=command.help,
            epilog=f"example:\n  {command.example}\n\n{EXIT_CODES}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(sub)
        sub.set_defaults(handler=command.handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line `argv` (default: `sys.argv[1:]`); returns the exit code."""
    args = _parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        code = args.handler(args)
    except ConfigError as error:
        print_error(f"cdc-bridge: config error: {error}")
        return 2
    except BridgeError as error:
        print_error(f"cdc-bridge: error: {error}")
        return 1
    return code or 0
