"""The API's Prometheus metrics: requests and their latency per route and status, at /metrics."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "execution_stream_api_requests",
            "HTTP requests served.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "execution_stream_api_request_duration_seconds",
            "Time to serve an HTTP request.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        response = await handler(request)
        # The route's pattern, never the raw path: the labels stay bounded whatever callers send.
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        self.requests.labels(route, str(response.status)).inc()
        self.latency.labels(route).observe(time.perf_counter() - started)
        return response

    async def serve(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
