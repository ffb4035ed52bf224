"""The API's one error shape: `{"error": {"code": "...", "message": "..."}}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

NO_CONTENT = 204
BAD_REQUEST = 400
UNAUTHORIZED = 401
FORBIDDEN = 403
NOT_FOUND = 404
METHOD_NOT_ALLOWED = 405
CONFLICT = 409
SERVICE_UNAVAILABLE = 503
INTERNAL_ERROR = 500


class ApiError(Exception):
    """A request the API refuses, with the status, a stable code and a message for the caller."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


class InvalidParameterError(ApiError):
    def __init__(self, message: str, code: str = "invalid_parameter") -> None:
        super().__init__(BAD_REQUEST, code, message)


class InvalidCursorError(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(BAD_REQUEST, "invalid_cursor", f"invalid 'after' cursor: {message}")


class UnauthorizedError(ApiError):
    def __init__(self, message: str) -> None:
        # RFC 6750: a 401 for a bearer-protected resource names the scheme it expects.
        challenge = 'Bearer realm="execution-stream", error="invalid_token"'
        super().__init__(UNAUTHORIZED, "unauthorized", message, {"WWW-Authenticate": challenge})


class NotFoundError(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(NOT_FOUND, "not_found", message)


class ConflictError(ApiError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(CONFLICT, code, message)


class UnavailableError(ApiError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(SERVICE_UNAVAILABLE, code, message, {"Retry-After": "1"})


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(error_body(code, message), status=status, headers=headers)
