"""Building an execution from a trigger and moving it through its lifecycle."""

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from execution_stream.domain.identity import execution_id_for
from execution_stream.domain.lifecycle import TERMINAL_STATUSES, is_transition_allowed
from execution_stream.domain.models import (
    STATUS_TIME_FIELD,
    Asset,
    Execution,
    ExecutionStatus,
    TriggerEvent,
)
from execution_stream.domain.timestamps import epoch_seconds, format_timestamp
from execution_stream.domain.trace import TraceContext


class AssetMismatchError(ValueError):
    """The asset looked up for a trigger belongs to another tenant, is another asset, or names
    another GitHub installation, owner or repository than the trigger does."""


# Attributes that say where a job goes (GitHub: the installation, the organisation, the repository).
# The asset's values are the truth: a trigger may not name another tenant's installation.
ASSET_TARGET_ATTRIBUTES = ("installation_id", "app_id", "owner", "user_vendor_id", "user_vendor_name")
# Logins and repository names are case-insensitive on GitHub.
_CASE_INSENSITIVE = frozenset({"owner", "user_vendor_name", "original_repository"})


class TransitionNotAllowedError(ValueError):
    def __init__(self, current: ExecutionStatus, requested: ExecutionStatus) -> None:
        super().__init__(f"transition {current.value} -> {requested.value} is not allowed")
        self.current = current
        self.requested = requested


def build_execution(
    event: TriggerEvent,
    asset: Asset,
    now: datetime,
    trace: TraceContext | None = None,
    *,
    priority: int | None = None,
) -> Execution:
    """A new pending execution of the event's job on `asset`, created at `now`, carrying the
    trigger's trace context, in priority class `priority` (default: the trigger's own, else 0)."""
    check_asset_matches(asset, event.tenant_id, event.asset_id, event.additional_attributes)
    first_step = event.steps[0]
    return Execution(
        tenant_id=event.tenant_id,
        jit_event_id=event.jit_event_id,
        execution_id=execution_id_for(event),
        jit_event_name=event.jit_event_name,
        asset_id=event.asset_id,
        asset_name=asset.asset_name,
        asset_type=asset.asset_type,
        vendor=asset.vendor,
        plan_slug=event.plan_slug,
        plan_item_slug=event.plan_item_slug,
        workflow_slug=event.workflow_slug,
        job_name=event.job_name,
        job_runner=event.job_runner,
        steps=[step.model_copy(deep=True) for step in event.steps],
        additional_attributes={**copy.deepcopy(event.additional_attributes), **asset_target(asset)},
        control_name=first_step.name,
        control_image=first_step.uses,
        status=ExecutionStatus.PENDING,
        priority=priority if priority is not None else event.priority or 0,
        created_at=format_timestamp(now),
        created_at_ts=epoch_seconds(now),
        traceparent=trace.traceparent if trace is not None else None,
        tracestate=trace.tracestate if trace is not None else None,
    )


def apply_status(
    execution: Execution,
    status: ExecutionStatus,
    at: datetime,
    has_findings: bool = False,
    error: str | None = None,
) -> Execution:
    """A copy of `execution` moved to `status` at `at`; raises if the lifecycle forbids it."""
    if not is_transition_allowed(execution.status, status):
        raise TransitionNotAllowedError(execution.status, status)
    time_field = STATUS_TIME_FIELD[status]
    changes: dict[str, Any] = {
        "status": status,
        "has_findings": has_findings,
        "error": error,
        time_field: format_timestamp(at),
        f"{time_field}_ts": epoch_seconds(at),
    }
    return execution.model_copy(update=changes)


def already_changed(execution: Execution, status: ExecutionStatus, at: datetime) -> bool:
    """Whether `execution` already went to `status` at `at`: that change was stored before (a
    replayed record, or a retry whose first answer was lost)."""
    recorded_at = getattr(execution, STATUS_TIME_FIELD[status])
    return execution.status is status and recorded_at == format_timestamp(at)


def previous_status(execution: Execution) -> ExecutionStatus:
    """The status `execution` left for its current one, from the moments it recorded: statuses only
    move forward, and each one it went through has its time."""
    if execution.status in TERMINAL_STATUSES and execution.registered_at is not None:
        return ExecutionStatus.RUNNING
    if execution.status is not ExecutionStatus.DISPATCHED and execution.dispatched_at is not None:
        return ExecutionStatus.DISPATCHED
    return ExecutionStatus.PENDING


def build_waiting_execution(
    event: TriggerEvent, now: datetime, trace: TraceContext | None = None, *, priority: int | None = None
) -> Execution:
    """The pending execution of a trigger whose asset is not known yet: stored at once, so that it is
    seen waiting, with the asset's fields empty until the asset arrives."""
    placeholder = Asset(
        asset_id=event.asset_id, tenant_id=event.tenant_id, asset_name="", asset_type="", vendor="", owner=""
    )
    execution = build_execution(event, placeholder, now, trace, priority=priority)
    return execution.model_copy(update={"waiting_for_asset": event.asset_id})


def asset_target(asset: Asset) -> dict[str, str]:
    """The attributes `asset` names that say where its jobs go (empty ones are not named)."""
    named = {name: getattr(asset, name) for name in ASSET_TARGET_ATTRIBUTES}
    if asset.asset_type == "repo":
        named["original_repository"] = asset.asset_name
    return {name: str(value) for name, value in named.items() if value}


def target_attributes(attributes: Mapping[str, Any]) -> dict[str, str]:
    """A trigger's own values of the target attributes, as text (kept while it waits for its asset)."""
    names = (*ASSET_TARGET_ATTRIBUTES, "original_repository")
    return {name: str(attributes[name]) for name in names if attributes.get(name) not in (None, "")}


def check_asset_matches(
    asset: Asset, tenant_id: str, asset_id: str, attributes: Mapping[str, Any] | None = None
) -> None:
    """Raises unless `asset` is the asset `asset_id` of the tenant, and the trigger's attributes name
    no other installation, owner or repository than the asset does."""
    if asset.tenant_id != tenant_id or asset.asset_id != asset_id:
        raise AssetMismatchError(
            f"asset {asset.asset_id!r} of tenant {asset.tenant_id!r} does not match "
            f"the trigger's asset {asset_id!r} of tenant {tenant_id!r}"
        )
    given = target_attributes(attributes or {})
    for name, value in asset_target(asset).items():
        if name in given and not _same(name, given[name], value):
            raise AssetMismatchError(
                f"the trigger's additional_attributes[{name!r}] {given[name]!r} contradicts "
                f"its asset {asset_id!r}, which names {value!r}"
            )


def _same(name: str, given: str, value: str) -> bool:
    return given.casefold() == value.casefold() if name in _CASE_INSENSITIVE else given == value


def trigger_of(execution: Execution) -> TriggerEvent:
    """The trigger an execution was built from, as far as the execution keeps it (not created_at)."""
    fields = set(TriggerEvent.model_fields) - {"created_at"}
    return TriggerEvent.model_validate(execution.model_dump(include=fields))
