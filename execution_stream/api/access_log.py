"""One JSON line per request: method, path, status, latency and the tenant when it is known.

Never the Authorization header, the token, or the query string (which carries cursors).
"""

from __future__ import annotations

import json
import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from execution_stream.api.handlers import TENANT_ID

ACCESS_LOGGER = logging.getLogger("execution_stream.api.access")


class JsonAccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(access_record(request, response, time))

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def access_record(request: BaseRequest, response: StreamResponse, time: float) -> str:
    record: dict[str, object] = {
        "event": "access",
        "method": request.method,
        "path": request.path,
        "status": response.status,
        "latency_ms": round(time * 1000, 3),
    }
    tenant_id = request.get(TENANT_ID)
    if tenant_id is not None:
        record["tenant_id"] = tenant_id
    return json.dumps(record)
