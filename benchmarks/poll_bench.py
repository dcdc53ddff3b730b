"""Polling: the same jobs on a fixed 8 s timer and on the bot's learned schedule, in one run.

The sandbox runs in its own process, started afresh with the same seed for each schedule, so
both see the same render times (stable per kind of task, a little noise, as the service).
For every measured job: how many detail calls it took, and how late the bot learned of the
finished task (first "done" answer minus the moment the sandbox had it ready), in real-time
seconds (divided by the time scale). The learned schedule first runs a warm-up of
--warmup jobs per model (the fixed timer runs them too, uncounted).

    .venv/bin/python benchmarks/poll_bench.py [--jobs 60] [--warmup 20] [--time-scale 0.02]

Ends with one JSON line: {"jobs": N, "fixed8": {"polls_per_job", "mean_lag_s"}, "bot": {...},
"polls_ratio", "lag_ratio"}. Target: both ratios <= 0.5.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import SecretStr

from adapters.base import FailureView, Incoming, NoticeView, ProgressView, VideoView
from bot.config import SANDBOX_KEY, Settings
from bot.ima.types import TaskResult
from bot.sandbox import process as sandbox_process
from bot.sandbox.ledger import read_jsonl
from tests.conftest import close_core, open_core

#: one request per model, so each has its own history ("kind" = model, task, duration, resolution)
REQUESTS = [
    "用万相生成 小狗在草地上奔跑, 5秒, 720p",
    "use Hailuo 2.3: rain on a window, 6 seconds, 768p",
    "use Vidu Q2: a paper boat on a river, 5 seconds, 720p",
    "use SeeDance: a city at night, 5 seconds, 720p",
]
CONCURRENCY = 8


class Quiet:
    """A conversation that shows nothing."""

    async def notice(self, view: NoticeView) -> None: ...
    async def progress(self, view: ProgressView) -> None: ...
    async def video(self, view: VideoView) -> None: ...
    async def failure(self, view: FailureView) -> None: ...
    async def text(self, text: str) -> None: ...


async def run_schedule(learn: bool, jobs: int, warmup: int, scale: float, seed: int) -> dict[str, float]:
    """Polls per job and mean lag (real-time seconds) over the measured jobs of one schedule."""
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        ledger = tmp / "ledger.jsonl"
        proc, base = sandbox_process.start(
            tmp,
            "--time-scale",
            str(scale),
            "--seed",
            str(seed),
            "--balance",
            str(10**9),
            "--media-dir",
            str(tmp / "media"),
            "--ledger-file",
            str(ledger),
        )
        try:
            settings = Settings(
                _env_file=None,
                ima_api_key=SecretStr(SANDBOX_KEY),
                ima_base_url=base,
                ima_im_base_url=base,
                ima_sandbox_time_scale=scale,
                bot_db_path=tmp / "bot.sqlite3",
                bot_confirm_above_credits=0,
                bot_max_jobs_per_user=10**6,
                bot_max_concurrent_jobs=CONCURRENCY,
            )
            core = await open_core(settings)
            core.orchestrator.learn_polls = learn
            polls: dict[str, int] = {}
            seen_done: dict[str, float] = {}
            detail = core.client.detail

            async def counted(task_id: str) -> TaskResult:
                polls[task_id] = polls.get(task_id, 0) + 1
                result = await detail(task_id)
                if result.state == "done":
                    seen_done.setdefault(task_id, time.time())
                return result

            core.client.detail = counted  # type: ignore[method-assign]
            order = [REQUESTS[i % len(REQUESTS)] for i in range(warmup * len(REQUESTS) + jobs)]
            measured_from = warmup * len(REQUESTS)
            job_ids: list[str] = []
            for start in range(0, len(order), CONCURRENCY):
                batch = order[start : start + CONCURRENCY]
                handles = await asyncio.gather(
                    *(
                        core.handle(
                            Incoming("bench", "c", f"u{start + i}", text, event_id=f"e{start + i}"), Quiet()
                        )
                        for i, text in enumerate(batch)
                    )
                )
                await asyncio.gather(*(h.wait() for h in handles if h is not None))
                job_ids += [h.job_id for h in handles if h is not None]
            rows = [await core.store.get_job(j) for j in job_ids[measured_from:]]
            await close_core(core)
        finally:
            sandbox_process.stop(proc)
        ready = {e["task_id"]: e["ready_at"] for e in read_jsonl(ledger) if e.get("ready_at")}
    tasks = [r.task_ids[-1] for r in rows if r is not None and r.task_ids and r.status == "delivered"]
    lags = [max(0.0, seen_done[t] - ready[t]) / scale for t in tasks if t in seen_done and t in ready]
    return {
        "polls_per_job": round(statistics.mean(polls[t] for t in tasks), 2),
        "mean_lag_s": round(statistics.mean(lags), 2),
        "measured": len(tasks),
    }


async def main(jobs: int, warmup: int, scale: float, seed: int) -> None:
    fixed = await run_schedule(False, jobs, warmup, scale, seed)
    bot = await run_schedule(True, jobs, warmup, scale, seed)
    print(f"{'schedule':<10} {'polls/job':>10} {'mean lag (s)':>13} {'jobs':>6}")
    for name, r in (("fixed 8 s", fixed), ("bot", bot)):
        print(f"{name:<10} {r['polls_per_job']:>10} {r['mean_lag_s']:>13} {r['measured']:>6}")
    print(
        json.dumps(
            {
                "jobs": jobs,
                "fixed8": {k: fixed[k] for k in ("polls_per_job", "mean_lag_s")},
                "bot": {k: bot[k] for k in ("polls_per_job", "mean_lag_s")},
                "polls_ratio": round(bot["polls_per_job"] / fixed["polls_per_job"], 2),
                "lag_ratio": round(bot["mean_lag_s"] / fixed["mean_lag_s"], 2)
                if fixed["mean_lag_s"]
                else None,
            }
        )
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--time-scale", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    asyncio.run(main(a.jobs, a.warmup, a.time_scale, a.seed))
