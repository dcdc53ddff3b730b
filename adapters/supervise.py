"""Run every configured platform side by side: one failing never stops the others.

Each adapter's `start()` serves until `stop()`; when it raises instead (Discord refused the
login, Feishu refused the app, a connection failed for good), the failure is logged and the
adapter is started again after a pause that doubles up to a ceiling, while the other platforms
keep serving. Every change of state is logged, and once each adapter has either come up or
failed once, one line sums them all up ("feishu: ready; discord: retrying in 4 s (LoginFailure:
...)"), so an operator sees at start what works.

Words here are for operators (logs), not for people in a chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from adapters.base import Adapter
from bot.backoff import backoff

log = logging.getLogger(__name__)

#: what a platform is doing: starting | ready | retrying | stopped
STARTING, READY, RETRYING, STOPPED = "starting", "ready", "retrying", "stopped"


@dataclass
class PlatformState:
    """One adapter's state, as `python -m bot` reports it."""

    platform: str
    state: str = STARTING
    #: the last failure, as "Type: message" (None once it is ready again)
    error: str | None = None
    #: how many times it failed in a row
    failures: int = 0
    #: when the next attempt starts (monotonic seconds), while retrying
    retry_at: float | None = None
    since: float = field(default_factory=time.monotonic)

    def describe(self) -> str:
        if self.state == RETRYING and self.retry_at is not None:
            wait = max(0.0, self.retry_at - time.monotonic())
            return f"{self.platform}: retrying in {wait:.0f} s ({self.error})"
        if self.state == STARTING and self.error:
            return f"{self.platform}: starting again (last failure: {self.error})"
        return f"{self.platform}: {self.state}"


class Supervisor:
    """Runs adapters until `stop()`, restarting each one that fails, with backoff.

    `on_ready(platform, adapter)` runs once per adapter, the first time it is ready (the bot
    resumes that platform's unfinished jobs there)."""

    def __init__(
        self,
        adapters: dict[str, Adapter],
        *,
        on_ready: Callable[[str, Adapter], Awaitable[object]] | None = None,
        backoff_s: float = 2.0,
        max_backoff_s: float = 300.0,
        stable_after_s: float = 60.0,
    ) -> None:
        self.adapters = adapters
        self.on_ready = on_ready
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        #: an adapter that served this long before failing starts its backoff over
        self.stable_after_s = stable_after_s
        self.states = {name: PlatformState(name) for name in adapters}
        self._stopping = asyncio.Event()
        self._reported = False
        self._tasks: list[asyncio.Task[None]] = []
        #: adapters already handed to on_ready (once each)
        self._handed: set[str] = set()

    def report(self) -> str:
        """Every platform's state, on one line."""
        return "; ".join(s.describe() for s in self.states.values())

    async def run(self) -> None:
        """Serve every adapter until `stop()`."""
        if not self.adapters:
            return
        try:
            await asyncio.gather(*(self._supervise(name, adapter) for name, adapter in self.adapters.items()))
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        log.info("platforms stopped: %s", self.report())

    async def stop(self) -> None:
        """Stop every adapter; `run()` returns once they have."""
        self._stopping.set()
        await asyncio.gather(*(a.stop() for a in self.adapters.values()), return_exceptions=True)

    async def _supervise(self, name: str, adapter: Adapter) -> None:
        state = self.states[name]
        while not self._stopping.is_set():
            state.state, state.retry_at = STARTING, None
            log.info("%s: starting", name)
            started = time.monotonic()
            watch = asyncio.create_task(self._watch_ready(name, adapter))
            try:
                await adapter.start()
                error: BaseException | None = None
            except asyncio.CancelledError:
                watch.cancel()
                raise
            except Exception as e:  # a platform's failure is that platform's: log, wait, retry
                error = e
            watch.cancel()
            if self._stopping.is_set():
                break
            if time.monotonic() - started > self.stable_after_s:
                state.failures = 0
            state.failures += 1
            state.error = _describe(error) if error else "stopped serving"
            delay = backoff(state.failures - 1, self.backoff_s, self.max_backoff_s)
            state.state, state.retry_at = RETRYING, time.monotonic() + delay
            others = " (the other platforms keep serving)" if len(self.adapters) > 1 else ""
            log.error("%s failed: %s; retrying in %.0f s%s", name, state.error, delay, others)
            self._maybe_report()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):  # not wait_for: on 3.11 it can lose a cancel
                    await self._stopping.wait()
        state.state, state.retry_at = STOPPED, None

    async def _watch_ready(self, name: str, adapter: Adapter) -> None:
        """Mark the adapter ready when it is; the first time, hand it to `on_ready`."""
        await adapter.wait_ready()
        state = self.states[name]
        state.state, state.error, state.since = READY, None, time.monotonic()
        log.info("%s: ready", name)
        self._maybe_report()
        if name not in self._handed and self.on_ready is not None:
            self._handed.add(name)
            self._tasks.append(asyncio.create_task(self._guarded(name, self.on_ready(name, adapter))))

    async def _guarded(self, name: str, work: Awaitable[object]) -> None:
        try:
            await work
        except Exception:
            log.exception("%s: resuming its jobs failed", name)

    def _maybe_report(self) -> None:
        """Once every platform has come up or failed once: one line with all of them."""
        if self._reported or any(s.state == STARTING for s in self.states.values()):
            return
        self._reported = True
        log.info("platforms: %s", self.report())


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
