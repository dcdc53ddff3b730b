"""Scale-out: three bot processes on one PostgreSQL database, one of them killed mid-run.

A throwaway PostgreSQL cluster (bot/store/pgcluster.py) and the sandbox (a process of its own,
writing every task it charges to a ledger) are started; then three bot processes — the real
core as bot.app wires it, BOT_DB_URL pointing at the shared database — share N requests. Every
event is delivered to two of the three processes (as Feishu redeliveries and a second long
connection do), so the database must de-duplicate them. Once a share of the requests was
answered, one process is killed with SIGKILL: the jobs it held must be taken over by the others
when their leases run out, and finish without being paid for again.

    .venv/bin/python benchmarks/scaleout.py --requests 90 --lease-s 3

The last line of the output is one JSON object: requests, delivered_once, delivered_twice,
lost, paid_twice, failed_with_message (by kind), the jobs the killed process held, and
takeover_s: from the kill to the moment the last of those jobs was picked up by another
process (lease_s is the bound to compare it with, plus one look every lease_s/3).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.base import FailureView, Incoming, NoticeView, ProgressView, ReplyTarget, VideoView  # noqa: E402
from bot.sandbox import process as sandbox_process  # noqa: E402
from bot.sandbox.ledger import read_jsonl  # noqa: E402

PLATFORM = "scaleout"
PROCESSES = 3
SUBJECTS = [
    "a red fox crossing a snowy field",
    "rain on a window at night",
    "a paper boat on a stream",
    "a lighthouse in a storm",
    "cherry blossoms falling",
    "city lights from a train",
]
_TAG = re.compile(r"scene r(\d{4})")


def event_text(i: int) -> str:
    return f"make a video of {SUBJECTS[i % len(SUBJECTS)]}, scene r{i:04d}"


def recipients(i: int) -> tuple[int, int]:
    """The two processes event i is delivered to."""
    return i % PROCESSES, (i + 1) % PROCESSES


# -- one bot process --------------------------------------------------------------------------------
class Out:
    """Appends what this process shows as JSON lines, one write each (a SIGKILL never leaves half a line)."""

    def __init__(self, path: Path, proc: int) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.proc = proc

    def write(self, **record: Any) -> None:
        line = json.dumps({**record, "proc": self.proc, "t": time.time()}, ensure_ascii=False) + "\n"
        os.write(self._fd, line.encode("utf-8"))


class Recorder:
    """The Conversation of one request's chat (the chat id is the event id)."""

    def __init__(self, out: Out, event_id: str) -> None:
        self.out = out
        self.event_id = event_id

    async def notice(self, view: NoticeView) -> None:
        self.out.write(type="notice", event_id=self.event_id, job_id=view.job_id)

    async def progress(self, view: ProgressView) -> None:
        self.out.write(type="progress", event_id=self.event_id, job_id=view.job_id)

    async def video(self, view: VideoView) -> None:
        self.out.write(type="video", event_id=self.event_id, job_id=view.job_id, url=view.url)

    async def failure(self, view: FailureView) -> None:
        self.out.write(type="failure", event_id=self.event_id, job_id=view.job_id, kind=view.kind)

    async def text(self, text: str) -> None:
        self.out.write(type="text", event_id=self.event_id, text=text[:100])


async def bot_process(
    work: Path,
    proc: int,
    requests: int,
    db_url: str,
    base_url: str,
    scale: float,
    lease_s: float,
    arrival_s: float,
    deadline_s: float,
) -> int:
    from pydantic import SecretStr

    from bot.app import open_runtime
    from bot.config import SANDBOX_KEY, Settings

    settings = Settings(
        _env_file=None,
        ima_api_key=SecretStr(SANDBOX_KEY),
        ima_base_url=base_url,
        ima_im_base_url=base_url,
        ima_sandbox_time_scale=scale,
        bot_db_url=db_url,
        bot_db_path=work / f"p{proc}" / "unused.sqlite3",
        bot_lease_s=lease_s,
        bot_confirm_above_credits=0,
        bot_log_level="WARNING",
        bot_max_jobs_per_user=10,
    )
    out = Out(work / "deliveries.jsonl", proc)
    out.write(type="start", pid=os.getpid())
    async with open_runtime(settings) as rt:
        core = rt.core

        def conversation_for(target: ReplyTarget) -> Recorder | None:
            return Recorder(out, target.chat_id) if target.platform == PLATFORM else None

        await core.resume(conversation_for)
        out.write(type="ready")
        while not (work / "go").exists():  # noqa: ASYNC110 -- the three start together: each event a fair race
            await asyncio.sleep(0.01)
        jitter = random.Random(proc)  # the processes' events arrive interleaved, not in lockstep
        for i in range(requests):
            if proc not in recipients(i):
                continue
            ev = f"ev-{i:04d}"
            incoming = Incoming(
                platform=PLATFORM,
                chat_id=ev,
                user_id=f"user-{i % 20}",
                text=event_text(i),
                event_id=ev,
                language="en",
            )
            await core.handle(incoming, Recorder(out, ev))
            if arrival_s > 0:
                await asyncio.sleep(arrival_s * jitter.uniform(0.2, 1.8))
        # stay until every job in the database has ended: the others' too, whose owner may die
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if not core._jobs and not await core.store.unfinished_jobs():
                break
            await asyncio.sleep(0.2)
    out.write(type="exit")
    return 0


