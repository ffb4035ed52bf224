"""The parameters of `GET /executions` and `GET /executions/{id}`, checked before DynamoDB."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from multidict import MultiMapping

from execution_stream.api.errors import InvalidParameterError
from execution_stream.domain.models import KEY_SEPARATOR, MAX_IDENTIFIER_LENGTH, ExecutionStatus

STATUS = "status"
PLAN_ITEM_SLUG = "plan_item_slug"
LIMIT = "limit"
AFTER = "after"
ALLOWED_PARAMETERS = (STATUS, PLAN_ITEM_SLUG, LIMIT, AFTER)
DEFAULT_LIMIT = 20
MIN_LIMIT = 1
MAX_LIMIT = 100
MAX_PLAN_ITEM_SLUG_LENGTH = MAX_IDENTIFIER_LENGTH
_SHOWN_CHARACTERS = 64
# derive_execution_id: a UUID5 as 32 lowercase hex characters.
EXECUTION_ID_PATTERN = "^[0-9a-f]{32}$"
_EXECUTION_ID = re.compile("[0-9a-f]{32}")  # fullmatch: '$' would let a trailing newline pass


@dataclass(frozen=True)
class ExecutionFilter:
    """What a page of executions is filtered by; a cursor is bound to it."""

    status: ExecutionStatus | None = None
    plan_item_slug: str | None = None


@dataclass(frozen=True)
class ListParameters:
    filter: ExecutionFilter
    limit: int = DEFAULT_LIMIT
    after: str | None = None


def parse_list_parameters(query: MultiMapping[str]) -> ListParameters:
    # Every occurrence (multidict's keys() may list a repeated name once).
    names = [name for name, _ in query.items()]
    _reject_unknown(names)
    _reject_repeated(names)
    execution_filter = ExecutionFilter(
        status=parse_status(query.get(STATUS)),
        plan_item_slug=parse_plan_item_slug(query.get(PLAN_ITEM_SLUG)),
    )
    return ListParameters(
        filter=execution_filter,
        limit=parse_limit(query.get(LIMIT)),
        after=parse_after(query.get(AFTER)),
    )


def parse_execution_id(value: str, query: MultiMapping[str]) -> str:
    """The id of `GET /executions/{execution_id}`, which takes no query parameter."""
    _reject_unknown((name for name, _ in query.items()), allowed=())
    if not _EXECUTION_ID.fullmatch(value):
        raise InvalidParameterError(
            f"execution_id must be 32 lowercase hexadecimal characters, got {shown(value)}",
            code="invalid_execution_id",
        )
    return value


def parse_status(value: str | None) -> ExecutionStatus | None:
    if value is None:
        return None
    try:
        return ExecutionStatus(value)
    except ValueError:
        allowed = ", ".join(status.value for status in ExecutionStatus)
        raise InvalidParameterError(
            f"status {shown(value)} is not one of: {allowed}", code="invalid_status"
        ) from None


def parse_plan_item_slug(value: str | None) -> str | None:
    if value is None:
        return None
    problem = _slug_problem(value)
    if problem:
        raise InvalidParameterError(f"plan_item_slug {problem}", code="invalid_plan_item_slug")
    return value


def _slug_problem(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if len(value) > MAX_PLAN_ITEM_SLUG_LENGTH:
        return f"must be at most {MAX_PLAN_ITEM_SLUG_LENGTH} characters long"
    if KEY_SEPARATOR in value:
        return f"must not contain {KEY_SEPARATOR!r}"
    if any(unicodedata.category(character) == "Cc" for character in value):
        return "must not contain control characters"
    if any(unicodedata.category(character) == "Cs" for character in value):
        return "must not contain lone surrogates (it must be valid UTF-8)"
    return None


def parse_limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if value.isascii() and value.isdigit() and len(value) <= 4:
        limit = int(value)
        if MIN_LIMIT <= limit <= MAX_LIMIT:
            return limit
    raise InvalidParameterError(
        f"limit must be an integer from {MIN_LIMIT} to {MAX_LIMIT}, got {shown(value)}",
        code="invalid_limit",
    )


def parse_after(value: str | None) -> str | None:
    if value is None:
        return None
    if not value:
        raise InvalidParameterError(
            "after must not be empty: pass the cursor from metadata.after, or omit it",
            code="invalid_cursor",
        )
    return value


def _reject_unknown(names: Iterable[str], allowed: tuple[str, ...] = ALLOWED_PARAMETERS) -> None:
    unknown = sorted({name for name in names if name not in allowed})
    if not unknown:
        return
    listed = ", ".join(shown(name) for name in unknown[:5])
    hint = " (the tenant is taken from the token)" if "tenant_id" in unknown else ""
    allowing = f"allowed: {', '.join(allowed)}" if allowed else "none is allowed here"
    raise InvalidParameterError(
        f"unknown query parameter {listed}{hint}; {allowing}", code="unknown_parameter"
    )


def _reject_repeated(names: Iterable[str]) -> None:
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise InvalidParameterError(
            f"query parameter {shown(repeated[0])} is given more than once; give it at most once",
            code="repeated_parameter",
        )


def shown(value: str) -> str:
    """`value` quoted for an error message, escaped and cut to a readable length."""
    if len(value) > _SHOWN_CHARACTERS:
        return repr(value[:_SHOWN_CHARACTERS]) + "..."
    return repr(value)
