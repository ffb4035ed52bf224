"""`execution-stream api` as a process of its own, on a free loopback port, answering /healthz."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from pydantic import SecretStr

from execution_stream.dev_stack import processes
from execution_stream.settings import Settings
from tests.support.api import SECRET

START_SECONDS = 60.0


async def answers(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url) as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def wait_for(
    session: aiohttp.ClientSession, url: str, process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + START_SECONDS
    while not await answers(session, url):
        assert process.poll() is None, f"{url}: the process exited; see {log}"
        assert time.monotonic() < deadline, f"{url}: no answer within {START_SECONDS:.0f}s"
        await asyncio.sleep(0.2)


@asynccontextmanager
async def running_api_process(settings: Settings, log_path: Path) -> AsyncIterator[str]:
    """The API's URL, its tokens signed with tests.support.api.SECRET; stopped at the end."""
    port = processes.free_loopback_port()
    api_settings = settings.model_copy(
        update={"api_host": "127.0.0.1", "api_port": port, "jwt_secret": SecretStr(SECRET)}
    )
    environment = {**os.environ, **api_settings.to_environment()}
    api = processes.spawn([sys.executable, "-m", "execution_stream", "api"], log_path, environment)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await wait_for(session, f"{url}/healthz", api, log_path)
        yield url
    finally:
        processes.stop(api, grace_seconds=15)
