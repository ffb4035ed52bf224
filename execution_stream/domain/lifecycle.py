"""Which status changes an execution may go through."""

from collections.abc import Mapping
from types import MappingProxyType

from execution_stream.domain.models import ExecutionStatus

TERMINAL_STATUSES: frozenset[ExecutionStatus] = frozenset(
    {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELED}
)

_SUCCESSORS: Mapping[ExecutionStatus, frozenset[ExecutionStatus]] = MappingProxyType(
    {
        ExecutionStatus.PENDING: frozenset(
            {ExecutionStatus.DISPATCHED, ExecutionStatus.CANCELED, ExecutionStatus.FAILED}
        ),
        ExecutionStatus.DISPATCHED: frozenset(
            {
                ExecutionStatus.RUNNING,
                ExecutionStatus.COMPLETED,
                ExecutionStatus.FAILED,
                ExecutionStatus.CANCELED,
            }
        ),
        ExecutionStatus.RUNNING: frozenset(
            {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELED}
        ),
    }
)


def allowed_successors(current: ExecutionStatus) -> frozenset[ExecutionStatus]:
    return _SUCCESSORS.get(current, frozenset())


def is_transition_allowed(current: ExecutionStatus, new: ExecutionStatus) -> bool:
    return new in allowed_successors(current)


def allowed_predecessors(new: ExecutionStatus) -> frozenset[ExecutionStatus]:
    """The statuses an execution may be in for `new` to be applied (for a condition expression)."""
    return frozenset(status for status in ExecutionStatus if is_transition_allowed(status, new))
