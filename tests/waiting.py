"""Waiting for something to happen in a test, instead of sleeping for a guessed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

#: how long a condition may take before the test fails: a bound for a stuck test, far above
#: what a loaded machine needs, never a claim about speed
PATIENCE_S = 30.0


async def wait_until(check: Callable[[], bool], what: str, *, within_s: float = PATIENCE_S) -> None:
    """Return once `check()` holds (looked at every 10 ms); fail the test, naming `what`, when
    it still does not after `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, f"still waiting after {within_s:g} s for {what}"
        await asyncio.sleep(0.01)
