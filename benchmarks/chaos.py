"""Chaos: nothing lost, nothing paid twice, through kills, restarts and injected faults.

The sandbox runs in its own process with fault rates (429s, 500s, failed tasks) and latency,
and writes every task it charges to a ledger file. The bot runs in another process — the real
core as bot.app wires it, on a real SQLite file — and writes every video and failure it shows
to a deliveries file. N requests (text, and pictures as real PNG bytes) arrive one after
another; the bot process is killed with SIGKILL at random points and started again on the same
database, and every event is delivered again after each restart (the core de-duplicates on the
event id). At the end the ledger and the deliveries are compared, request by request.

    .venv/bin/python benchmarks/chaos.py --requests 200 --kills 2

The last line of the output is one JSON object: requests, delivered_once, delivered_twice,
lost, paid_twice, paid_not_delivered, failed_with_message (count by kind), and the details
that explain them (see `measure`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.base import (  # noqa: E402
    FailureView,
    ImageInput,
    Incoming,
    NoticeView,
    ProgressView,
    ReplyTarget,
    VideoView,
)
from bot.sandbox import process as sandbox_process  # noqa: E402
from bot.sandbox.ledger import read_jsonl  # noqa: E402

PLATFORM = "chaos"
SUBJECTS = [
    "a red fox crossing a snowy field",
    "rain running down a window at night",
    "a paper boat on a stream",
    "a lighthouse in a storm",
    "cherry blossoms falling in a park",
    "a cat stretching on a sofa",
    "city lights seen from a moving train",
    "waves breaking on black rocks",
    "a hot air balloon at dawn",
    "a candle flickering in the dark",
]
PICTURE_ASKS = ["animate this picture: {s}", "make this picture move, {s}", "bring this image to life: {s}"]
#: most requests let the bot choose; some name a model (none that refuses people or asks for an OK)
MODELS = ["", "", "", "", "with Kling O1, ", "with Vidu Q2, ", "用海螺 "]
#: every request's prompt carries its number, so a charged task names the request it was for
_TAG = re.compile(r"scene r(\d{4})")


def _event_of(prompt: str) -> str:
    """The event id a prompt was sent under ("?" when it carries no tag)."""
    m = _TAG.search(prompt)
    return f"ev-{m.group(1)}" if m else "?"


#: failure kinds an injected fault explains, by the fault
_EXPLAINED_BY = {
    "fail_rate": {"task_failed", "status_failed"},
    "rate_500": {"server_error"},
    "rate_429": {"rate_limited"},
}


@dataclass(frozen=True)
class Event:
    """One chat message as the platform delivers it (again after each restart)."""

    event_id: str
    text: str
    picture: str | None = None  # path of a PNG file sent with it


def make_events(n: int, rng: random.Random, picture_share: float, pictures: Path) -> list[Event]:
    """N requests, a share of them with a small real PNG each."""
    from PIL import Image

    pictures.mkdir(parents=True, exist_ok=True)
    events = []
    for i in range(n):
        subject = f"{rng.choice(SUBJECTS)}, scene r{i:04d}"
        if rng.random() < picture_share:
            path = pictures / f"r{i:04d}.png"
            color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
            Image.new("RGB", (96, 64), color).save(path, "PNG")
            events.append(Event(f"ev-{i:04d}", rng.choice(PICTURE_ASKS).format(s=subject), str(path)))
        else:
            events.append(Event(f"ev-{i:04d}", f"make a video {rng.choice(MODELS)}of {subject}"))
    return events


# -- the bot process ------------------------------------------------------------------------------
class Deliveries:
    """Appends what the bot shows as JSON lines, each in one write, so a SIGKILL loses nothing
    already shown and never leaves half a line."""

    def __init__(self, path: Path, run: int) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.run = run

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps({**record, "run": self.run, "t": time.time()}, ensure_ascii=False) + "\n"
        os.write(self._fd, line.encode("utf-8"))


class Recorder:
    """The Conversation of one chat (one request): videos and failures go to the deliveries."""

    def __init__(self, out: Deliveries, event_id: str) -> None:
        self.out = out
        self.event_id = event_id

    async def notice(self, view: NoticeView) -> None:
        pass

    async def progress(self, view: ProgressView) -> None:
        pass

    async def video(self, view: VideoView) -> None:
        self.out.write(
            {
                "type": "video",
                "job_id": view.job_id,
                "event_id": self.event_id,
                "kind": "video",
                "url": view.url,
            }
        )

    async def failure(self, view: FailureView) -> None:
        self.out.write(
            {
                "type": "failure",
                "job_id": view.job_id,
                "event_id": self.event_id,
                "kind": view.kind,
                "url": None,
            }
        )

    async def text(self, text: str) -> None:
        # progress notes ("retrying", "queued") and refusals: kept to explain a lost request
        self.out.write(
            {
                "type": "text",
                "job_id": None,
                "event_id": self.event_id,
                "kind": "text",
                "url": None,
                "text": text[:120],
            }
        )


def load_messages(work: Path) -> list[Incoming]:
    """The events as the platform hands them to the core, pictures as their PNG bytes."""
    messages = []
    for line in (work / "events.jsonl").read_text(encoding="utf-8").splitlines():
        ev = Event(**json.loads(line))
        images: tuple[ImageInput, ...] = ()
        if ev.picture is not None:
            picture = Path(ev.picture)
            images = (ImageInput(data=picture.read_bytes(), filename=picture.name, content_type="image/png"),)
        messages.append(
            Incoming(
                platform=PLATFORM,
                chat_id=ev.event_id,
                user_id=f"user-{ev.event_id}",
                text=ev.text,
                images=images,
                event_id=ev.event_id,
                language="en",
            )
        )
    return messages


async def bot_process(
    work: Path, messages: list[Incoming], base_url: str, scale: float, arrival_s: float, run: int
) -> int:
    """One life of the bot: resume what the last one left, then take every event (again)."""
    from pydantic import SecretStr

    from bot.app import open_runtime
    from bot.config import SANDBOX_KEY, Settings

    settings = Settings(
        _env_file=None,
        ima_api_key=SecretStr(SANDBOX_KEY),
        ima_base_url=base_url,
        ima_im_base_url=base_url,
        ima_sandbox_time_scale=scale,
        bot_db_path=work / "bot.sqlite3",
        bot_confirm_above_credits=0,
        bot_log_level="WARNING",
    )
    out = Deliveries(work / "deliveries.jsonl", run)
    out.write({"type": "start", "job_id": None, "event_id": None, "kind": "start", "url": None})
    async with open_runtime(settings) as rt:
        core = rt.core

        def conversation_for(target: ReplyTarget) -> Recorder | None:
            return Recorder(out, target.chat_id) if target.platform == PLATFORM else None

        resumed = await core.resume(conversation_for)
        out.write(
            {
                "type": "resumed",
                "job_id": None,
                "event_id": None,
                "kind": "resumed",
                "url": None,
                "count": len(resumed),
            }
        )
        for incoming in messages:  # the first life gets them as they come; later ones as redeliveries
            await core.handle(incoming, Recorder(out, incoming.chat_id))
            if arrival_s > 0:
                await asyncio.sleep(arrival_s)
        await core.wait_idle()
    out.write({"type": "exit", "job_id": None, "event_id": None, "kind": "exit", "url": None})
    return 0


# -- the harness ----------------------------------------------------------------------------------
def start_sandbox(work: Path, args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str]:
    """The sandbox in a process of its own; returns it and its base URL once it serves."""
    return sandbox_process.start(
        work,
        "--ledger-file",
        str(work / "ledger.jsonl"),
        "--time-scale",
        str(args.time_scale),
        "--fail-rate",
        str(args.fail_rate),
        "--error-rate-429",
        str(args.rate_429),
        "--error-rate-500",
        str(args.rate_500),
        "--latency-ms",
        str(args.latency_ms),
        "--seed",
        str(args.seed),
        "--media-dir",
        str(work / "media"),
        "--balance",
        str(10**9),
    )


def start_bot(work: Path, base_url: str, args: argparse.Namespace, run: int) -> subprocess.Popen[bytes]:
    arrival = args.arrival_ms / 1000 if run == 0 else 0.0  # redeliveries come in a burst
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "bot",
        "--work",
        str(work),
        "--base-url",
        base_url,
        "--time-scale",
        str(args.time_scale),
        "--arrival-s",
        str(arrival),
        "--run",
        str(run),
    ]
    log = (work / f"bot-{run}.log").open("wb")
    return subprocess.Popen(
        cmd, cwd=work, env=sandbox_process.clean_env(), stdout=log, stderr=subprocess.STDOUT
    )


def _ended(work: Path) -> int:
    """Requests answered so far (videos and failures shown, in all lives)."""
    return sum(1 for r in read_jsonl(work / "deliveries.jsonl") if r.get("type") in ("video", "failure"))


def kill_at_random(
    proc: subprocess.Popen[bytes], work: Path, after_ended: int, delay_s: float, timeout_s: float
) -> bool:
    """SIGKILL the bot once `after_ended` requests were answered and `delay_s` more passed;
    False when it finished first."""
    deadline = time.monotonic() + timeout_s
    while _ended(work) < after_ended:
        if proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    time.sleep(delay_s)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def drive(work: Path, base_url: str, args: argparse.Namespace) -> list[float]:
    """Run the bot to the end through `args.kills` SIGKILLs; returns the kill times."""
    rng = random.Random(f"{args.seed}:kills")
    # each kill after a random number of answered requests, plus a random moment more: early
    # ones land among the first messages' intake, later ones among creates, polls and deliveries
    thresholds = sorted(rng.randrange(0, max(1, int(args.requests * 0.7))) for _ in range(args.kills))
    kills: list[float] = []
    run = 0
    while True:
        proc = start_bot(work, base_url, args, run)
        if len(kills) < args.kills and kill_at_random(
            proc, work, thresholds[len(kills)], rng.uniform(0.05, 0.8), args.timeout
        ):
            kills.append(time.time())
            run += 1
            continue
        try:
            code = proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise RuntimeError(
                f"the bot did not finish in {args.timeout} s; see {work}/bot-{run}.log"
            ) from None
        if code != 0:
            raise RuntimeError(f"the bot exited with {code}; see {work}/bot-{run}.log")
        return kills


def measure(work: Path, events: list[Event], args: argparse.Namespace, kills: list[float]) -> dict[str, Any]:
    """Compare, request by request, what the sandbox charged with what the bot showed.

    - delivered_once / delivered_twice: requests whose video was shown once / more than once;
      `delivered_twice_same_video` of them were the same job's one video shown again (a kill
      between showing it and saving "delivered": delivery is at least once), not a second task
    - lost: requests that got neither a video nor a failure
    - paid_twice: requests charged for more than one task
    - paid_not_delivered: charged tasks that rendered (no injected failure) but whose request
      got no video; `paid_not_delivered_told` of them got the plain "may still be made" message
    - failed_with_message: failures shown, by kind; `unexplained_failures` counts those no
      injected fault explains (a failed task must be one the sandbox failed on purpose)
    - uncertain_after_kill: "may still be made" failures of creates that were on the wire when
      the process was killed (IMA has no idempotency key and no task list: nobody can tell)
    """
    deliveries = read_jsonl(work / "deliveries.jsonl")
    ledger = read_jsonl(work / "ledger.jsonl")
    shown = Shown.of(deliveries)
    videos, failures = shown.videos, shown.failures
    paid = _paid_by_event(ledger)
    verdict = _judge_failures(events, shown, paid, _explained_kinds(args))
    not_delivered = [
        e
        for ev in events
        if not videos[ev.event_id]
        for e in paid[ev.event_id]
        if not e.get("injected_failure")
    ]
    told = sum(
        1
        for e in not_delivered
        if any(f["kind"] == "create_uncertain" for f in failures[_event_of(e["prompt"])])
    )
    return {
        "requests": len(events),
        "delivered_once": sum(1 for ev in events if videos[ev.event_id] == 1),
        "delivered_twice": sum(1 for ev in events if videos[ev.event_id] > 1),
        "delivered_twice_same_video": sum(
            1 for ev in events if videos[ev.event_id] > 1 and len(shown.video_urls[ev.event_id]) == 1
        ),
        "lost": sum(1 for ev in events if not videos[ev.event_id] and not failures[ev.event_id]),
        "paid_twice": sum(1 for ev in events if len(paid[ev.event_id]) > 1),
        "paid_not_delivered": len(not_delivered),
        "failed_with_message": dict(sorted(verdict.by_kind.items())),
        "paid_not_delivered_told": told,
        "uncertain_after_kill": verdict.uncertain_after_kill,
        "unexplained_failures": len(verdict.unexplained),
        "paid_tasks": len(ledger),
        "kills": len(kills),
        "resumed_after_kills": sum(r.get("count", 0) for r in deliveries if r["type"] == "resumed"),
        "lives": 1 + len(kills),
        "jobs_in_db": _count_jobs(work / "bot.sqlite3"),
        "unexplained": verdict.unexplained[:10],
    }


@dataclass
class Shown:
    """What the bot showed, by event id: how many videos, which (job, url) they were, the failures."""

    videos: collections.Counter[str] = field(default_factory=collections.Counter)
    video_urls: dict[str, set[tuple[str, str]]] = field(default_factory=lambda: collections.defaultdict(set))
    failures: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: collections.defaultdict(list))

    @classmethod
    def of(cls, deliveries: list[dict[str, Any]]) -> Shown:
        """The videos and failures among the deliveries (in all lives)."""
        shown = cls()
        for r in deliveries:
            if r["type"] == "video":
                shown.videos[r["event_id"]] += 1
                shown.video_urls[r["event_id"]].add((r["job_id"], r["url"]))
            elif r["type"] == "failure":
                shown.failures[r["event_id"]].append(r)
        return shown


def _paid_by_event(ledger: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The charged tasks, by the event their prompt names."""
    paid: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for entry in ledger:
        paid[_event_of(entry["prompt"])].append(entry)
    return paid


