"""Structured logs: one JSON object per line, with the job's ids and trace-id whenever a line is about
one job."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from execution_stream.domain.models import Execution

# Fields a log call may pass in `extra=` that belong in the JSON line.
JOB_FIELDS = ("tenant_id", "jit_event_id", "execution_id", "trace_id")
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str) -> None:
    """JSON lines on standard error for every logger, ours and our libraries'."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "faust", "mode", "botocore", "aiobotocore"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))


def job_fields(
    tenant_id: str, jit_event_id: str, execution_id: str, trace_id: str | None = None
) -> dict[str, str]:
    fields = {"tenant_id": tenant_id, "jit_event_id": jit_event_id, "execution_id": execution_id}
    if trace_id is not None:
        fields["trace_id"] = trace_id
    return fields


def execution_fields(execution: Execution) -> dict[str, str]:
    """The job's ids and the trace-id of its trigger, for a line about `execution`."""
    ids = (execution.tenant_id, execution.jit_event_id, execution.execution_id)
    return job_fields(*ids, trace_id=execution.trace.trace_id)
