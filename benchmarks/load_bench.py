"""Load: many users at once through the real core and IMA client, against the sandbox
running in its own process (so the figures are the bot's alone), over loopback HTTP.

Measures jobs/s end to end, the bot's event-loop lag (does anything block the loop?), its
peak RSS, and checks that every job created exactly one task.

    .venv/bin/python benchmarks/load_bench.py --jobs 200 --time-scale 0.05

At time scale s the bot polls every 8·s seconds, so 200 jobs at 0.05 poll 20× harder than
200 real jobs would.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import resource
import statistics
import sys
import tempfile
import time
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


class Sink:
    """Counts what a conversation would show."""

    def __init__(self) -> None:
        self.videos = 0
        self.failures: list[str] = []
        self.updates = 0

    async def notice(self, view: NoticeView) -> None:
        pass

    async def progress(self, view: ProgressView) -> None:
        self.updates += 1

    async def video(self, view: VideoView) -> None:
        self.videos += 1

    async def failure(self, view: FailureView) -> None:
        self.failures.append(view.kind)

    async def text(self, text: str) -> None:
        pass


async def lag_probe(samples: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(0.01)
        samples.append(time.perf_counter() - t0 - 0.01)


async def main(jobs: int, scale: float, concurrent: int | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = sandbox_process.start(
            Path(tmp),
            "--time-scale",
            str(scale),
            "--balance",
            str(10**9),
            "--media-dir",
            str(Path(tmp) / "media"),
        )
        try:
            settings = Settings(
                _env_file=None,
                ima_api_key=SecretStr(SANDBOX_KEY),
                ima_base_url=base,
                ima_im_base_url=base,
                ima_sandbox_time_scale=scale,
                bot_db_path=Path(tmp) / "bot.sqlite3",
                bot_max_concurrent_jobs=concurrent or jobs,
            )
            core = await open_core(settings)
            settle_heap()  # as the bot does once it is ready (bot.app.open_runtime)
            sinks = [Sink() for _ in range(jobs)]
            lags: list[float] = []
            stop = asyncio.Event()
            probe = asyncio.create_task(lag_probe(lags, stop))
            t0 = time.perf_counter()
            handles = await asyncio.gather(
                *(
                    core.handle(
                        Incoming("bench", f"c{i}", f"u{i}", PROMPTS[i % len(PROMPTS)], event_id=f"e{i}"),
                        sinks[i],
                    )
                    for i in range(jobs)
                )
            )
            await asyncio.gather(*(h.wait() for h in handles if h is not None))
            elapsed = time.perf_counter() - t0
            stop.set()
            await probe
            rows = [await core.store.get_job(h.job_id) for h in handles if h is not None]
            await close_core(core)
        finally:
            sandbox_process.stop(proc)
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        failures = collections.Counter(k for s in sinks for k in s.failures)
        print(f"jobs: {jobs}  delivered: {sum(s.videos for s in sinks)}  failed: {dict(failures) or 0}")
        print(f"wall: {elapsed:.2f} s  ->  {jobs / elapsed:.1f} jobs/s (sandbox time scale {scale})")
        print(
            f"bot loop lag: median {statistics.median(lags) * 1000:.1f} ms, p99 "
            f"{sorted(lags)[int(len(lags) * 0.99)] * 1000:.1f} ms, max {max(lags) * 1000:.1f} ms"
        )
        print(f"bot peak RSS: {rss_mb:.0f} MB")
        tasks = [len(r.task_ids) for r in rows if r is not None]
        print(f"IMA tasks per job: max {max(tasks, default=0)} (one each: nothing charged twice)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--time-scale", type=float, default=0.05)
    ap.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        help="BOT_MAX_CONCURRENT_JOBS (default: all jobs at once; the bot's own default is 50)",
    )
    a = ap.parse_args()
    asyncio.run(main(a.jobs, a.time_scale, a.max_concurrent))
