import random

import pytest

from execution_stream.domain.backoff import backoff_seconds


def test_without_a_draw_the_wait_doubles_from_the_first_up_to_the_most() -> None:
    waits = [backoff_seconds(n, first_seconds=0.2, max_seconds=1.0) for n in range(5)]
    assert waits == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0])


def test_a_draw_spreads_the_wait_over_its_upper_half() -> None:
    def wait(draw: float) -> float:
        return backoff_seconds(2, first_seconds=0.5, max_seconds=15.0, draw=draw)

    assert (wait(0.0), wait(0.5), wait(1.0)) == pytest.approx((1.0, 1.5, 2.0))


def test_jittered_waits_stay_within_half_to_all_of_the_backoff() -> None:
    chance = random.Random(7)
    waits = [backoff_seconds(n, first_seconds=0.2, max_seconds=15.0, draw=chance.random()) for n in range(40)]
    assert all(0.1 * 2**n <= w <= 0.2 * 2**n for n, w in enumerate(waits[:7]))
    assert all(7.5 <= w <= 15.0 for w in waits[7:])  # 0.2 s doubled 7 times passes 15 s


def test_a_huge_attempt_waits_the_most_instead_of_overflowing() -> None:
    assert backoff_seconds(10_000, first_seconds=5.0, max_seconds=300.0) == 300.0


@pytest.mark.parametrize("draw", [-0.1, 1.5])
def test_a_draw_outside_zero_to_one_is_refused(draw: float) -> None:
    with pytest.raises(ValueError, match="draw"):
        backoff_seconds(0, first_seconds=1.0, max_seconds=2.0, draw=draw)
