"""bot.backoff: the one doubling rule the retry loops share."""

from __future__ import annotations

from bot.backoff import backoff


def test_the_wait_doubles_from_the_first_up_to_the_ceiling() -> None:
    assert [backoff(n, 2.0, 300.0) for n in range(10)] == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]


def test_the_wait_matches_the_retry_loops_formulas_it_replaces() -> None:
    for n in range(40):
        assert backoff(n, 1.0, 30.0) == min(30.0, 2.0**n)
        assert backoff(n, 2.0, 300.0) == min(300.0, 2.0 * 2**n)


def test_a_long_run_of_failures_stays_at_the_ceiling_instead_of_overflowing() -> None:
    # 2.0 * 2**1100 raises OverflowError; a platform that fails for days must still be retried
    assert backoff(5000, 2.0, 300.0) == 300.0
