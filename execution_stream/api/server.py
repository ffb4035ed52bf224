"""`execution-stream api`: serves the API until SIGINT or SIGTERM.

Logs (JSON lines, access log included) go to standard error; standard output stays empty.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from execution_stream.adapters.dynamodb_repository import open_repository
from execution_stream.adapters.kafka_commands import KafkaCommandPublisher
from execution_stream.api.access_log import ACCESS_LOGGER, JsonAccessLogger
from execution_stream.api.app import build_api
from execution_stream.event_loop import use_event_loop
from execution_stream.settings import Settings

logger = logging.getLogger("execution_stream.api")

SHUTDOWN_TIMEOUT_SECONDS = 10.0


def run_api(settings: Settings) -> int:
    _configure_logging(settings.log_level)
    use_event_loop(settings.event_loop)
    asyncio.run(serve_until_stopped(settings))
    return 0


async def serve_until_stopped(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    commands = KafkaCommandPublisher(
        settings.kafka_bootstrap_servers,
        settings.topic_execution_commands,
        settings.kafka_connect_timeout_seconds,
    )
    async with open_repository(settings) as repository:
        app = build_api(settings, repository, commands)
        try:
            async with serving(app, settings.api_host, settings.api_port) as url:
                logger.info(json.dumps({"event": "api_listening", "url": url}))
                await stop.wait()
        finally:
            await commands.stop()
    logger.info(json.dumps({"event": "api_stopped"}))


def make_runner(app: web.Application) -> web.AppRunner:
    return web.AppRunner(
        app,
        access_log_class=JsonAccessLogger,
        access_log=ACCESS_LOGGER,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
    )


@asynccontextmanager
async def serving(app: web.Application, host: str, port: int) -> AsyncIterator[str]:
    """Serves `app` on host:port (0 picks a free port); yields the URL it really listens on."""
    runner = make_runner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        if ":" in bound_host:
            bound_host = f"[{bound_host}]"
        yield f"http://{bound_host}:{bound_port}"
    finally:
        await runner.cleanup()


def _configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(message)s")