def _explained_kinds(args: argparse.Namespace) -> set[str]:
    """The failure kinds the faults switched on for this run explain."""
    rates = {"fail_rate": args.fail_rate, "rate_500": args.rate_500, "rate_429": args.rate_429}
    enabled = [name for name, rate in rates.items() if rate > 0]
    return set().union(*(_EXPLAINED_BY[name] for name in enabled)) if enabled else set()


@dataclass
class FailureVerdict:
    """The last failure shown to each request that got no video, judged."""

    by_kind: collections.Counter[str] = field(default_factory=collections.Counter)
    #: requests whose failure no injected fault explains
    unexplained: list[str] = field(default_factory=list)
    #: "may still be made" failures shown by a later life: the create was on the wire at a kill
    uncertain_after_kill: int = 0


def _judge_failures(
    events: list[Event], shown: Shown, paid: dict[str, list[dict[str, Any]]], explained_kinds: set[str]
) -> FailureVerdict:
    """Count each failed request's last failure by kind, and find those nothing explains."""
    verdict = FailureVerdict()
    for ev in events:
        if shown.videos[ev.event_id] or not shown.failures[ev.event_id]:
            continue
        last = shown.failures[ev.event_id][-1]
        verdict.by_kind[last["kind"]] += 1
        if last["kind"] == "create_uncertain" and last["run"] > 0:
            verdict.uncertain_after_kill += 1
        elif not _explained(last["kind"], paid[ev.event_id], explained_kinds):
            verdict.unexplained.append(ev.event_id)
    return verdict


