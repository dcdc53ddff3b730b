"""Two halves of one step at once, with the one someone waits for run first, in place."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


async def alongside(background: Awaitable[object], here: Awaitable[object]) -> None:
    """Run `here` in the calling task and `background` in a task of its own, at once.

    `here` starts in this very step, not behind everything queued on the loop: with 300
    messages at once, a notice scheduled as a task of its own waited for the others' work.
    A failure is raised only when both halves have ended (`background`'s when both fail), so
    nothing of the step still runs while its failure is handled. Cancelled, both stop."""
    other = asyncio.ensure_future(background)
    try:
        await here
    except asyncio.CancelledError:
        other.cancel()
        await asyncio.wait((other,))
        raise
    except Exception:
        await asyncio.wait((other,))
        if not other.cancelled() and (error := other.exception()) is not None:
            raise error from None
        raise
    await other
