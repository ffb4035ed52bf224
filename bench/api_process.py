"""`execution-stream api` in a process of its own, on a free loopback port, its log in a file."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil

from execution_stream.dev_stack.processes import free_loopback_port
from execution_stream.settings import Settings

START_SECONDS = 60.0
STOP_SECONDS = 15.0


@dataclass
class ApiProcess:
    settings: Settings
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.settings = self.settings.model_copy(
            update={"api_host": "127.0.0.1", "api_port": free_loopback_port()}
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"

    @property
    def psutil_process(self) -> psutil.Process:
        assert self.process is not None
        return psutil.Process(self.process.pid)

    def start(self) -> None:
        environment = {**os.environ, **self.settings.to_environment()}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "execution_stream", "api"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,
            )

    async def ready(self) -> None:
        """Waits until the process answers /readyz (it reaches DynamoDB)."""
        assert self.process is not None
        deadline = time.monotonic() + START_SECONDS
        async with aiohttp.ClientSession() as session:
            while not await self._ready(session):
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"the API exited with code {self.process.returncode}; see {self.log_path}"
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"the API did not answer within {START_SECONDS:.0f}s; see {self.log_path}"
                    )
                await asyncio.sleep(0.2)

    async def _ready(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(f"{self.url}/readyz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