# -- the harness ----------------------------------------------------------------------------------------


def start_bot(
    work: Path, proc: int, db_url: str, base_url: str, args: argparse.Namespace
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "bot",
        "--work",
        str(work),
        "--proc",
        str(proc),
        "--requests",
        str(args.requests),
        "--db-url",
        db_url,
        "--base-url",
        base_url,
        "--time-scale",
        str(args.time_scale),
        "--lease-s",
        str(args.lease_s),
        "--arrival-s",
        str(args.arrival_ms / 1000),
        "--deadline-s",
        str(args.timeout),
    ]
    log = (work / f"bot-{proc}.log").open("wb")
    return subprocess.Popen(
        cmd, cwd=work, env=sandbox_process.clean_env(), stdout=log, stderr=subprocess.STDOUT
    )


async def _held_by(db_url: str, pid: int) -> dict[str, float]:
    """The requests (chat ids) whose unfinished jobs process `pid` holds, with the seconds left on each lease."""
    import asyncpg

    con = await asyncpg.connect(db_url)
    try:
        rows = await con.fetch(
            "SELECT chat_id, lease_until - EXTRACT(EPOCH FROM clock_timestamp())::double precision FROM jobs "
            "WHERE lease_owner LIKE $1 AND status IN ('accepted','creating','running','delivering')",
            f"%:{pid}:%",
        )
    finally:
        await con.close()
    return {r[0]: float(r[1]) for r in rows}


