"""People first: while someone still waits for the bot's first answer, spending calls wait.

A burst of messages (300 at once) shares one event loop with the create calls of the jobs it
starts. A create is a few milliseconds of HTTP work; the answer someone waits for (the notice,
a help text) is a fraction of that. Let the creates go first and the last notice of the burst
waits for ~300 creates. The video is a minute away either way: a create held back by the rest
of a burst's notices costs the user nothing. A steady flood cannot hold creates back for ever:
each waits at most `MAX_HOLD_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

#: the longest a create waits for the answers ahead of it (seconds)
MAX_HOLD_S = 1.0


class FirstAnswers:
    """Counts the messages and jobs that still owe someone their first answer."""

    def __init__(self, max_hold_s: float = MAX_HOLD_S) -> None:
        self.max_hold_s = max_hold_s
        self._owed = 0
        self._none_owed = asyncio.Event()
        self._none_owed.set()

    @property
    def owed(self) -> int:
        """How many first answers are still to be given."""
        return self._owed

    @contextlib.contextmanager
    def owing(self) -> Iterator[None]:
        """While inside, a first answer is owed (a message being taken, a job before its notice)."""
        self._owed += 1
        self._none_owed.clear()
        try:
            yield
        finally:
            self._owed -= 1
            if self._owed == 0:
                self._none_owed.set()

    async def turn(self) -> None:
        """Wait until no first answer is owed, or `max_hold_s`, whichever comes first."""
        if self._owed == 0:
            return
        # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancel that comes just as the
        # wait ends, and a job stopped at shutdown would go on to create a task
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.max_hold_s):
                await self._none_owed.wait()
