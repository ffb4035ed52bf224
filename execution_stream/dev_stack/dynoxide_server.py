"""dynoxide (MIT OR Apache-2.0, on SQLite) on loopback: the default DynamoDB endpoint of `dev` and tests.

Its binary comes from the npm package `@dynoxide/linux-x64`, pinned in `deploy/local/package.json`
and installed into `deploy/local/node_modules` once (by the Makefile, or here with `npm ci`). It runs
in memory: nothing restarts it and expects its data back, and moto's server forgets on restart too.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from execution_stream.dev_stack.local_dynamodb import LocalDynamoDB
from execution_stream.dev_stack.processes import StackError

PACKAGE = "@dynoxide/linux-x64"
PACKAGE_DIR = Path(__file__).resolve().parents[2] / "deploy" / "local"
BINARY = PACKAGE_DIR / "node_modules" / "@dynoxide" / "linux-x64" / "dynoxide"
USE_MOTO = "set EXECUTION_STREAM_LOCAL_DYNAMODB=moto to use moto's server instead"


def unsupported_platform(system: str, machine: str) -> str | None:
    """Why dynoxide's binary cannot run on `system` and `machine` (as `platform` names them), or None."""
    if system == "Linux" and machine.lower() in {"x86_64", "amd64"}:
        return None
    return f"dynoxide's npm package {PACKAGE} runs on Linux x86_64 only, not {system} {machine}: {USE_MOTO}"


def ensure_dynoxide_binary(binary: Path = BINARY) -> Path:
    """The binary, installed with `npm ci --prefix deploy/local` if it is missing."""
    problem = unsupported_platform(platform.system(), platform.machine())
    if problem is not None:
        raise StackError(problem)
    if os.access(binary, os.X_OK):
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise StackError(f"npm is needed once to install dynoxide ({PACKAGE}) into {PACKAGE_DIR}; {USE_MOTO}")
    command = [npm, "ci", "--prefix", str(PACKAGE_DIR), "--no-audit", "--no-fund"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not os.access(binary, os.X_OK):
        output = f"{result.stdout}\n{result.stderr}"
        raise StackError(f"`{' '.join(command)}` did not install dynoxide (or {USE_MOTO}):\n{output}")
    return binary


@dataclass
class DynoxideServer(LocalDynamoDB):
    start_timeout_seconds: float = 30.0
    name: ClassVar[str] = "dynoxide"

    def command(self) -> list[str]:
        return [str(ensure_dynoxide_binary()), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
