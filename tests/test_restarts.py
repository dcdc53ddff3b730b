"""Issue 11: restarts resume, not fail. A job whose create never left the machine runs again as
queued, a picture job resumes from the pictures kept with it, an uncertain create is never
sent again, and Ctrl-C in the console stops cleanly. Real HTTP to the sandbox, real SQLite."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from PIL import Image

from adapters.base import FailureView, ImageInput, Incoming
from bot.catalog import load_catalog
from bot.config import Settings
from bot.core import BotCore
from bot.ima import ImaClient
from bot.sandbox import Sandbox
from bot.store import Job, JobRequest, Store, StoredImage
from tests.conftest import RecordingConversation, close_core, make_settings, open_core


def say(text: str, user: str, images: tuple[ImageInput, ...] = ()) -> Incoming:
    return Incoming(platform="console", chat_id=f"chat-{user}", user_id=user, text=text, images=images)


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 80, 20)).save(buf, "PNG")
    return buf.getvalue()


async def core_with_one_connection(settings: Settings) -> BotCore:
    """A core whose IMA client sends one request at a time, so a second create waits for the
    wire the way hundreds do behind the real limit (MAX_IN_FLIGHT) under load."""
    client = ImaClient(
        base_url=settings.ima_base_url,
        api_key=settings.ima_api_key or "",
        upload_base_url=settings.ima_im_base_url,
        upload_app_key=settings.ima_upload_app_key,
        max_in_flight=1,
    )
    store = await Store.open(settings.bot_db_path)
    return BotCore(settings=settings, client=client, store=store, catalog=load_catalog())


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Wait until `condition` holds (the store and the conversation are the only witnesses)."""
    async with asyncio.timeout(30):
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_a_job_whose_create_never_left_the_machine_resumes_and_delivers(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    settings = make_settings(sandbox, tmp_path / "b.sqlite3")
    first = await core_with_one_connection(settings)
    sandbox.force_create_hang(2)  # the first create holds the only connection
    a_conv, b_conv = RecordingConversation(), RecordingConversation()
    a = await first.handle(say("make a video of a puppy running", "a"), a_conv)
    assert a is not None
    await until(lambda: _status_is(first, a.job_id, "creating"))
    b = await first.handle(say("make a video of a kitten running", "b"), b_conv)
    assert b is not None
    await until(lambda: _has(b_conv, "notice"))
    await asyncio.sleep(0.2)  # b is now waiting for the connection, its request not sent
    b_row = await first.store.get_job(b.job_id)
    assert b_row is not None and b_row.status == "accepted" and b_row.attempts == 0
    await close_core(first)  # the restart

    second = await open_core(settings)
    try:
        convs: dict[str, RecordingConversation] = {}
        resumed = await second.resume(
            lambda target: convs.setdefault(target.user_id, RecordingConversation())
        )
        statuses = dict(
            zip([r.job_id for r in resumed], await asyncio.gather(*(r.wait() for r in resumed)), strict=True)
        )
        assert statuses == {a.job_id: "uncertain", b.job_id: "delivered"}
        assert convs["b"].kinds()[-1] == "video" and "failure" not in convs["b"].kinds()
        await asyncio.sleep(2)  # a's late answer is in; nothing else may have been created
        assert sorted(e.prompt for e in sandbox.ledger) == ["a kitten running", "a puppy running"]
    finally:
        await close_core(second)


async def test_a_picture_job_resumes_from_the_pictures_kept_at_intake(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    settings = make_settings(sandbox, tmp_path / "b.sqlite3")
    store = await Store.open(settings.bot_db_path)
    job = Job(
        id="j-picture",
        platform="console",
        chat_id="c",
        user_id="u",
        language="en",
        task_type="image_to_video",
        prompt="the fox turns its head",
        request=JobRequest(text="animate this"),
    )
    assert await store.intake("console", ["ev-1"], job, [StoredImage("image/png", png())])
    await store.close()  # the bot died before the job's turn came

    core = await open_core(settings)
    try:
        conv = RecordingConversation()
        [resumed] = await core.resume(lambda target: conv)
        assert await resumed.wait() == "delivered", conv.events
        [entry] = sandbox.ledger
        assert entry.task_type == "image_to_video" and len(entry.images) == 1
        row = await core.store.get_job("j-picture")
        assert row is not None and row.image_urls == list(entry.images)
        assert await core.store.job_images("j-picture") == []  # uploaded: the URL is what is kept
    finally:
        await close_core(core)


async def test_a_picture_job_waiting_for_a_slot_survives_a_restart(sandbox: Sandbox, tmp_path: Path) -> None:
    first = await open_core(make_settings(sandbox, tmp_path / "b.sqlite3", bot_max_concurrent_jobs=1))
    sandbox.force_task_never_finishes()  # the first job keeps the only slot
    a = await first.handle(say("make a video of a puppy running", "a"), RecordingConversation())
    assert a is not None
    await until(lambda: _status_is(first, a.job_id, "running"))
    picture = ImageInput(data=png(), filename="fox.png", content_type="image/png")
    b = await first.handle(
        say("animate this picture, the fox turns its head", "b", (picture,)), RecordingConversation()
    )
    assert b is not None
    await close_core(first)

    second = await open_core(make_settings(sandbox, tmp_path / "b.sqlite3"))
    try:
        conv = RecordingConversation()
        resumed = {
            r.job_id: r for r in await second.resume(lambda target: conv if target.user_id == "b" else None)
        }
        assert await resumed[b.job_id].wait() == "delivered", conv.events
        assert [e.task_type for e in sandbox.ledger] == ["text_to_video", "image_to_video"]
    finally:
        await close_core(second)


async def test_an_uncertain_job_is_not_resumed_nor_sent_again(sandbox: Sandbox, tmp_path: Path) -> None:
    settings = make_settings(sandbox, tmp_path / "b.sqlite3", ima_create_timeout_s=0.5)
    core = await open_core(settings)
    try:
        sandbox.force_create_hang(1.5)
        conv = RecordingConversation()
        job = await core.handle(say("make a video of a puppy running", "u"), conv)
        assert job is not None and await job.wait() == "uncertain"
        [failure] = conv.of("failure")
        assert isinstance(failure, FailureView) and failure.retry_label is None and failure.alternatives == ()
    finally:
        await close_core(core)
    again = await open_core(settings)
    try:
        assert await again.resume(lambda target: RecordingConversation()) == []
        [summary] = await again.recent_jobs("console", "u")
        assert summary.status == "uncertain"
        await asyncio.sleep(1.2)
        assert len(sandbox.ledger) == 1
    finally:
        await close_core(again)


async def _status_is(core: BotCore, job_id: str, status: str) -> bool:
    job = await core.store.get_job(job_id)
    return job is not None and job.status == status


async def _has(conv: RecordingConversation, kind: str) -> bool:
    return kind in conv.kinds()


# -- Ctrl-C in the console ------------------------------------------------------------------------
def _ctrl_c_as_at_a_terminal() -> None:
    """A shell starts background jobs with SIGINT ignored, and Python keeps an inherited ignore:
    when the test suite itself runs in the background, the console must still get its Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_in_the_console_stops_cleanly_and_leaves_the_job_resumable(tmp_path: Path) -> None:
    db = tmp_path / "bot.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMA_", "FEISHU_", "DISCORD_", "BOT_"))}
    # generation takes ~60-120 s here: Ctrl-C comes while the job is being generated
    env.update(IMA_SANDBOX_TIME_SCALE="1", BOT_DB_PATH=str(db), LANG="C.UTF-8", PYTHONIOENCODING="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "console"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
        preexec_fn=_ctrl_c_as_at_a_terminal,
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write("make a video of a puppy running\n")
        proc.stdin.flush()  # stdin stays open, as a person at the terminal
        deadline = time.monotonic() + 30
        while _job_status(db) != "running":
            assert time.monotonic() < deadline and proc.poll() is None, "the job never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err, err
    assert proc.returncode in (0, 130), err
    assert _job_status(db) == "running"  # untouched: resumable, not failed


def _job_status(db: Path) -> str | None:
    if not db.exists():
        return None
    try:
        with sqlite3.connect(db) as conn:
            row = conn.execute("SELECT status FROM jobs").fetchone()
    except sqlite3.OperationalError:  # not migrated yet
        return None
    return row[0] if row else None


def test_ctrl_c_at_the_prompt_ends_at_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMA_", "FEISHU_", "DISCORD_", "BOT_"))}
    env.update(BOT_DB_PATH=str(tmp_path / "bot.sqlite3"), LANG="C.UTF-8", PYTHONIOENCODING="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "console"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
        preexec_fn=_ctrl_c_as_at_a_terminal,
    )
    try:
        assert proc.stderr is not None
        assert "IMA video bot" in proc.stderr.readline()  # the banner: it waits for a line now
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        # stdin stays open, as at a terminal: ending must not wait for a line that never comes
        assert proc.wait(timeout=10) in (0, 130)
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
