"""Triggers whose asset is not known yet wait here, per tenant and asset, up to the configured time.

The execution is stored already (pending, `waiting_for_asset`); one table holds small references in
arrival order, one key each, so parking or waking costs the same whatever the number waiting:
- "G#<tenant>#<asset_id>"      the group: {"head", "tail", "head_first_seen_at"}
- "E#<tenant>#<asset_id>#<n>"  a ParkedTrigger
Entries are written (or deleted) before their group, on the same changelog partition, so a crash
leaves at worst entries the group does not count yet (written again on replay) or holes at its head
(taken already: their effects were sent before any write). A wake-up for an asset that arrived
completes up to `batch` waiting executions and asks for another wake-up while more wait; one for an
asset still unknown dead-letters those that waited too long.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from execution_stream.domain import commits
from execution_stream.domain.commits import Write
from execution_stream.domain.executions import AssetMismatchError, check_asset_matches, trigger_of
from execution_stream.domain.models import Asset, ExecutionEvent, ExecutionStatus
from execution_stream.domain.scheduling import DEFAULT_POLICY, SchedulingPolicy
from execution_stream.domain.store import ExecutionKey, StatusChange
from execution_stream.pipeline.messages import (
    DeadLetterReason,
    Destination,
    Effects,
    Outgoing,
    ParkedTrigger,
    SourceRecord,
    WakeUp,
    dead_letter,
    decode_keyed_by_tenant,
    encode,
    waiting_message,
)
from execution_stream.pipeline.ports import AssetLookup, ExecutionStore, TenantFilter, every_tenant
from execution_stream.pipeline.triggers import ready_to_allocate, request_allocation


@dataclass
class ParkedTriggerStep:
    table: MutableMapping[str, Any]
    repository: ExecutionStore
    assets: AssetLookup
    wait_seconds: float
    now: Callable[[], datetime]
    batch: int = 100
    policy: SchedulingPolicy = DEFAULT_POLICY

    async def handle(self, records: Sequence[SourceRecord]) -> Effects:
        """One record's effects, with its table writes to apply once they are sent (one at a time:
        a wake-up reads the group that the record before it may have changed)."""
        [record] = records
        message = decode_keyed_by_tenant(waiting_message, record)
        if isinstance(message, Outgoing):
            return Effects([message])
        writes, effects = await self.decide(message)
        effects.then_store(partial(self.commit, writes), source=record)
        return effects

    async def decide(self, message: ParkedTrigger | WakeUp) -> tuple[list[Write], Effects]:
        """The table writes to apply once the returned effects are sent."""
        effects = Effects()
        if isinstance(message, ParkedTrigger):
            return self._append(message), effects
        group_key = _group_key(message.tenant_id, message.asset_id)
        group = self.table.get(group_key)
        if group is None:
            return [], effects
        asset = self.assets.get(message.asset_id)
        taken, writes = self._take(group_key, group, everything=asset is not None)
        if asset is not None:
            await asyncio.gather(*(self._complete(parked, asset, effects) for parked in taken))
            if writes[-1].value is not None:  # the group still has entries
                effects.send(Destination.WAITING, message.tenant_id, encode(message))
        else:
            await asyncio.gather(*(self._give_up(parked, effects) for parked in taken))
        return writes, effects

    def commit(self, writes: list[Write]) -> None:
        commits.apply(self.table, writes)

    def wake_ups(self, owns: TenantFilter = every_tenant) -> Effects:
        """A wake-up for every group whose asset arrived or whose oldest trigger waited too long."""
        effects, now = Effects(), self.now().timestamp()
        for key in list(self.table):  # the keys only: cheap beside (key, value) pairs of every entry
            group = self.table.get(key) if key.startswith("G#") else None
            if group is None:
                continue
            _, tenant, asset_id = key.split("#", 2)
            if not owns(tenant):
                continue
            overdue = now - group["head_first_seen_at"] >= self.wait_seconds
            if overdue or self.assets.get(asset_id) is not None:
                effects.send(Destination.WAITING, tenant, encode(WakeUp(tenant_id=tenant, asset_id=asset_id)))
        return effects

    def _append(self, parked: ParkedTrigger) -> list[Write]:
        group_key = _group_key(parked.tenant_id, parked.asset_id)
        group = self.table.get(group_key) or {
            "head": 0,
            "tail": 0,
            "head_first_seen_at": parked.first_seen_at,
        }
        entry = Write(_entry_key(group_key, group["tail"]), parked.model_dump(mode="json"))
        return [entry, Write(group_key, {**group, "tail": group["tail"] + 1})]

    def _take(
        self, group_key: str, group: dict[str, Any], *, everything: bool
    ) -> tuple[list[ParkedTrigger], list[Write]]:
        """Up to `batch` from the head (any of them, or only those that waited too long), and the
        writes that take them out: entries first, the group last."""
        head, tail, now = group["head"], group["tail"], self.now().timestamp()
        taken: list[ParkedTrigger] = []
        writes: list[Write] = []
        while head < tail and len(taken) < self.batch:
            stored = self.table.get(_entry_key(group_key, head))
            if stored is not None:
                parked = ParkedTrigger.model_validate(stored)
                if not everything and now - parked.first_seen_at < self.wait_seconds:
                    break
                taken.append(parked)
                writes.append(Write(_entry_key(group_key, head), None))
            head += 1
        next_entry = self.table.get(_entry_key(group_key, head)) if head < tail else None
        if next_entry is None and head >= tail:
            return taken, [*writes, Write(group_key, None)]
        first_seen = next_entry["first_seen_at"] if next_entry else group["head_first_seen_at"]
        return taken, [
            *writes,
            Write(group_key, {"head": head, "tail": tail, "head_first_seen_at": first_seen}),
        ]

    async def _complete(self, parked: ParkedTrigger, asset: Asset, effects: Effects) -> None:
        try:
            check_asset_matches(asset, parked.tenant_id, parked.asset_id, parked.target_attributes)
        except AssetMismatchError as error:
            await self._fail(parked, DeadLetterReason.ASSET_MISMATCH, str(error), effects)
            return
        stored = await self.repository.complete_waiting(_key_of(parked), asset)
        # Pending and complete: stored now, or by an earlier attempt whose answer was lost.
        if ready_to_allocate(stored):
            request_allocation(stored, effects, self.policy)

    async def _give_up(self, parked: ParkedTrigger, effects: Effects) -> None:
        waited = f"asset {parked.asset_id!r} unknown after waiting {self.wait_seconds:g}s"
        await self._fail(parked, DeadLetterReason.ASSET_NOT_FOUND, waited, effects)

    async def _fail(
        self, parked: ParkedTrigger, reason: DeadLetterReason, message: str, effects: Effects
    ) -> None:
        """The execution fails with the reason, and its trigger goes to the dead letters."""
        change = StatusChange(ExecutionStatus.FAILED, self.now(), error=f"{reason.value}: {message}")
        result = await self.repository.update_status(_key_of(parked), change)
        execution = result.execution
        if execution is None or execution.status is not ExecutionStatus.FAILED:
            return
        if result.applied:
            event = ExecutionEvent.from_change(execution, ExecutionStatus.PENDING)
            effects.publish(event, execution.trace)
        trigger = trigger_of(execution).model_dump_json(exclude={"created_at"}).encode()
        effects.outgoing.append(dead_letter(_source_of(parked, trigger), reason, message, execution.trace))


def _group_key(tenant: str, asset_id: str) -> str:
    return f"G#{tenant}#{asset_id}"


def _entry_key(group_key: str, n: int) -> str:
    return f"E{group_key.removeprefix('G')}#{n}"


def _key_of(parked: ParkedTrigger) -> ExecutionKey:
    return ExecutionKey(parked.tenant_id, parked.jit_event_id, parked.execution_id)


def _source_of(parked: ParkedTrigger, value: bytes) -> SourceRecord:
    fields = parked.source
    return SourceRecord(
        topic=fields["topic"],
        partition=fields["partition"],
        offset=fields["offset"],
        key=fields["key"].encode() if fields.get("key") is not None else None,
        value=value,
        timestamp_ms=fields.get("timestamp_ms"),
    )
