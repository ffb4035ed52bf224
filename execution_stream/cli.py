"""`execution-stream`: the one command line of the service (a contract: see README)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence

from execution_stream.settings import Settings, load_settings

Command = Callable[[argparse.Namespace, Settings], int]


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    arguments = parser.parse_args(argv)
    try:
        settings = load_settings()
        command: Command = arguments.run
        sys.exit(command(arguments, settings))
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:
        print(f"execution-stream {arguments.command}: {error}", file=sys.stderr)
        sys.exit(1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="execution-stream", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init", help="create the topics and the table (safe to run twice)").set_defaults(
        run=_init
    )
    dev = commands.add_parser("dev", help="run everything on a local Kafka broker and DynamoDB endpoint")
    dev.add_argument("--work-dir", help="where the local broker and endpoint keep data and logs")
    dev.add_argument(
        "--env", action="store_true", help="print the running dev stack's environment (to source)"
    )
    dev.set_defaults(run=_dev)
    commands.add_parser("api", help="serve the HTTP API until Ctrl-C or SIGTERM").set_defaults(run=_api)
    commands.add_parser("worker", help="run the stream worker (every agent)").set_defaults(run=_worker)
    lag = commands.add_parser("lag", help="print consumer lag per group, topic and partition")
    lag.add_argument("--group", action="append", help="a consumer group (repeatable; default: the worker's)")
    lag.add_argument("--json", action="store_true", help="one JSON document per report, on one line")
    lag.add_argument("--watch", type=float, metavar="N", help="refresh every N seconds until Ctrl-C")
    lag.add_argument("--count", type=int, metavar="K", help="with --watch: stop after K reports")
    lag.add_argument("--window", type=int, default=10, metavar="K", help="observations the status judges")
    lag.add_argument("--fetch-timeout", type=float, default=5.0, metavar="S", help="time-lag fetch timeout")
    lag.set_defaults(run=_lag)
    return parser


def _init(arguments: argparse.Namespace, settings: Settings) -> int:
    from execution_stream.provisioning import provision  # noqa: PLC0415 - keeps --help fast

    for line in asyncio.run(provision(settings)):
        print(line)
    return 0


def _dev(arguments: argparse.Namespace, settings: Settings) -> int:
    if arguments.env:
        from execution_stream.dev_stack.dev_env_file import running_dev_environment  # noqa: PLC0415

        print(running_dev_environment(settings.dev_env_file), end="")
        return 0
    from execution_stream.dev import run_dev  # noqa: PLC0415

    return run_dev(settings, arguments.work_dir)


def _api(arguments: argparse.Namespace, settings: Settings) -> int:
    from execution_stream.api.server import run_api  # noqa: PLC0415

    return run_api(settings)


def _worker(arguments: argparse.Namespace, settings: Settings) -> int:
    from execution_stream.streaming.worker import run_worker  # noqa: PLC0415

    return run_worker(settings)


def _lag(arguments: argparse.Namespace, settings: Settings) -> int:
    from execution_stream.operations.lag import LagOptions, run_lag  # noqa: PLC0415

    options = LagOptions(
        groups=tuple(arguments.group or [settings.consumer_group]),
        as_json=arguments.json,
        watch_seconds=arguments.watch,
        count=arguments.count,
        window=arguments.window,
        fetch_timeout_seconds=arguments.fetch_timeout,
    )
    return run_lag(settings, options)
