"""The event loop setting chooses the loop every later `new_event_loop` makes, faust's threads' too."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import uvloop

from execution_stream.event_loop import use_event_loop
from execution_stream.settings import Settings


@pytest.fixture
def restored_policy() -> Iterator[None]:
    before = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(before)


@pytest.mark.usefixtures("restored_policy")
@pytest.mark.parametrize(
    ("choice", "loop_type"), [("uvloop", uvloop.Loop), ("asyncio", asyncio.BaseEventLoop)]
)
def test_the_chosen_loop_is_the_one_made(choice: str, loop_type: type) -> None:
    use_event_loop(Settings(event_loop=choice).event_loop)

    loop = asyncio.new_event_loop()
    try:
        assert isinstance(loop, loop_type)
        assert isinstance(loop, uvloop.Loop) == (choice == "uvloop")
    finally:
        loop.close()


def test_uvloop_is_the_default_and_another_loop_is_refused() -> None:
    assert Settings().event_loop == "uvloop"
    with pytest.raises(ValueError, match="event_loop"):
        Settings(event_loop="trio")
