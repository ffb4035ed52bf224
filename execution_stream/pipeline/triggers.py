"""trigger-execution: decode, join with the asset, store the execution, ask for a slot."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeGuard

from pydantic import ValidationError

from execution_stream.domain.executions import (
    AssetMismatchError,
    build_execution,
    build_waiting_execution,
    target_attributes,
)
from execution_stream.domain.models import Execution, ExecutionEvent, ExecutionStatus, TriggerEvent
from execution_stream.domain.scheduling import DEFAULT_POLICY, SchedulingPolicy
from execution_stream.domain.store import CreateResult, ExecutionKey, RepositoryError
from execution_stream.domain.store import RepositoryUnavailableError as Unavailable
from execution_stream.domain.timestamps import parse_timestamp
from execution_stream.observability.logs import execution_fields
from execution_stream.pipeline.messages import (
    AllocationRequest,
    DeadLetterReason,
    Destination,
    Effects,
    ParkedTrigger,
    SourceRecord,
    dead_letter,
    encode,
)
from execution_stream.pipeline.ports import AssetLookup, ExecutionStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    source: SourceRecord
    execution: Execution


class RejectedRecordError(Exception):
    def __init__(self, reason: DeadLetterReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def decode_trigger(raw: bytes | None) -> TriggerEvent:
    if raw is None:
        raise RejectedRecordError(DeadLetterReason.INVALID, "the record has no value")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RejectedRecordError(DeadLetterReason.NOT_JSON, f"not JSON: {error}") from error
    try:
        return TriggerEvent.model_validate(document)
    except ValidationError as error:
        raise RejectedRecordError(DeadLetterReason.INVALID, _describe(error)) from error


def _describe(error: ValidationError) -> str:
    problems = [f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in error.errors()[:10]]
    return "; ".join(problems)


@dataclass
class TriggerStep:
    repository: ExecutionStore
    assets: AssetLookup
    now: Callable[[], datetime]
    policy: SchedulingPolicy = DEFAULT_POLICY

    async def handle(self, records: Sequence[SourceRecord]) -> Effects:
        effects = Effects()
        prepared = [p for p in (self._prepare(record, effects) for record in records) if p is not None]
        await self.store(prepared, effects)
        return effects

    def _prepare(self, record: SourceRecord, effects: Effects) -> Prepared | None:
        trace = record.received_trace()
        try:
            event = decode_trigger(record.value)
        except RejectedRecordError as rejected:
            effects.outgoing.append(dead_letter(record, rejected.reason, str(rejected), trace))
            return None
        asset = self.assets.get(event.asset_id)
        try:
            priority = self.policy.priority_of(event)
            if asset is None:
                return Prepared(record, build_waiting_execution(event, self.now(), trace, priority=priority))
            return Prepared(record, build_execution(event, asset, self.now(), trace, priority=priority))
        except AssetMismatchError as error:
            letter = dead_letter(record, DeadLetterReason.ASSET_MISMATCH, str(error), trace)
            effects.outgoing.append(letter)
            return None

    async def store(self, prepared: Sequence[Prepared], effects: Effects) -> None:
        """Stored pending (a conditional put), then an allocation request, or parked while the
        asset is unknown. A replay finds its execution stored and sends what it would have sent."""
        requested: set[str] = set()
        to_complete: list[Execution] = []
        for item, result in zip(prepared, await self._create(prepared, effects), strict=True):
            stored = result.execution if result is not None else None
            if stored is None or stored.execution_id in requested:
                continue
            requested.add(stored.execution_id)
            # The stored execution's trace context: a replay's trigger may carry another, or none.
            trace = stored.trace
            # Sent again on a replay that finds it pending: a crash may have come between store and send.
            if result is not None and (result.created or stored.status is ExecutionStatus.PENDING):
                event = ExecutionEvent.from_change(stored, None)
                effects.publish(event, trace)
            if stored.status is not ExecutionStatus.PENDING:
                continue
            if stored.waiting_for_asset is None:
                request_allocation(stored, effects, self.policy)
            elif item.execution.waiting_for_asset is None:
                to_complete.append(stored)  # the asset came while it was parked
            else:
                parked = encode(self._parked(item, stored))
                effects.send(Destination.WAITING, stored.tenant_id, parked, trace)
        for stored in await asyncio.gather(*(self._complete(waiting) for waiting in to_complete)):
            if ready_to_allocate(stored):
                request_allocation(stored, effects, self.policy)

    async def _complete(self, waiting: Execution) -> Execution | None:
        asset = self.assets.get(waiting.asset_id)
        if asset is None:
            return None
        return await self.repository.complete_waiting(ExecutionKey.of(waiting), asset)

    def _parked(self, item: Prepared, stored: Execution) -> ParkedTrigger:
        source = item.source.to_json()
        source.pop("value", None)  # the trigger is kept in the stored execution, not in the table
        return ParkedTrigger(
            tenant_id=stored.tenant_id,
            jit_event_id=stored.jit_event_id,
            execution_id=stored.execution_id,
            asset_id=stored.asset_id,
            # When it was stored: a replay parks it again with the same time, so its wait does not restart.
            first_seen_at=parse_timestamp(stored.created_at).timestamp(),
            source=source,
            target_attributes=target_attributes(stored.additional_attributes),
            traceparent=stored.traceparent,
            tracestate=stored.tracestate,
        )

    async def _create(self, prepared: Sequence[Prepared], effects: Effects) -> list[CreateResult | None]:
        try:
            return list(await self.repository.create_many([p.execution for p in prepared]))
        except Unavailable:
            raise
        except RepositoryError:
            return [await self._create_one(item, effects) for item in prepared]

    async def _create_one(self, item: Prepared, effects: Effects) -> CreateResult | None:
        """One by one, so that one item the store refuses does not hold back the others."""
        try:
            return await self.repository.create(item.execution)
        except Unavailable:
            raise
        except RepositoryError as error:
            execution = item.execution
            logger.warning("the store refused the execution: %s", error, extra=execution_fields(execution))
            letter = dead_letter(item.source, DeadLetterReason.STORE_REFUSED, str(error), execution.trace)
            effects.outgoing.append(letter)
            return None


def request_allocation(execution: Execution, effects: Effects, policy: SchedulingPolicy) -> None:
    request = encode(AllocationRequest.of(execution, policy.concurrency_of(execution)))
    effects.send(Destination.ALLOCATE, execution.tenant_id, request, execution.trace)


def ready_to_allocate(stored: Execution | None) -> TypeGuard[Execution]:
    """Stored, pending and joined with its asset: the execution asks for a slot."""
    return stored is not None and stored.status is ExecutionStatus.PENDING and not stored.waiting_for_asset
