"""How long to wait before trying again: exponential backoff, with jitter when asked."""

from __future__ import annotations

# Past this many doublings every sensible ceiling is reached; more would overflow a float.
MAX_DOUBLINGS = 32


def backoff_seconds(
    attempt: int, *, first_seconds: float, max_seconds: float, draw: float | None = None
) -> float:
    """The wait before retry `attempt` (0 for the first): `first_seconds` doubled `attempt` times, at
    most `max_seconds`.

    `draw`, a number drawn uniformly from [0, 1], spreads the wait over its upper half (half to all
    of it): clients that failed together do not all come back together, and none comes back much
    sooner than the backoff means. Without it the wait is exact.
    """
    ceiling = min(max_seconds, first_seconds * 2.0 ** min(attempt, MAX_DOUBLINGS))
    if draw is None:
        return ceiling
    if not 0.0 <= draw <= 1.0:
        raise ValueError(f"draw must be within [0, 1], not {draw}")
    return ceiling * (0.5 + draw / 2)
