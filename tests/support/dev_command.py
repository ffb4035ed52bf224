"""`execution-stream dev` as a process, as a user starts it: its environment, its ready line, its stop."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

READY_TIMEOUT_SECONDS = 120
STACK_VARIABLES = (
    "EXECUTION_STREAM_KAFKA_BOOTSTRAP_SERVERS",
    "EXECUTION_STREAM_DYNAMODB_ENDPOINT_URL",
    "EXECUTION_STREAM_DEV_ENV_FILE",
)


def environment_without_a_stack(env_file: Path | None, **settings: str) -> dict[str, str]:
    """The test session's environment naming no broker or endpoint; with `env_file`, where the dev
    stack's environment is written; `settings` as further variables."""
    environment = {name: value for name, value in os.environ.items() if name not in STACK_VARIABLES}
    if env_file is not None:
        environment["EXECUTION_STREAM_DEV_ENV_FILE"] = str(env_file)
    return environment | settings


@contextlib.contextmanager
def running_dev(
    environment: Mapping[str, str], log: Path, *arguments: str
) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    """`dev` and the endpoints of its ready line; Ctrl-C at the end, unless the test stopped it."""
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "execution_stream", "dev", *arguments],
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            env=dict(environment),
        )
    try:
        yield process, read_ready_line(process, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def read_ready_line(process: subprocess.Popen[str], log: Path) -> dict[str, str]:
    assert process.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            pytest.fail(f"dev exited ({process.wait()}) before its ready line:\n{log.read_text()[-4000:]}")
        if line.startswith("ready "):
            endpoints: dict[str, str] = json.loads(line.removeprefix("ready "))
            return endpoints
    pytest.fail("no ready line")
