"""CORS, so that a web view on another origin may call the API (`EXECUTION_STREAM_API_CORS_ORIGINS`).

A listed origin is echoed back with `Access-Control-Allow-Credentials: true`; `*` lets any other
origin in, answered `*` and never with credentials (browsers refuse the pair). An origin allowed by
neither gets no CORS headers, and its preflight a 403. The request itself is authenticated as usual:
CORS only tells the browser which answers a page may read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from execution_stream.api.errors import (
    FORBIDDEN,
    METHOD_NOT_ALLOWED,
    NO_CONTENT,
    NOT_FOUND,
    error_response,
)
from execution_stream.settings import ANY_ORIGIN

ALLOWED_REQUEST_HEADERS = ("Authorization", "Content-Type")
EXPOSED_HEADERS = ("Retry-After", "WWW-Authenticate")
PREFLIGHT_MAX_AGE_SECONDS = 600
_PREFLIGHT_VARY = (hdrs.ORIGIN, hdrs.ACCESS_CONTROL_REQUEST_METHOD, hdrs.ACCESS_CONTROL_REQUEST_HEADERS)


@dataclass(frozen=True)
class CorsPolicy:
    origins: frozenset[str]

    @classmethod
    def of(cls, origins: Iterable[str]) -> CorsPolicy:
        return cls(frozenset(origins))

    def allows(self, origin: str | None) -> bool:
        return origin is not None and (origin in self.origins or ANY_ORIGIN in self.origins)

    def response_headers(self, origin: str | None) -> dict[str, str]:
        """What an answer to `origin` carries (nothing for an origin not allowed)."""
        allowed = self._allowed(origin)
        if not allowed:
            return {}
        return {**allowed, hdrs.ACCESS_CONTROL_EXPOSE_HEADERS: ", ".join(EXPOSED_HEADERS)}

    def preflight_headers(self, origin: str, methods: Iterable[str]) -> dict[str, str]:
        return {
            **self._allowed(origin),
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: ", ".join(sorted({*methods, hdrs.METH_OPTIONS})),
            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ", ".join(ALLOWED_REQUEST_HEADERS),
            hdrs.ACCESS_CONTROL_MAX_AGE: str(PREFLIGHT_MAX_AGE_SECONDS),
        }

    def _allowed(self, origin: str | None) -> dict[str, str]:
        if origin is None or not self.allows(origin):
            return {}
        if origin in self.origins:
            return {hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin, hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS: "true"}
        return {hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: ANY_ORIGIN}


def cors_middleware(policy: CorsPolicy) -> Middleware:
    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if is_preflight(request):
            return preflight(request, policy, origin or "")
        response = await handler(request)
        _decorate(response, policy.response_headers(origin), (hdrs.ORIGIN,))
        return response

    return cors


def is_preflight(request: web.Request) -> bool:
    return (
        request.method == hdrs.METH_OPTIONS
        and hdrs.ORIGIN in request.headers
        and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
    )


def preflight(request: web.Request, policy: CorsPolicy, origin: str) -> web.StreamResponse:
    """204 naming the route's methods; the 404 or 405 the browser's request itself would get."""
    if not policy.allows(origin):
        message = (
            f"origin {origin!r} may not call this API from a browser: "
            "EXECUTION_STREAM_API_CORS_ORIGINS lists the origins that may"
        )
        response = error_response(FORBIDDEN, "cors_origin_not_allowed", message)
        _decorate(response, {}, _PREFLIGHT_VARY)
        return response
    methods = route_methods(request)
    requested = request.headers[hdrs.ACCESS_CONTROL_REQUEST_METHOD]
    if requested in methods:
        response = web.Response(status=NO_CONTENT)
        headers = policy.preflight_headers(origin, methods)
    else:
        response = _refusal(request.path, requested, methods)
        headers = policy.response_headers(origin)
    _decorate(response, headers, _PREFLIGHT_VARY)
    return response


def _refusal(path: str, method: str, methods: set[str]) -> web.Response:
    if not methods:
        return error_response(NOT_FOUND, "not_found", f"no such endpoint: {method} {path}")
    message = f"method {method} is not allowed on {path}"
    allow = {"Allow": ",".join(sorted(methods))}
    return error_response(METHOD_NOT_ALLOWED, "method_not_allowed", message, allow)


def route_methods(request: web.Request) -> set[str]:
    """The methods the path is served with (none: no such path). No route takes OPTIONS itself,
    so the router's own answer to this request is the 405 that lists them."""
    exception = request.match_info.http_exception
    if isinstance(exception, web.HTTPMethodNotAllowed):
        return set(exception.allowed_methods)
    if exception is None:
        return {request.match_info.route.method}
    return set()


def _decorate(response: web.StreamResponse, headers: Mapping[str, str], vary: Iterable[str]) -> None:
    response.headers.update(headers)
    present = [v.strip() for v in response.headers.get(hdrs.VARY, "").split(",") if v.strip()]
    missing = [name for name in vary if name.lower() not in {v.lower() for v in present}]
    if missing:
        response.headers[hdrs.VARY] = ", ".join([*present, *missing])
