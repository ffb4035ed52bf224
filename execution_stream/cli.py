"""`execution-stream`: the one command line of the service (a contract: see README)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

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
    publish = commands.add_parser("publish-trigger", help="validate trigger documents, then publish them")
    publish.add_argument("file", metavar="FILE|-", help="JSON document(s): one, an array, or JSON Lines")
    publish.add_argument("--asset", action="store_true", help="asset documents, to the assets topic")
    publish.set_defaults(run=_publish_trigger)
    demo = commands.add_parser("demo", help="triggers become executions on a running `dev` stack")
    demo.add_argument("--env-file", help="the environment file of the running `dev` (default: its own)")
    demo.add_argument("--timeout", type=float, default=120.0, metavar="S", help="give up after S seconds")
    demo.add_argument("--work-seconds", type=float, default=3.0, metavar="S", help="each job's run time")
    demo.set_defaults(run=_demo)
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


def _publish_trigger(arguments: argparse.Namespace, settings: Settings) -> int:
    from execution_stream.operations import publishing  # noqa: PLC0415

    kind = publishing.Kind.ASSET if arguments.asset else publishing.Kind.TRIGGER
    try:
        return publishing.run_publish(settings, arguments.file, kind)
    except publishing.InvalidDocumentsError as invalid:
        for problem in invalid.problems:
            print(f"execution-stream {arguments.command}: {problem}", file=sys.stderr)
        return 1


def _demo(arguments: argparse.Namespace, settings: Settings) -> int:
    from execution_stream.demo.run import DemoOptions, run_demo  # noqa: PLC0415

    options = DemoOptions(
        env_file=Path(arguments.env_file) if arguments.env_file else None,
        timeout_seconds=arguments.timeout,
        work_seconds=arguments.work_seconds,
    )
    return run_demo(settings, options)
