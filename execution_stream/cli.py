"""`execution-stream`: the one command line of the service (a contract: see README)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence

from execution_stream.settings import Settings

Command = Callable[[argparse.Namespace, Settings], int]


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    arguments = parser.parse_args(argv)
    try:
        settings = Settings()
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
    commands.add_parser(
        "init", help="create the topics and the table (safe to run twice)"
    ).set_defaults(run=_init)
    dev = commands.add_parser(
        "dev", help="run everything on a local Kafka broker and DynamoDB endpoint"
    )
    dev.add_argument("--work-dir", help="where the local broker and endpoint keep data and logs")
    dev.set_defaults(run=_dev)
    return parser


def _init(arguments: argparse.Namespace, settings: Settings) -> int:
    from execution_stream.provisioning import provision  # noqa: PLC0415 - keeps --help fast

    for line in asyncio.run(provision(settings)):
        print(line)
    return 0


def _dev(arguments: argparse.Namespace, settings: Settings) -> int:
    from execution_stream.dev import run_dev  # noqa: PLC0415

    return run_dev(settings, arguments.work_dir)