def _explained(kind: str, paid: list[dict[str, Any]], explained_kinds: set[str]) -> bool:
    """Whether an injected fault explains a failure of this kind: a failed task must be one the
    sandbox failed on purpose; any other failure, one the faults switched on can cause."""
    if kind in ("task_failed", "status_failed"):
        return any(e.get("injected_failure") for e in paid)
    return kind in explained_kinds


def _count_jobs(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])


def run_chaos(args: argparse.Namespace) -> dict[str, Any]:
    """The whole run, in a fresh directory (kept with --keep); returns the figures."""
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    events = make_events(
        args.requests, random.Random(f"{args.seed}:events"), args.picture_share, work / "pictures"
    )
    (work / "events.jsonl").write_text(
        "".join(json.dumps(asdict(e)) + "\n" for e in events), encoding="utf-8"
    )
    started = time.monotonic()
    sandbox, base_url = start_sandbox(work, args)
    try:
        kills = drive(work, base_url, args)
    finally:
        sandbox.send_signal(signal.SIGINT)
        try:
            sandbox.wait(timeout=15)
        except subprocess.TimeoutExpired:
            sandbox.kill()
            sandbox.wait()
    result = measure(work, events, args, kills)
    result["seconds"] = round(time.monotonic() - started, 1)
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="benchmarks/chaos.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    p.add_argument("--requests", type=int, default=200, help="requests sent (default 200)")
    p.add_argument("--kills", type=int, default=2, help="SIGKILLs of the bot process (default 2)")
    p.add_argument("--seed", type=int, default=1, help="seeds the requests, the kill points and the sandbox")
    p.add_argument("--time-scale", type=float, default=0.01, help="sandbox and bot time scale (default 0.01)")
    p.add_argument(
        "--latency-ms", type=int, default=150, help="sandbox latency per API request (default 150)"
    )
    p.add_argument(
        "--rate-429", type=float, default=0.1, help="share of API requests answered 429 (default 0.1)"
    )
    p.add_argument(
        "--rate-500", type=float, default=0.1, help="share of API requests answered 500 (default 0.1)"
    )
    p.add_argument("--fail-rate", type=float, default=0.1, help="share of tasks that fail (default 0.1)")
    p.add_argument(
        "--picture-share", type=float, default=0.3, help="share of requests with a picture (default 0.3)"
    )
    p.add_argument("--arrival-ms", type=float, default=20, help="time between two requests (default 20)")
    p.add_argument("--timeout", type=float, default=600, help="longest wait for one life of the bot (s)")
    p.add_argument(
        "--keep", default=None, help="run in this directory and keep it (logs, ledger, deliveries)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bot"]:  # one life of the bot process, started by the harness
        p = argparse.ArgumentParser(prog="benchmarks/chaos.py bot")
        p.add_argument("--work", type=Path, required=True)
        p.add_argument("--base-url", required=True)
        p.add_argument("--time-scale", type=float, required=True)
        p.add_argument("--arrival-s", type=float, default=0.0)
        p.add_argument("--run", type=int, default=0)
        a = p.parse_args(argv[1:])
        import logging

        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return asyncio.run(
            bot_process(a.work, load_messages(a.work), a.base_url, a.time_scale, a.arrival_s, a.run)
        )
    args = build_parser().parse_args(argv)
    result = run_chaos(args)
    print(
        f"{result['requests']} requests, {result['kills']} kills, {result['seconds']} s: "
        f"{result['delivered_once']} delivered once, {sum(result['failed_with_message'].values())} failed "
        f"with a message, {result['lost']} lost; {result['paid_tasks']} tasks paid"
    )
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
