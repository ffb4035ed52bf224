"""Stopping a dispatched job at its runner: GitHub cancels the workflow run by its id; a topic-fed
runner gets a cancel record on `runner-jobs` and confirms by reporting `canceled`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from execution_stream.domain.commands import RunnerCancel
from execution_stream.domain.dispatch import CancelOutcome, DispatchError, GithubRun
from execution_stream.domain.enrichment import GITHUB_ACTIONS, DispatchTargetError, github_workflow_target
from execution_stream.domain.models import CancelReason, Execution
from execution_stream.domain.timestamps import format_timestamp
from execution_stream.observability.logs import execution_fields
from execution_stream.pipeline.messages import Destination, Effects, encode
from execution_stream.pipeline.ports import GithubDispatcher

logger = logging.getLogger(__name__)


@dataclass
class RunnerCancels:
    github: GithubDispatcher

    async def cancel(self, execution: Execution, confirm_by: datetime, effects: Effects) -> bool:
        """Asks the execution's runner to stop its job; True when the runner confirmed already
        (GitHub accepted the cancel of the run)."""
        if execution.job_runner == GITHUB_ACTIONS:
            return await self._cancel_github_run(execution)
        effects.send(
            Destination.RUNNER_JOBS,
            execution.tenant_id,
            encode(runner_cancel(execution, confirm_by)),
            execution.trace,
        )
        return False

    async def _cancel_github_run(self, execution: Execution) -> bool:
        ids = execution_fields(execution)
        if execution.workflow_run_id is None:
            logger.warning(
                "GitHub did not name the run: it is canceled here after the grace period", extra=ids
            )
            return False
        try:
            target = github_workflow_target(execution)
            run = GithubRun(target.installation_id, target.owner, target.repo, execution.workflow_run_id)
            outcome = await self.github.cancel_run(run)
        except (DispatchError, DispatchTargetError) as error:
            logger.warning("cancelling the GitHub run failed: %s", error, extra=ids)
            return False
        if outcome is CancelOutcome.ALREADY_FINISHED:
            logger.info("the GitHub run had finished before its cancel", extra=ids)
        return outcome is CancelOutcome.REQUESTED


def runner_cancel(execution: Execution, confirm_by: datetime) -> RunnerCancel:
    return RunnerCancel(
        tenant_id=execution.tenant_id,
        jit_event_id=execution.jit_event_id,
        execution_id=execution.execution_id,
        job_runner=execution.job_runner,
        attempt=execution.attempt,
        run_ref=execution.run_ref,
        reason=execution.cancel_reason or CancelReason.REQUESTED,
        requested_at=execution.cancel_requested_at or format_timestamp(confirm_by),
        confirm_by=format_timestamp(confirm_by),
    )
