"""Executions to and from plain DynamoDB items (the seed's example item is the format)."""

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from execution_stream.adapters.dynamodb_keys import KEY_ATTRIBUTES, execution_keys
from execution_stream.domain.models import Execution

# Fields stored only when they differ from these: the seed's item shape stays as it is until an
# execution is given a priority or retried.
UNSTORED_DEFAULTS = {"priority": 0, "attempt": 1}


def execution_to_item(execution: Execution) -> dict[str, Any]:
    """The item to store: every set field of `execution` (those at UNSTORED_DEFAULTS left out) plus
    its key attributes."""
    item: dict[str, Any] = execution.model_dump(exclude_none=True)
    for name, default in UNSTORED_DEFAULTS.items():
        if item.get(name) == default:
            del item[name]
    item["status"] = execution.status.value
    item["steps"] = [
        {"name": step["name"], "params": step["params"], "uses": step["uses"]} for step in item["steps"]
    ]
    item.update(execution_keys(execution))
    return item


def execution_from_item(item: Mapping[str, Any]) -> Execution:
    """The execution stored in `item`; key attributes are derived data and are ignored."""
    fields = {name: value for name, value in item.items() if name not in KEY_ATTRIBUTES}
    return Execution.model_validate(from_dynamodb_numbers(fields))


def from_dynamodb_numbers(value: Any) -> Any:
    """`value` with every Decimal (DynamoDB's only number type) made an int or a float again."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {key: from_dynamodb_numbers(nested) for key, nested in value.items()}
    if isinstance(value, list | tuple):
        return [from_dynamodb_numbers(nested) for nested in value]
    return value
