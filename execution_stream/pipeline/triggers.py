"""trigger-execution: decode, join with the asset, store the execution, ask for a slot."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from execution_stream.domain.executions import AssetMismatchError, build_execution
from execution_stream.domain.models import Execution, ExecutionEvent, ExecutionStatus, TriggerEvent
from execution_stream.domain.ports import CreateResult, ExecutionRepository, RepositoryError
from execution_stream.domain.ports import RepositoryUnavailableError as Unavailable
from execution_stream.observability.logs import job_fields
from execution_stream.pipeline.ports import AssetLookup
from execution_stream.pipeline.records import (
    AllocationRequest,
    DeadLetterReason,
    Destination,
    Effects,
    ParkedTrigger,
    SourceRecord,
    dead_letter,
    encode,
)

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
    repository: ExecutionRepository
    assets: AssetLookup
    now: Callable[[], datetime]

    async def handle(self, records: Sequence[SourceRecord]) -> Effects:
        effects = Effects()
        prepared = [p for p in (self._prepare(record, effects) for record in records) if p is not None]
        await self.store(prepared, effects)
        return effects

    def _prepare(self, record: SourceRecord, effects: Effects) -> Prepared | None:
        try:
            event = decode_trigger(record.value)
        except RejectedRecordError as rejected:
            effects.outgoing.append(dead_letter(record, rejected.reason, str(rejected)))
            return None
        asset = self.assets.get(event.asset_id)
        if asset is None:
            parked = ParkedTrigger(
                tenant_id=event.tenant_id,
                source=record.to_json(),
                trigger=event.model_dump(mode="json"),
                first_seen_at=self.now().timestamp(),
            )
            effects.send(Destination.WAITING, event.tenant_id, encode(parked))
            return None
        return self.prepare_with_asset(record, event, effects)

    def prepare_with_asset(
        self, record: SourceRecord, event: TriggerEvent, effects: Effects
    ) -> Prepared | None:
        asset = self.assets.get(event.asset_id)
        if asset is None:
            return None
        try:
            return Prepared(record, build_execution(event, asset, self.now()))
        except AssetMismatchError as error:
            effects.outgoing.append(dead_letter(record, DeadLetterReason.ASSET_MISMATCH, str(error)))
            return None

    async def store(self, prepared: Sequence[Prepared], effects: Effects) -> None:
        requested: set[str] = set()
        for item, result in zip(prepared, await self._create(prepared, effects), strict=True):
            if result is None or result.execution.execution_id in requested:
                continue
            requested.add(result.execution.execution_id)
            # Sent again on a replay that finds it pending: a crash may have come between store and send.
            if result.created or result.execution.status is ExecutionStatus.PENDING:
                event = ExecutionEvent.from_change(result.execution, None)
                effects.send(Destination.EVENTS, result.execution.tenant_id, encode(event))
            # A replay may find it stored and still pending: the allocator ignores a duplicate request.
            if result.execution.status is ExecutionStatus.PENDING:
                request = AllocationRequest(execution=result.execution)
                effects.send(Destination.ALLOCATE, item.execution.tenant_id, encode(request))

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
            ids = job_fields(execution.tenant_id, execution.jit_event_id, execution.execution_id)
            logger.warning("the store refused the execution: %s", error, extra=ids)
            effects.outgoing.append(dead_letter(item.source, DeadLetterReason.STORE_REFUSED, str(error)))
            return None
