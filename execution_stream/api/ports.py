"""What the API reads from the store (a tenant's executions page by page, one execution, the queue
snapshots that say why pending ones wait, and whether the store answers at all), and where it sends
commands to the worker."""

from __future__ import annotations

from typing import Protocol

from execution_stream.domain.commands import CancelCommand
from execution_stream.domain.models import Execution
from execution_stream.domain.store import ExecutionPage, ExecutionQuery, QueueSnapshot


class ExecutionReader(Protocol):
    async def list(self, query: ExecutionQuery) -> ExecutionPage:
        """Newest first; `next_key` is None exactly on the last page."""
        ...

    async def find(self, tenant_id: str, execution_id: str) -> Execution | None: ...

    async def queue_snapshots(self, tenant_id: str, runners: frozenset[str]) -> dict[str, QueueSnapshot]:
        """The snapshots of `tenant_id`'s queues for `runners`, by runner; a missing one is absent."""
        ...

    async def ping(self) -> None: ...


class CommandPublisher(Protocol):
    async def send(self, command: CancelCommand) -> None:
        """Returns once the command is on its topic; raises CommandsUnavailableError."""
        ...
