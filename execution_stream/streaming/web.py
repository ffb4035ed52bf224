"""The worker's own small web endpoint: /healthz for probes, /metrics for Prometheus."""

from __future__ import annotations

import logging

from aiohttp import web
from mode import Service
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from execution_stream.streaming.metrics import WorkerMetrics
from execution_stream.streaming.outside_systems import OutsideSystems

logger = logging.getLogger(__name__)


class WorkerWeb(Service):
    def __init__(self, host: str, port: int, systems: OutsideSystems, metrics: WorkerMetrics) -> None:
        super().__init__()
        self._host, self._port = host, port
        self._systems = systems
        self._metrics = metrics
        self._runner: web.AppRunner | None = None

    async def on_start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._serve_metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        host, port = self._runner.addresses[0][:2]
        logger.info("worker web endpoint listening", extra={"url": f"http://{host}:{port}"})

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        ready = self._systems.ready
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def _serve_metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self._metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