def drive(work: Path, db_url: str, base_url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run three processes to the end, SIGKILLing one of them once it holds `kill_holding` jobs
    under way (so it dies in the middle of its work)."""
    procs = [start_bot(work, k, db_url, base_url, args) for k in range(PROCESSES)]
    victim = procs[args.victim]
    deadline = time.monotonic() + args.timeout
    try:
        _wait_ready(work, procs, deadline)
        (work / "go").touch()
        killed = _kill_when_holding(work, victim, db_url, args.kill_holding, deadline)
        _wait_finished(work, procs, victim, deadline)
    finally:
        _reap(procs)
    return killed


def _wait_ready(work: Path, procs: list[subprocess.Popen[bytes]], deadline: float) -> None:
    """Until every process said it is ready (resumed, waiting for the go)."""
    while sum(1 for r in read_jsonl(work / "deliveries.jsonl") if r["type"] == "ready") < PROCESSES:
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError("the bot processes did not all start; see the bot logs in " + str(work))
        time.sleep(0.02)


def _kill_when_holding(
    work: Path, victim: subprocess.Popen[bytes], db_url: str, holding: int, deadline: float
) -> dict[str, Any]:
    """SIGKILL `victim` once it holds `holding` jobs under way; returns when it was killed and the
    jobs it held then (nothing when it finished first)."""
    held: dict[str, float] = {}
    while victim.poll() is None:
        if time.monotonic() > deadline:
            raise RuntimeError("no progress before the kill; see the bot logs in " + str(work))
        with contextlib.suppress(Exception):  # the schema may not be there yet
            held = asyncio.run(_held_by(db_url, victim.pid))
        if len(held) >= holding:
            break
        time.sleep(0.05)
    if victim.poll() is not None:
        return {}
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    return {"at": time.time(), "held": held}


def _wait_finished(
    work: Path, procs: list[subprocess.Popen[bytes]], victim: subprocess.Popen[bytes], deadline: float
) -> None:
    """Until every process has exited; each one but the victim must have exited cleanly."""
    for k, p in enumerate(procs):
        try:
            code = p.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"process {k} did not finish; see {work}/bot-{k}.log") from None
        if p is not victim and code != 0:
            raise RuntimeError(f"process {k} exited with {code}; see {work}/bot-{k}.log")


def _reap(procs: list[subprocess.Popen[bytes]]) -> None:
    """Kill whatever is still running (after a failure)."""
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def measure(work: Path, args: argparse.Namespace, killed: dict[str, Any]) -> dict[str, Any]:
    deliveries = read_jsonl(work / "deliveries.jsonl")
    ledger = read_jsonl(work / "ledger.jsonl")
    videos: collections.Counter[str] = collections.Counter()
    shown: dict[str, set[str]] = collections.defaultdict(set)
    failures: dict[str, list[str]] = collections.defaultdict(list)
    for r in deliveries:
        if r["type"] == "video":
            videos[r["event_id"]] += 1
            shown[r["event_id"]].add(r["url"])
        elif r["type"] == "failure":
            failures[r["event_id"]].append(r["kind"])
    paid: collections.Counter[str] = collections.Counter()
    for entry in ledger:
        m = _TAG.search(entry["prompt"])
        paid[f"ev-{m.group(1)}" if m else "?"] += 1
    events = [f"ev-{i:04d}" for i in range(args.requests)]
    victim = args.victim
    # take-over: for each job the dead process held, the first word about it from another process
    takeovers, past_expiry = [], []
    for ev, left in killed.get("held", {}).items():
        after = [
            r["t"]
            for r in deliveries
            if r.get("event_id") == ev and r["proc"] != victim and r["t"] >= killed["at"]
        ]
        if after:
            takeovers.append(min(after) - killed["at"])
            past_expiry.append(min(after) - killed["at"] - left)
    failed = collections.Counter(failures[ev][-1] for ev in events if not videos[ev] and failures[ev])
    return {
        "requests": args.requests,
        "processes": PROCESSES,
        "deliveries_per_event": 2,
        "delivered_once": sum(1 for ev in events if videos[ev] == 1),
        "delivered_twice": sum(1 for ev in events if videos[ev] > 1),
        "delivered_twice_same_video": sum(1 for ev in events if videos[ev] > 1 and len(shown[ev]) == 1),
        "lost": sum(1 for ev in events if not videos[ev] and not failures[ev]),
        "failed_with_message": dict(sorted(failed.items())),
        "paid_twice": sum(1 for ev in events if paid[ev] > 1),
        "paid_tasks": len(ledger),
        "killed": bool(killed),
        "jobs_held_by_killed": len(killed.get("held", [])),
        "taken_over": len(takeovers),
        "takeover_s": round(max(takeovers), 2) if takeovers else None,
        "takeover_median_s": round(sorted(takeovers)[len(takeovers) // 2], 2) if takeovers else None,
        "takeover_after_expiry_s": round(max(past_expiry), 2) if past_expiry else None,
        "lease_s": args.lease_s,
        "paid_not_delivered": sum(max(0, paid[ev] - videos[ev]) for ev in events if not videos[ev]),
        "paid_not_delivered_told": sum(
            1 for ev in events if not videos[ev] and paid[ev] and "create_uncertain" in failures[ev]
        ),
        "answered_by_process": dict(
            sorted(
                collections.Counter(
                    str(r["proc"]) for r in deliveries if r["type"] in ("video", "failure")
                ).items()
            )
        ),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bot.store.pgcluster import Cluster

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="scaleout-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with Cluster() as cluster:
        db_url = cluster.create_database("scaleout")
        sandbox, base_url = sandbox_process.start(
            work / "sandbox",
            "--time-scale",
            str(args.time_scale),
            "--ledger-file",
            str(work / "ledger.jsonl"),
            "--latency-ms",
            str(args.latency_ms),
            "--seed",
            str(args.seed),
            "--balance",
            str(10**9),
        )
        try:
            killed = drive(work, db_url, base_url, args)
        finally:
            sandbox_process.stop(sandbox)
    result = measure(work, args, killed)
    result["seconds"] = round(time.monotonic() - started, 1)
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="benchmarks/scaleout.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    p.add_argument("--requests", type=int, default=90, help="requests sent (default 90)")
    p.add_argument("--lease-s", type=float, default=3.0, help="BOT_LEASE_S of every process (default 3)")
    p.add_argument(
        "--kill-holding",
        type=int,
        default=8,
        help="the victim is killed once it holds this many jobs under way (default 8)",
    )
    p.add_argument(
        "--victim", type=int, default=0, choices=range(PROCESSES), help="the process killed (default 0)"
    )
    p.add_argument("--time-scale", type=float, default=0.05, help="sandbox and bot time scale (default 0.05)")
    p.add_argument("--latency-ms", type=int, default=50, help="sandbox latency per API request (default 50)")
    p.add_argument(
        "--arrival-ms", type=float, default=30, help="time between two events at one process (default 30)"
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=300, help="longest run (s)")
    p.add_argument(
        "--keep", default=None, help="run in this directory and keep it (logs, ledger, deliveries)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bot"]:
        p = argparse.ArgumentParser(prog="benchmarks/scaleout.py bot")
        p.add_argument("--work", type=Path, required=True)
        p.add_argument("--proc", type=int, required=True)
        p.add_argument("--requests", type=int, required=True)
        p.add_argument("--db-url", required=True)
        p.add_argument("--base-url", required=True)
        p.add_argument("--time-scale", type=float, required=True)
        p.add_argument("--lease-s", type=float, required=True)
        p.add_argument("--arrival-s", type=float, default=0.0)
        p.add_argument("--deadline-s", type=float, default=300)
        a = p.parse_args(argv[1:])
        import logging

        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return asyncio.run(
            bot_process(
                a.work,
                a.proc,
                a.requests,
                a.db_url,
                a.base_url,
                a.time_scale,
                a.lease_s,
                a.arrival_s,
                a.deadline_s,
            )
        )
    args = build_parser().parse_args(argv)
    result = run(args)
    print(
        f"{result['requests']} requests to {PROCESSES} processes (each event to two), one SIGKILLed, "
        f"{result['seconds']} s: {result['delivered_once']} delivered once, {result['delivered_twice']} twice, "
        f"{result['lost']} lost, {result['paid_twice']} paid twice; {result['taken_over']} of "
        f"{result['jobs_held_by_killed']} held jobs taken over, the last after {result['takeover_s']} s "
        f"(lease {result['lease_s']} s)"
    )
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
