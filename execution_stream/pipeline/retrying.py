"""Pausing before trying again while an outside system is away (the steps' own retries)."""

from __future__ import annotations

import asyncio
import logging
import random

logger = logging.getLogger(__name__)
MAX_PAUSE_SECONDS = 15.0


async def pause(attempt: int, what: str, error: BaseException) -> None:
    """Exponential backoff with jitter: 0.1-0.2 s after the first failure, at most 15 s."""
    delay = min(MAX_PAUSE_SECONDS, 0.2 * 2**attempt) * random.uniform(0.5, 1.0)
    logger.warning("%s paused %.1fs: %s", what, delay, error)
    await asyncio.sleep(delay)
