"""Deterministic execution ids, so a redelivered trigger maps to the same execution."""

import uuid

from execution_stream.domain.models import TriggerEvent

EXECUTION_ID_NAMESPACE = uuid.UUID("2736d349-045f-4a00-9082-2ee572e1aa1f")
# ASCII unit separator: validated ids and names cannot contain control characters.
PART_SEPARATOR = "\x1f"


def derive_execution_id(
    tenant_id: str, jit_event_id: str, asset_id: str, workflow_slug: str, job_name: str
) -> str:
    """A UUID5 over the job's identity, as 32 lowercase hex characters without dashes."""
    parts = (tenant_id, jit_event_id, asset_id, workflow_slug, job_name)
    if any(PART_SEPARATOR in part for part in parts):
        raise ValueError("execution id parts must not contain the unit separator (\\x1f)")
    return uuid.uuid5(EXECUTION_ID_NAMESPACE, PART_SEPARATOR.join(parts)).hex


def execution_id_for(event: TriggerEvent) -> str:
    return derive_execution_id(
        event.tenant_id, event.jit_event_id, event.asset_id, event.workflow_slug, event.job_name
    )
