"""When to ask the service whether a task is done, learned from how long such tasks took.

A fixed 8 s timer asks ~11 times per video and learns of the result ~4 s late on average. The
render time of a model for given parameters is fairly stable, so: nothing before the fast
end of what such tasks took (a low quantile of their history, else the catalog's estimated
minimum), then dense polls across the likely window, then never sparser than every 8 s once
past it. Pure functions of (history, elapsed): tested without sleeping.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

#: how many past times of one kind are kept, and how many are needed before they are trusted
HISTORY_SIZE = 50
MIN_HISTORY = 3
#: the window of likely finishes: these quantiles of past times
LOW_Q, HIGH_Q = 0.1, 0.9
#: polls across the window (its width divided by this), within these gaps (unscaled seconds)
POLLS_IN_WINDOW = 5
MIN_GAP_S, MAX_GAP_S = 1.0, 4.0
#: past the window: never sparser than this (unscaled seconds), as the reference's timer
LATE_GAP_S = 8.0


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile of `values` (linear between neighbours); `values` must not be empty."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def window(history: Sequence[float], est_min: float, est_max: float) -> tuple[float, float]:
    """(earliest, latest) likely finish in seconds after the create: from history when there
    is enough of it, else the catalog's estimate."""
    if len(history) >= MIN_HISTORY:
        return quantile(history, LOW_Q), quantile(history, HIGH_Q)
    return est_min, est_max


def next_poll(elapsed: float, lo: float, hi: float, scale: float = 1.0) -> float:
    """Seconds after the create at which to poll next, given `elapsed` seconds now."""
    gap = min(max((hi - lo) / POLLS_IN_WINDOW, MIN_GAP_S * scale), MAX_GAP_S * scale)
    if elapsed < lo:
        return lo
    if elapsed < hi + gap:
        return elapsed + gap
    return elapsed + min(LATE_GAP_S * scale, 2 * gap)


@dataclass
class RenderHistory:
    """How long finished tasks took, per kind of task (model, task type, duration, resolution)."""

    size: int = HISTORY_SIZE
    _times: dict[str, deque[float]] = field(default_factory=dict)

    @staticmethod
    def kind(model_key: str | None, task_type: str, params: dict[str, object]) -> str:
        """The parameters that drive render time, as one key."""
        return f"{model_key}|{task_type}|{params.get('duration')}|{params.get('resolution')}"

    def record(self, kind: str, seconds: float) -> None:
        self._times.setdefault(kind, deque(maxlen=self.size)).append(seconds)

    def of(self, kind: str) -> Sequence[float]:
        return tuple(self._times.get(kind, ()))
