"""The one conditional UpdateItem that moves an execution to a new status (access pattern 5)."""

from __future__ import annotations

from typing import Any

from execution_stream.domain import keys
from execution_stream.domain.lifecycle import allowed_predecessors
from execution_stream.domain.models import STATUS_TIME_FIELD, Asset, ExecutionStatus
from execution_stream.domain.ports import ExecutionKey, StatusChange
from execution_stream.domain.timestamps import epoch_seconds, format_timestamp


def status_update(key: ExecutionKey, change: StatusChange, plan_item_slug: str) -> dict[str, Any]:
    """SET the status, both GSI keys that embed it and its time fields, only from an allowed status.

    Mirrors `domain.executions.apply_status`, which computes the same change on the old item.
    """
    time_field = STATUS_TIME_FIELD[change.status]
    predecessors = sorted(allowed_predecessors(change.status))
    values: dict[str, Any] = {
        ":status": {"S": change.status.value},
        ":gsi2": {"S": keys.gsi2_pk(key.tenant_id, change.status)},
        ":gsi4": {"S": keys.gsi4_pk(key.tenant_id, plan_item_slug, change.status)},
        ":findings": {"BOOL": change.has_findings},
        ":at": {"S": format_timestamp(change.at)},
        ":at_ts": {"N": str(epoch_seconds(change.at))},
        ":slug": {"S": plan_item_slug},
        **{f":from{n}": {"S": status.value} for n, status in enumerate(predecessors)},
    }
    assignments = [
        "#status = :status",
        "GSI2PK = :gsi2",
        "GSI4PK = :gsi4",
        "has_findings = :findings",
        f"{time_field} = :at",
        f"{time_field}_ts = :at_ts",
    ]
    if change.deadline_at is not None:
        values[":deadline"] = {"S": format_timestamp(change.deadline_at)}
        assignments.append("deadline_at = :deadline")
    expression = f"SET {', '.join(assignments)}"
    if change.error is None:
        expression += " REMOVE #error"
    else:
        values[":error"] = {"S": change.error}
        expression += ", #error = :error"
    allowed = ", ".join(f":from{n}" for n in range(len(predecessors)))
    return {
        "UpdateExpression": expression,
        "ConditionExpression": (
            f"attribute_exists(PK) AND plan_item_slug = :slug AND #status IN ({allowed})"
        ),
        "ExpressionAttributeNames": {"#status": "status", "#error": "error"},
        "ExpressionAttributeValues": values,
    }


def asset_completion(asset: Asset) -> dict[str, Any]:
    """SET the asset's fields of an execution that waited for its asset, while it still waits."""
    return {
        "UpdateExpression": "SET asset_name = :name, asset_type = :type, vendor = :vendor REMOVE #waiting",
        "ConditionExpression": "attribute_exists(#waiting) AND #status = :pending",
        "ExpressionAttributeNames": {"#status": "status", "#waiting": "waiting_for_asset"},
        "ExpressionAttributeValues": {
            ":name": {"S": asset.asset_name},
            ":type": {"S": asset.asset_type},
            ":vendor": {"S": asset.vendor},
            ":pending": {"S": ExecutionStatus.PENDING.value},
        },
    }
