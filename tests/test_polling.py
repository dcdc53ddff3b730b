"""When to poll: a pure function of the history of such tasks and the time elapsed."""

from __future__ import annotations

from bot.polling import LATE_GAP_S, RenderHistory, next_poll, quantile, window


def test_without_history_the_catalog_estimate_is_the_window() -> None:
    assert window([], 60, 120) == (60, 120)
    assert window([80.0, 81.0], 60, 120) == (60, 120)  # too little to trust


def test_with_history_the_window_is_its_likely_range() -> None:
    lo, hi = window([90.0 + i for i in range(11)], 60, 120)
    assert (lo, hi) == (91.0, 99.0)


def test_nothing_is_asked_before_the_fast_end_of_the_window() -> None:
    assert next_poll(0.0, 90.0, 100.0) == 90.0
    assert next_poll(50.0, 90.0, 100.0) == 90.0


def test_polls_are_dense_inside_the_window() -> None:
    assert next_poll(90.0, 90.0, 100.0) == 92.0  # (100 - 90) / 5


def test_gaps_stay_between_one_and_four_seconds_inside_the_window() -> None:
    assert next_poll(90.0, 90.0, 91.0) == 91.0
    assert next_poll(60.0, 60.0, 120.0) == 64.0


def test_past_the_window_it_never_waits_longer_than_eight_seconds() -> None:
    gaps = [next_poll(e, 60.0, 120.0) - e for e in (130.0, 300.0, 1000.0)]
    assert all(0 < g <= LATE_GAP_S for g in gaps)


def test_time_scale_shrinks_the_gaps() -> None:
    assert next_poll(130.0, 60.0, 120.0, scale=0.1) - 130.0 <= LATE_GAP_S * 0.1 + 1e-9


def test_a_learned_schedule_polls_far_less_than_a_fixed_timer_for_a_steady_model() -> None:
    history = [93.0, 95.0, 96.0, 94.0, 97.0, 95.5, 94.5]
    lo, hi = window(history, 60, 120)
    finish, t, polls = 95.2, 0.0, 0
    while True:
        t = next_poll(t, lo, hi)
        polls += 1
        if t >= finish:
            break
    fixed_polls = int(finish // 8) + 1
    assert polls * 2 <= fixed_polls and t - finish < 2.0


def test_history_is_kept_per_kind_and_bounded() -> None:
    h = RenderHistory(size=3)
    kind = RenderHistory.kind("wan-2.6", "text_to_video", {"duration": 5, "resolution": "720P"})
    for s in (1.0, 2.0, 3.0, 4.0):
        h.record(kind, s)
    assert h.of(kind) == (2.0, 3.0, 4.0) and h.of("other") == ()


def test_quantile_interpolates() -> None:
    assert quantile([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0 and quantile([1.0, 3.0], 0.5) == 2.0
