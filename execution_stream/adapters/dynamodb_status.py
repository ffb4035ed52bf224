"""The conditional UpdateItems of an execution's status (access pattern 5), and the runners' reports
held on a pending item until its `dispatched` mark (canonical JSON strings in the list `held_reports`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from execution_stream.adapters import dynamodb_keys as keys
from execution_stream.domain.executions import asset_target
from execution_stream.domain.lifecycle import allowed_predecessors
from execution_stream.domain.models import STATUS_TIME_FIELD, Asset, ExecutionStatus
from execution_stream.domain.store import ExecutionKey, StatusChange
from execution_stream.domain.timestamps import epoch_seconds, format_timestamp, parse_timestamp

HELD_REPORTS = "held_reports"
# A runner sends a few reports per job; more than this on one pending item is not a runner racing
# its dispatch mark, and must not grow the item towards DynamoDB's 400 KB.
MAX_HELD_REPORTS = 8


def status_update(key: ExecutionKey, change: StatusChange, plan_item_slug: str) -> dict[str, Any]:
    """SET the status, both GSI keys that embed it and its time fields, only from an allowed status.

    Mirrors `domain.executions.apply_status`, which computes the same change on the old item.
    """
    time_field = STATUS_TIME_FIELD[change.status]
    predecessors = sorted(allowed_predecessors(change.status))
    if change.only_from is not None:
        predecessors = [status for status in predecessors if status is change.only_from]
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
    for name, value in (change.run_fields() | change.cancel_fields()).items():
        values[f":{name}"] = {"N": str(value)} if isinstance(value, int) else {"S": value}
        assignments.append(f"{name} = :{name}")
    expression = f"SET {', '.join(assignments)}"
    if change.error is None:
        expression += " REMOVE #error"
    else:
        values[":error"] = {"S": change.error}
        expression += ", #error = :error"
    allowed = ", ".join(f":from{n}" for n in range(len(predecessors)))
    condition = f"attribute_exists(PK) AND plan_item_slug = :slug AND #status IN ({allowed})"
    if change.attempt is not None:
        values[":attempt"] = {"N": str(change.attempt)}
        condition += f" AND {same_attempt(change.attempt)}"
    return {
        "UpdateExpression": expression,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": {"#status": "status", "#error": "error"},
        "ExpressionAttributeValues": values,
    }


def same_attempt(attempt: int) -> str:
    """The condition that the item is at attempt `:attempt` (an item without `attempt` is at its
    first: the attribute is stored only from the second on)."""
    return "(attempt = :attempt OR attribute_not_exists(attempt))" if attempt == 1 else "attempt = :attempt"


def cancel_request(change: StatusChange) -> dict[str, Any]:
    """SET when and why a cancel was asked for, on a dispatched or running item, once."""
    names = {"#status": "status", "#requested": "cancel_requested_at"}
    values: dict[str, Any] = {
        ":at": {"S": format_timestamp(change.at)},
        ":dispatched": {"S": ExecutionStatus.DISPATCHED.value},
        ":running": {"S": ExecutionStatus.RUNNING.value},
    }
    assignments = ["#requested = :at"]
    for name, value in change.cancel_fields().items():
        values[f":{name}"] = {"S": value}
        assignments.append(f"{name} = :{name}")
    return {
        "UpdateExpression": f"SET {', '.join(assignments)}",
        "ConditionExpression": (
            "attribute_exists(PK) AND #status IN (:dispatched, :running) AND attribute_not_exists(#requested)"
        ),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def attempts_record(attempts_before: int) -> str:
    """The condition under which the attempts list is written: it still has the length it was read
    with (a replay finds it longer, and writes nothing)."""
    return "attribute_exists(PK) AND size(attempts) = :count" if attempts_before else "attribute_exists(PK)"


def asset_completion(asset: Asset) -> dict[str, Any]:
    """SET the asset's fields of an execution that waited for its asset, while it still waits, with
    where the asset says its jobs go in its additional_attributes."""
    target = asset_target(asset)
    names = {f"#t{n}": name for n, name in enumerate(target)}
    values = {f":t{n}": {"S": value} for n, value in enumerate(target.values())}
    fields = ["asset_name = :name", "asset_type = :type", "vendor = :vendor"]
    fields += [f"additional_attributes.#t{n} = :t{n}" for n in range(len(target))]
    return {
        "UpdateExpression": f"SET {', '.join(fields)} REMOVE #waiting",
        "ConditionExpression": "attribute_exists(#waiting) AND #status = :pending",
        "ExpressionAttributeNames": {"#status": "status", "#waiting": "waiting_for_asset", **names},
        "ExpressionAttributeValues": {
            ":name": {"S": asset.asset_name},
            ":type": {"S": asset.asset_type},
            ":vendor": {"S": asset.vendor},
            ":pending": {"S": ExecutionStatus.PENDING.value},
            **values,
        },
    }


def held_report_text(change: StatusChange) -> str:
    """One held report as stored: canonical JSON, so that the same report held twice is found."""
    report: dict[str, Any] = {
        "status": change.status.value,
        "at": format_timestamp(change.at),
        "has_findings": change.has_findings,
        "error": change.error,
    }
    if change.retryable:
        report["retryable"] = True
    if change.attempt is not None:
        report["attempt"] = change.attempt
    report.update(change.run_fields())
    return json.dumps(report, sort_keys=True, separators=(",", ":"))


def held_reports_of(item: Mapping[str, Any]) -> tuple[StatusChange, ...]:
    """The reports held on a plain item, in their order."""
    reports = [json.loads(text) for text in item.get(HELD_REPORTS, [])]
    return tuple(
        StatusChange(
            ExecutionStatus(report["status"]),
            parse_timestamp(report["at"]),
            has_findings=report["has_findings"],
            error=report["error"],
            retryable=report.get("retryable", False),
            html_url=report.get("html_url"),
            run_ref=report.get("run_ref"),
            attempt=report.get("attempt"),
        )
        for report in reports
    )


def holds(item: Mapping[str, Any], change: StatusChange) -> bool:
    """Whether a pending item holds the report (stored by this request, or by an earlier one)."""
    pending = item.get("status") == ExecutionStatus.PENDING.value
    return pending and held_report_text(change) in item.get(HELD_REPORTS, [])


def report_holding(change: StatusChange) -> dict[str, Any]:
    """APPEND a report to the item's held reports, while it is pending and not waiting for its asset,
    the same report is not held already and fewer than MAX_HELD_REPORTS are."""
    text = held_report_text(change)
    return {
        "UpdateExpression": "SET #held = list_append(if_not_exists(#held, :none), :report)",
        "ConditionExpression": (
            "attribute_exists(PK) AND #status = :pending AND attribute_not_exists(#waiting) AND "
            "(attribute_not_exists(#held) OR (NOT contains(#held, :text) AND size(#held) < :max))"
        ),
        "ExpressionAttributeNames": {
            "#status": "status",
            "#waiting": "waiting_for_asset",
            "#held": HELD_REPORTS,
        },
        "ExpressionAttributeValues": {
            ":none": {"L": []},
            ":report": {"L": [{"S": text}]},
            ":text": {"S": text},
            ":max": {"N": str(MAX_HELD_REPORTS)},
            ":pending": {"S": ExecutionStatus.PENDING.value},
        },
    }
