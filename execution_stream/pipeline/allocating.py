"""allocate-runner-resource: one tenant's slots, requests and releases in their order.

The agent sends what a step returns and only then stores the new state: state in the table never
runs ahead of what was sent. A request of an execution that holds a slot already is forwarded again,
because the first forward may be the one a crash lost; dispatching drops it if it is done.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from execution_stream.domain import allocation
from execution_stream.domain.allocation import Admission, LeaseWindows, Outcome, TenantAllocation
from execution_stream.domain.models import ExecutionStatus, ExecutionStatusUpdate
from execution_stream.pipeline.records import (
    AllocationRelease,
    AllocationRequest,
    Destination,
    Effects,
    encode,
)

TIMEOUT_ERROR = "timeout"


@dataclass
class AllocationStep:
    windows: LeaseWindows
    default_limit: int
    tenant_limits: Mapping[str, int]
    now: Callable[[], datetime]

    def handle(
        self, stored: Mapping[str, Any] | None, message: AllocationRequest | AllocationRelease
    ) -> tuple[dict[str, Any] | None, Effects]:
        """The tenant's new state (None: nothing left to keep) and the executions to forward."""
        state = TenantAllocation.from_json(stored) if stored else TenantAllocation(windows=self.windows)
        now = self.now().timestamp()
        limit_for = self._limits_of(_tenant_of(message))
        if isinstance(message, AllocationRequest):
            execution = message.execution
            payload = execution.model_dump(mode="json")
            state, decision = allocation.request(
                state,
                execution.execution_id,
                execution.job_runner,
                payload,
                now=now,
                limit_for=limit_for,
                reference={"jit_event_id": execution.jit_event_id},
            )
            admitted = decision.admitted
            if decision.outcome is Outcome.DUPLICATE and allocation.holds(state, execution.execution_id):
                admitted = [*admitted, Admission(execution.execution_id, execution.job_runner, payload)]
        else:
            state, admitted = allocation.release(
                state, message.execution_id, message.job_runner, now=now, limit_for=limit_for
            )
        effects = Effects()
        for admission in admitted:
            effects.send(Destination.ENRICH, _tenant_of(message), _json_bytes(admission.payload))
        return (None if allocation.is_empty(state) else state.to_json()), effects

    def overdue(self, tenant_id: str, stored: Mapping[str, Any], timeout_seconds: float) -> Effects:
        """Failures to report for executions holding a slot past their timeout (the watchdog)."""
        state = TenantAllocation.from_json(stored)
        now = self.now()
        effects = Effects()
        for held in allocation.holders_past(state, now.timestamp(), timeout_seconds):
            update = ExecutionStatusUpdate(
                tenant_id=tenant_id,
                jit_event_id=held.reference["jit_event_id"],
                execution_id=held.execution_id,
                status=ExecutionStatus.FAILED,
                error=TIMEOUT_ERROR,
                at=now,
            )
            effects.send(Destination.STATUS, tenant_id, encode(update))
        return effects

    def _limits_of(self, tenant_id: str) -> Callable[[str], int]:
        limit = self.tenant_limits.get(tenant_id, self.default_limit)
        return lambda runner: limit


def _tenant_of(message: AllocationRequest | AllocationRelease) -> str:
    return message.execution.tenant_id if isinstance(message, AllocationRequest) else message.tenant_id


def _json_bytes(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
