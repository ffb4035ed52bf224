"""The aiohttp application of the API, built from settings and a reader of the store (no globals)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware

from execution_stream.api import handlers
from execution_stream.api.auth import TokenVerifier
from execution_stream.api.cors import CorsPolicy, cors_middleware
from execution_stream.api.cursors import CursorCodec, cursor_key
from execution_stream.api.metrics import ApiMetrics
from execution_stream.api.middleware import json_errors
from execution_stream.api.openapi import openapi_document
from execution_stream.api.ports import CommandPublisher, ExecutionReader
from execution_stream.api.ui_page import add_ui_routes
from execution_stream.settings import Settings

# No endpoint reads a request body (a cancel takes none).
MAX_REQUEST_BODY_BYTES = 64 * 1024


def build_api(
    settings: Settings, reader: ExecutionReader, commands: CommandPublisher | None = None
) -> web.Application:
    """Raises AuthConfigurationError or CursorConfigurationError when no key is configured. Without
    `commands`, a cancel answers 503."""
    context = handlers.ApiContext(
        reader=reader,
        verifier=TokenVerifier.from_settings(settings),
        cursors=CursorCodec(cursor_key(settings)),
        openapi_json=handlers.encode_document(openapi_document()),
        commands=commands,
    )
    metrics = ApiMetrics()
    # Outermost first: errors are turned into responses before CORS headers are added and before
    # they are counted.
    middlewares: list[Middleware] = [metrics.middleware, json_errors]
    if settings.api_cors_origins:
        middlewares.insert(1, cors_middleware(CorsPolicy.of(settings.api_cors_origins)))
    app = web.Application(middlewares=middlewares, client_max_size=MAX_REQUEST_BODY_BYTES)
    app[handlers.CONTEXT] = context
    app.router.add_get("/executions", handlers.list_executions)
    app.router.add_get("/executions/{execution_id}", handlers.get_execution)
    app.router.add_post("/executions/{execution_id}/cancel", handlers.cancel_execution)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    app.router.add_get("/openapi.json", handlers.openapi)
    app.router.add_get("/metrics", metrics.serve)
    if settings.api_ui:
        add_ui_routes(app)
    return app
