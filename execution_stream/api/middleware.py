"""Every failure becomes the API's JSON error body; nothing unexpected leaves without a log line."""

from __future__ import annotations

import json
import logging

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from execution_stream.api.errors import (
    BAD_REQUEST,
    INTERNAL_ERROR,
    SERVICE_UNAVAILABLE,
    ApiError,
    error_response,
)
from execution_stream.api.handlers import TENANT_ID
from execution_stream.domain.store import InvalidPageKeyError, RepositoryUnavailableError

logger = logging.getLogger("execution_stream.api")

RETRY_AFTER_SECONDS = "1"
_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
}


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error.status, error.code, error.message, error.headers)
    except web.HTTPException as error:
        if error.status < BAD_REQUEST:
            raise
        return _from_http_exception(request, error)
    except InvalidPageKeyError as error:
        return error_response(BAD_REQUEST, "invalid_cursor", f"invalid 'after' cursor: {error}")
    except RepositoryUnavailableError as error:
        logger.warning(_log_line(request, "dynamodb_unavailable", error))
        return error_response(
            SERVICE_UNAVAILABLE,
            "service_unavailable",
            "DynamoDB is unavailable; retry later",
            {hdrs.RETRY_AFTER: RETRY_AFTER_SECONDS},
        )
    except Exception as error:
        logger.exception(_log_line(request, "unhandled_error", error))  # noqa: TRY401
        return error_response(INTERNAL_ERROR, "internal_error", "an unexpected error occurred; it was logged")


def _from_http_exception(request: web.Request, error: web.HTTPException) -> web.Response:
    code = _HTTP_CODES.get(error.status, "http_error")
    if error.status == 404:
        message = f"no such endpoint: {request.method} {request.path}"
    elif error.status == 405:
        message = f"method {request.method} is not allowed on {request.path}"
    else:
        message = error.reason
    allow = error.headers.get(hdrs.ALLOW)
    headers = {"Allow": allow} if allow is not None else None
    return error_response(error.status, code, message, headers)


def _log_line(request: web.Request, event: str, error: Exception) -> str:
    record = {
        "event": event,
        "method": request.method,
        "path": request.path,
        "tenant_id": request.get(TENANT_ID),
        "error": f"{type(error).__name__}: {error}",
    }
    return json.dumps(record)
