"""Load: many users at once through the real core, IMA client and sandbox over loopback.

Measures jobs/s end to end, event-loop lag (does anything block the loop?), peak RSS and the
number of product-list requests (the cache should make it one per category).

    .venv/bin/python benchmarks/load_bench.py --jobs 200 --time-scale 0.01
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.base import FailureView, Incoming, NoticeView, ProgressView, VideoView
from bot.sandbox import Sandbox, SandboxConfig
from tests.conftest import close_core, make_settings, open_core

PROMPTS = ["生成一段小狗在草地上奔跑的视频", "make a video of rain on a window, 5 seconds", "用海螺做个竖屏的城市夜景视频"]


class Sink:
    """Counts what a conversation would show."""

    def __init__(self) -> None:
        self.videos = 0
        self.failures = 0
        self.updates = 0

    async def notice(self, view: NoticeView) -> None:
        pass

    async def progress(self, view: ProgressView) -> None:
        self.updates += 1

    async def video(self, view: VideoView) -> None:
        self.videos += 1

    async def failure(self, view: FailureView) -> None:
        self.failures += 1

    async def text(self, text: str) -> None:
        pass


async def lag_probe(samples: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(0.01)
        samples.append(time.perf_counter() - t0 - 0.01)


async def main(jobs: int, scale: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with Sandbox(SandboxConfig(port=0, time_scale=scale, balance=10**9, media_dir=Path(tmp) / "m")) as sb:
            core = await open_core(make_settings(sb, Path(tmp) / "bot.sqlite3", bot_max_concurrent_jobs=jobs))
            sinks = [Sink() for _ in range(jobs)]
            lags: list[float] = []
            stop = asyncio.Event()
            probe = asyncio.create_task(lag_probe(lags, stop))
            t0 = time.perf_counter()
            handles = await asyncio.gather(*(
                core.handle(Incoming("bench", f"c{i}", f"u{i}", PROMPTS[i % len(PROMPTS)], event_id=f"e{i}"), sinks[i])  # type: ignore[arg-type]
                for i in range(jobs)
            ))
            await asyncio.gather(*(h.wait() for h in handles if h is not None))
            elapsed = time.perf_counter() - t0
            stop.set()
            await probe
            await close_core(core)
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"jobs: {jobs}  delivered: {sum(s.videos for s in sinks)}  failed: {sum(s.failures for s in sinks)}")
            print(f"wall: {elapsed:.2f} s  ->  {jobs / elapsed:.1f} jobs/s (sandbox time scale {scale})")
            print(f"loop lag: median {statistics.median(lags) * 1000:.1f} ms, p99 "
                  f"{sorted(lags)[int(len(lags) * 0.99)] * 1000:.1f} ms, max {max(lags) * 1000:.1f} ms")
            print(f"peak RSS (bot + in-process sandbox + renders): {rss_mb:.0f} MB")
            print(f"tasks in sandbox ledger: {len(sb.ledger)} (one per job: nothing charged twice)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--time-scale", type=float, default=0.01)
    a = ap.parse_args()
    asyncio.run(main(a.jobs, a.time_scale))
