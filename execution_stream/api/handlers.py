"""The request handlers: authenticate, validate, ask DynamoDB once or twice, shape the body."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import hdrs, web

from execution_stream.api.auth import TokenVerifier
from execution_stream.api.cursors import CursorCodec
from execution_stream.api.errors import (
    SERVICE_UNAVAILABLE,
    ConflictError,
    NotFoundError,
    UnauthorizedError,
    UnavailableError,
    error_response,
)
from execution_stream.api.items import api_items
from execution_stream.api.ports import CommandPublisher, ExecutionReader
from execution_stream.api.validation import parse_execution_id, parse_list_parameters
from execution_stream.domain.commands import CancelCommand, CommandsUnavailableError
from execution_stream.domain.lifecycle import TERMINAL_STATUSES
from execution_stream.domain.models import Execution
from execution_stream.domain.store import ExecutionQuery, RepositoryError

logger = logging.getLogger("execution_stream.api")

READINESS_TIMEOUT_SECONDS = 5.0
ACCEPTED = 202


def _request_key(name: str) -> Any:
    # web.RequestKey where this aiohttp has it (recent 3.x); a str key on the older ones we allow.
    request_key = getattr(web, "RequestKey", None)
    return request_key(name, str) if request_key is not None else name


# Where a request keeps its authenticated tenant (the access log reads it).
TENANT_ID: Any = _request_key("tenant_id")


@dataclass(frozen=True)
class ApiContext:
    reader: ExecutionReader
    verifier: TokenVerifier
    cursors: CursorCodec
    openapi_json: bytes
    commands: CommandPublisher | None = None


CONTEXT: web.AppKey[ApiContext] = web.AppKey("execution_stream_api")


def authenticate(request: web.Request) -> str:
    headers = request.headers.getall(hdrs.AUTHORIZATION, [])
    if len(headers) > 1:
        raise UnauthorizedError("more than one Authorization header")
    tenant_id = request.app[CONTEXT].verifier.tenant_of(headers[0] if headers else None)
    request[TENANT_ID] = tenant_id
    return tenant_id


async def list_executions(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    tenant_id = authenticate(request)
    parameters = parse_list_parameters(request.query)
    start = None
    if parameters.after is not None:
        start = context.cursors.decode(parameters.after, tenant_id, parameters.filter)
    page = await context.reader.list(
        ExecutionQuery(
            tenant_id=tenant_id,
            status=parameters.filter.status,
            plan_item_slug=parameters.filter.plan_item_slug,
            limit=parameters.limit,
            start_after=start,
        )
    )
    _check_tenant(page.items, tenant_id)
    after = None
    if page.next_key is not None:
        after = context.cursors.encode(page.next_key, tenant_id, parameters.filter)
    body: dict[str, Any] = {
        "data": await api_items(context.reader, tenant_id, page.items),
        "metadata": {"count": len(page.items), "after": after},
    }
    return web.json_response(body)


async def get_execution(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    tenant_id, execution = await _own_execution(request)
    (item,) = await api_items(context.reader, tenant_id, [execution])
    return web.json_response(item)


async def _own_execution(request: web.Request) -> tuple[str, Execution]:
    """The caller's tenant and its execution named by the path."""
    tenant_id = authenticate(request)
    execution_id = parse_execution_id(request.match_info["execution_id"], request.query)
    execution = await request.app[CONTEXT].reader.find(tenant_id, execution_id)
    if execution is None:
        # Another tenant's id is looked up under the caller's tenant: it is just as unknown.
        raise NotFoundError(f"no execution {execution_id!r}")
    _check_tenant([execution], tenant_id)
    return tenant_id, execution


async def cancel_execution(request: web.Request) -> web.Response:
    """202 once the cancel is on execution-commands; the worker cancels it (pipeline/commands.py)."""
    context = request.app[CONTEXT]
    tenant_id, execution = await _own_execution(request)
    execution_id = execution.execution_id
    if execution.status in TERMINAL_STATUSES:
        raise ConflictError(
            "already_final", f"execution {execution_id!r} is already {execution.status.value}"
        )
    if context.commands is None:
        raise UnavailableError("commands_unavailable", "this API sends no commands")
    command = CancelCommand(
        tenant_id=tenant_id,
        execution_id=execution_id,
        jit_event_id=execution.jit_event_id,
        requested_at=datetime.now(UTC),
    )
    try:
        await context.commands.send(command)
    except CommandsUnavailableError as error:
        logger.warning(json.dumps({"event": "command_not_sent", "reason": str(error)}))
        raise UnavailableError(
            "commands_unavailable", "the cancel could not be sent now; try again"
        ) from None
    body = {"execution_id": execution_id, "status": execution.status.value, "cancel": "requested"}
    return web.json_response(body, status=ACCEPTED)


def _check_tenant(executions: Sequence[Execution], tenant_id: str) -> None:
    if any(execution.tenant_id != tenant_id for execution in executions):
        # Never show another tenant's data, whatever went wrong below us: fail loudly instead.
        raise RuntimeError("the store returned an execution of another tenant")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    reader = request.app[CONTEXT].reader
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            await reader.ping()
    except TimeoutError:
        reason = f"no answer within {READINESS_TIMEOUT_SECONDS:g}s"
    except RepositoryError as error:
        reason = str(error)
    else:
        return web.json_response({"status": "ok"})
    # The reason names internals (endpoint, table): it goes to the log, not to the caller.
    logger.warning(json.dumps({"event": "not_ready", "reason": reason}))
    return error_response(SERVICE_UNAVAILABLE, "not_ready", "DynamoDB is not reachable")


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[CONTEXT].openapi_json, content_type="application/json")


def encode_document(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=2).encode()
