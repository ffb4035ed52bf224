"""The pure domain of the Execution service: records, lifecycle, identity and what the store answers."""

from execution_stream.domain.executions import (
    AssetMismatchError,
    TransitionNotAllowedError,
    apply_status,
    build_execution,
)
from execution_stream.domain.models import (
    Asset,
    Execution,
    ExecutionEvent,
    ExecutionStatus,
    ExecutionStatusUpdate,
    Step,
    TriggerEvent,
)

__all__ = [
    "Asset",
    "AssetMismatchError",
    "Execution",
    "ExecutionEvent",
    "ExecutionStatus",
    "ExecutionStatusUpdate",
    "Step",
    "TransitionNotAllowedError",
    "TriggerEvent",
    "apply_status",
    "build_execution",
]
