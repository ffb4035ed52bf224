"""Pausing before trying again while an outside system is away (the steps' own retries), and saying
so: one line per pause, loud when the store refuses the service itself (an operator must act)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

from execution_stream.domain.backoff import backoff_seconds
from execution_stream.domain.store import RepositoryAccessError, RepositoryUnavailableError

logger = logging.getLogger(__name__)
T = TypeVar("T")
MAX_PAUSE_SECONDS = 15.0
# Pauses since the process started because the store refused the service, by error code. A tally
# here rather than a metric object: every step and agent pauses through `report_pause` without being
# handed one, and the worker's metrics read it (streaming/metrics.py).
store_access_pauses: Counter[str] = Counter()


async def pause(attempt: int, what: str, error: BaseException) -> None:
    """Exponential backoff with jitter: 0.1-0.2 s after the first failure, at most 15 s."""
    delay = backoff_seconds(attempt, first_seconds=0.2, max_seconds=MAX_PAUSE_SECONDS, draw=random.random())
    report_pause(what, delay, error)
    await asyncio.sleep(delay)


async def until_answered(call: Callable[[], Awaitable[T]], what: str) -> T:
    """`call` again after each pause while DynamoDB is unavailable: one call at a time, so that a
    retry never finds its own earlier write refused as someone else's."""
    for attempt in itertools.count():
        try:
            return await call()
        except RepositoryUnavailableError as error:
            await pause(attempt, what, error)
    raise AssertionError("unreachable")


def report_pause(what: str, delay: float, error: BaseException) -> None:
    """A warning for a fault that heals by itself; an error, counted, for one that needs an operator."""
    if not isinstance(error, RepositoryAccessError):
        logger.warning("%s paused %.1fs: %s", what, delay, error)
        return
    store_access_pauses[error.code] += 1
    logger.error(
        "%s paused %.1fs: DynamoDB refuses the service (%s); an operator must restore its credentials, "
        "IAM permissions or table. Records wait, none is dead-lettered; work resumes once DynamoDB "
        "answers: %s",
        what,
        delay,
        error.code,
        error,
        extra={"dependency": "dynamodb", "reason": error.code},
    )
