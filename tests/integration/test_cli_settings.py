"""The console script refuses an unusable setting before it connects to anything: one line, exit 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from execution_stream.dev_stack.processes import free_loopback_port

CONSOLE_SCRIPT = Path(sys.executable).parent / "execution-stream"


def run_console_script(command: str, limits: str) -> subprocess.CompletedProcess[str]:
    # Dead addresses: a process that got past its settings would hang or fail on them instead.
    dead = f"127.0.0.1:{free_loopback_port()}"
    environment = {
        **os.environ,
        "EXECUTION_STREAM_TENANT_CONCURRENCY_LIMITS": limits,
        "EXECUTION_STREAM_KAFKA_BOOTSTRAP_SERVERS": dead,
        "EXECUTION_STREAM_DYNAMODB_ENDPOINT_URL": f"http://{dead}",
        "EXECUTION_STREAM_WORKER_WEB_PORT": "0",
        "EXECUTION_STREAM_API_PORT": "0",
    }
    return subprocess.run(
        [str(CONSOLE_SCRIPT), command],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", ["worker", "api", "init", "dev"])
def test_a_zero_tenant_limit_stops_the_command_with_one_line(command: str) -> None:
    result = run_console_script(command, '{"tenant-b": 3, "acme": 0}')

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        f"execution-stream {command}: invalid setting EXECUTION_STREAM_TENANT_CONCURRENCY_LIMITS: "
        "tenant 'acme' limit 0 must be at least 1"
    ]


def test_a_limit_that_is_not_an_integer_stops_the_worker_with_one_line() -> None:
    result = run_console_script("worker", '{"acme": 1.5}')

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "execution-stream worker: invalid setting EXECUTION_STREAM_TENANT_CONCURRENCY_LIMITS: "
        "tenant 'acme' limit 1.5 must be an integer"
    ]
