"""Progress as the reference defines it: P = min(95, floor(elapsed / est_max × 100))."""

from __future__ import annotations

import math

CAP = 95


def percent(elapsed_s: float, est_max_s: float) -> int:
    """Never 100 before the service says done; held at 95 once past the estimate."""
    if est_max_s <= 0:
        return CAP
    return max(0, min(CAP, math.floor(elapsed_s / est_max_s * 100)))


def overdue(elapsed_s: float, est_max_s: float) -> bool:
    return elapsed_s > est_max_s
