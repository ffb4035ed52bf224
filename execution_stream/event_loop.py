"""The asyncio event loop the worker and the API run on: uvloop by default, the standard one by choice."""

from __future__ import annotations

import asyncio
from typing import Literal

EventLoop = Literal["uvloop", "asyncio"]


def use_event_loop(choice: EventLoop) -> None:
    """Every event loop created from now on (faust's consumer thread makes its own) is `choice`'s.

    uvloop's socket writes and callbacks cost less CPU than the standard loop's, a visible share of
    the worker's per execution; "asyncio" is there for a platform uvloop does not build on.
    """
    if choice == "uvloop":
        import uvloop  # noqa: PLC0415 - only where chosen

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    else:
        asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
