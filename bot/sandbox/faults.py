"""Fault injection: seeded random errors and failures, and outcomes forced by tests (FIFO, once each).

Forced outcomes form ONE queue consumed by create requests in order:
- a forced create error answers the next create request (before its body is checked); nothing
  is created or charged;
- a forced hang, 502 answer, task failure or never-finishing task applies to the next task
  actually created (a request rejected by validation leaves it in the queue).
"""

from __future__ import annotations

import hashlib
import random
from collections import deque
from dataclasses import dataclass
from typing import Literal

from bot.sandbox.config import SandboxConfig
from bot.sandbox.data import rules
from bot.sandbox.errors import ApiError, forced

OutcomeKind = Literal["create_error", "create_hang", "create_then_502", "task_failure", "never_finishes"]
#: how a create that went through is answered: at once, late, or by a "gateway" with a 502 page
CreateAnswer = Literal["ok", "slow", "502"]


@dataclass(frozen=True)
class Outcome:
    """One forced outcome."""

    kind: OutcomeKind
    error: ApiError | None = None
    seconds: float = 0.0
    message: str | None = None


#: how far one task's render time strays from its kind's typical time
RENDER_NOISE = 0.08


def _fraction(kind: str) -> float:
    """A stable number in [0, 1) for a kind of task (not Python's per-process salted hash)."""
    return int.from_bytes(hashlib.blake2b(kind.encode(), digest_size=4).digest(), "big") / 2**32


class Faults:
    """Random faults drawn from RNGs seeded by the config, plus the queue of forced outcomes."""

    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        # one RNG per concern: e.g. timing draws never shift which request gets a 429
        self._http = random.Random(f"{config.seed}:http")
        self._fail = random.Random(f"{config.seed}:fail")
        self._time = random.Random(f"{config.seed}:time")
        self._answer = random.Random(f"{config.seed}:answer")
        self._queue: deque[Outcome] = deque()

    # -- forcing (tests) --------------------------------------------------------------------------
    def push(self, outcome: Outcome) -> None:
        self._queue.append(outcome)

    def pending(self) -> list[Outcome]:
        """Forced outcomes not consumed yet, in order."""
        return list(self._queue)

    def take_create_error(self) -> ApiError | None:
        """The forced error for this create request, if one is next in the queue."""
        if self._queue and self._queue[0].kind == "create_error":
            return self._queue.popleft().error
        return None

    def take_task_outcome(self) -> Outcome | None:
        """The forced outcome for the task being created, if one is next in the queue."""
        if self._queue and self._queue[0].kind != "create_error":
            return self._queue.popleft()
        return None

    # -- random (seeded) --------------------------------------------------------------------------
    def http_error(self) -> ApiError | None:
        """A random 429 or 500 for an API request, at the configured rates."""
        c = self._config
        if c.error_rate_429 <= 0 and c.error_rate_500 <= 0:
            return None
        r = self._http.random()
        if r < c.error_rate_429:
            return forced(429, None, None)
        if r < c.error_rate_429 + c.error_rate_500:
            return forced(500, None, None)
        return None

    def task_failure(self) -> str | None:
        """A failure message for a new task at the configured fail rate, else None."""
        if self._config.fail_rate <= 0:
            return None
        r = self._fail.random()
        messages: list[str] = rules()["failures"]["messages"]
        pick = self._fail.randrange(len(messages))
        return messages[pick] if r < self._config.fail_rate else None

    def create_answer(self) -> CreateAnswer:
        """How to answer a create whose task was made, at the configured 502 and slow rates."""
        c = self._config
        if c.create_502_rate <= 0 and c.slow_create_rate <= 0:
            return "ok"
        r = self._answer.random()
        if r < c.create_502_rate:
            return "502"
        if r < c.create_502_rate + c.slow_create_rate:
            return "slow"
        return "ok"

    def generation_seconds(self, est_min: float, est_max: float, kind: str = "") -> float:
        """How long a task takes, times the time scale. Like the service: each kind of task
        (model, task type, duration, resolution) has its own typical time somewhere in the
        model's estimate range, stable from run to run, and each task a little noise around it."""
        typical = est_min + (est_max - est_min) * _fraction(kind)
        noisy = typical * (1 + self._time.uniform(-RENDER_NOISE, RENDER_NOISE))
        return min(max(noisy, est_min), est_max) * self._config.time_scale
