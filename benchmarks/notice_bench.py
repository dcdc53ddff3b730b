"""Quick to answer: time from a message reaching the core to its pre-generation notice.

The sandbox runs in its own process; the core, its SQLite file and the IMA client run here.
Three rounds of --messages each: one after another (warm cache), all at once, and all at once
while the product list keeps expiring (a 0.5 s TTL: it is refreshed during the round).

The sandbox renders a real mp4 for every task it is asked to create, on this machine's cores;
the real service renders elsewhere. So each round starts once the sandbox has rendered what
the rounds before it created (its CPU time, read from /proc, stands still), and the table says
how much CPU the sandbox used during each round (0 when nothing competed with the bot) and
warns when a round started while it was still busy. The refreshing round starts once its
product list has expired (still served while it is refreshed, up to 5 TTLs late); the table
says how old the list was and how often it was fetched during the round.

    .venv/bin/python benchmarks/notice_bench.py [--messages 300]

Ends with one JSON line: {"messages": N, "sequential": {"p50_ms", "p95_ms"}, "burst": {...},
"refreshing": {...}}. Target: p95 < 50 ms in each round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import SecretStr

from adapters.base import FailureView, Incoming, NoticeView, ProgressView, VideoView
from bot.app import settle_heap
from bot.config import SANDBOX_KEY, Settings
from bot.sandbox import process as sandbox_process
from tests.conftest import close_core, open_core

PROMPTS = [
    "生成一段小狗在草地上奔跑的视频",
    "make a video of rain on a window, 5 seconds",
    "用海螺做个竖屏的城市夜景视频",
]


class Timed:
    """Notes when the notice arrives; `settled` runs once, at the notice or when the job ends
    without one."""

    def __init__(self, settled: Callable[[], None]) -> None:
        self.start = time.perf_counter()
        self.notice_at: float | None = None
        self._settled = settled
        self._open = True

    def settle(self) -> None:
        if self._open:
            self._open = False
            self._settled()

    async def notice(self, view: NoticeView) -> None:
        self.notice_at = self.notice_at or time.perf_counter()
        self.settle()

    async def progress(self, view: ProgressView) -> None: ...
    async def video(self, view: VideoView) -> None: ...
    async def failure(self, view: FailureView) -> None: ...
    async def text(self, text: str) -> None: ...


class Countdown:
    """An event set when `n` conversations have settled: one waiter for the whole round, not
    one per message (300 waiters would load the loop being measured)."""

    def __init__(self, n: int) -> None:
        self.left = n
        self.done = asyncio.Event()
        if n == 0:
            self.done.set()

    def tick(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.done.set()


def _summary(convs: list[Timed]) -> dict[str, float]:
    times = sorted((c.notice_at - c.start) * 1000 for c in convs if c.notice_at is not None)
    return {
        "p50_ms": round(times[len(times) // 2], 1),
        "p95_ms": round(times[int(len(times) * 0.95)], 1),
        "notices": len(times),
    }


async def _round(core: object, n: int, tag: str, together: bool) -> list[Timed]:
    handle = core.handle  # type: ignore[attr-defined]
    countdown = Countdown(n if together else 1)
    convs = [Timed(countdown.tick) for _ in range(n)]

    async def one(i: int) -> None:
        conv = convs[i]
        conv.start = time.perf_counter()
        job = await handle(
            Incoming("bench", f"c{i}", f"{tag}{i}", PROMPTS[i % 3], event_id=f"{tag}{i}"), conv
        )
        if job is None:
            conv.settle()
        else:  # the notice comes from the job's own task, which may also end without one
            job.task.add_done_callback(lambda _: conv.settle())

    if together:
        await asyncio.gather(*(one(i) for i in range(n)))
        await countdown.done.wait()
    else:
        for i in range(n):
            countdown = Countdown(1)
            convs[i] = Timed(countdown.tick)
            await one(i)
            await countdown.done.wait()
    return convs


def _cpu_s(pid: int) -> float | None:
    """CPU seconds process `pid` has used (Linux /proc); None where that cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _idle(pid: int, timeout_s: float = 120.0) -> bool:
    """Wait until process `pid` uses (almost) no CPU for a quarter of a second; False when it
    was still busy after `timeout_s`, or when that cannot be known (no /proc: 5 s of grace)."""
    deadline = time.monotonic() + timeout_s
    last = _cpu_s(pid)
    if last is None:
        await asyncio.sleep(5)
        return False
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        now = _cpu_s(pid) or 0.0
        if now - last <= 0.01:
            return True
        last = now
    return False


def _count_fetches(core: object) -> list[int]:
    """A counter of the product-list fetches `core` makes from now on (its cache's fetch)."""
    cache = core.client._cache  # type: ignore[attr-defined]
    fetch, count = cache._fetch, [0]

    async def counted(category: str) -> object:
        count[0] += 1
        return await fetch(category)

    cache._fetch = counted
    return count


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        proc, base = sandbox_process.start(tmp, "--time-scale", "50", "--balance", str(10**9))
        try:
            results: dict[str, dict[str, float]] = {}
            for name, ttl, together in (
                ("sequential", 600.0, False),
                ("burst", 600.0, True),
                ("refreshing", 0.5, True),
            ):
                settings = Settings(
                    _env_file=None,
                    ima_api_key=SecretStr(SANDBOX_KEY),
                    ima_base_url=base,
                    ima_im_base_url=base,
                    ima_sandbox_time_scale=50,
                    bot_db_path=tmp / f"{name}.sqlite3",
                    bot_confirm_above_credits=0,
                    bot_max_concurrent_jobs=10**6,
                    ima_product_ttl_s=ttl,
                )
                core = await open_core(settings)
                idle = await _idle(proc.pid)  # the renders of what earlier rounds created are done
                fetched_at = time.monotonic()
                await _round(core, 10, f"warm-{name}-", together=False)  # product list and scanners warm
                settle_heap()  # as the bot does once it is ready (bot.app.open_runtime)
                idle = await _idle(proc.pid) and idle  # and those of the warm-up
                if ttl < 60:  # expired when the round starts, so it is refreshed while the round runs
                    await asyncio.sleep(max(0.0, fetched_at + ttl * 1.2 - time.monotonic()))
                list_age = time.monotonic() - fetched_at
                fetches = _count_fetches(core)
                before = _cpu_s(proc.pid)
                convs = await _round(core, n, f"{name}-", together)
                after = _cpu_s(proc.pid)
                results[name] = _summary(convs)
                results[name].update(idle=idle, list_age_s=round(list_age, 2), list_fetches=fetches[0])
                if before is not None and after is not None:
                    results[name]["sandbox_cpu_ms"] = round((after - before) * 1000)
                await core.cancel_all()
                await close_core(core)
        finally:
            sandbox_process.stop(proc)
    for name, r in results.items():
        sandbox = f", sandbox CPU {int(r['sandbox_cpu_ms'])} ms" if "sandbox_cpu_ms" in r else ""
        print(
            f"{name:<11} p50 {r['p50_ms']:>7} ms   p95 {r['p95_ms']:>7} ms   ({int(r['notices'])} notices{sandbox}, "
            f"product list {r['list_age_s']} s old at the start, fetched {int(r['list_fetches'])}x during the round)"
        )
        if not r["idle"]:
            print(f"  warning: the sandbox was still busy (or could not be watched) when {name} started")
    print(
        json.dumps(
            {"messages": n, **{k: {"p50_ms": v["p50_ms"], "p95_ms": v["p95_ms"]} for k, v in results.items()}}
        )
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=300)
    asyncio.run(main(ap.parse_args().messages))
