"""Logs (bot.logs): libraries held at WARNING, every formatted line redacted (tracebacks too),
no prompt at any level, daily files kept seven days."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import logging.handlers
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from adapters.base import Incoming
from bot import logs
from bot.config import Settings
from bot.ima import redact
from bot.sandbox import Sandbox
from tests.conftest import RecordingConversation, close_core, make_settings, open_core

SECRET = "sk-live-0123456789abcdef"


@contextlib.contextmanager
def isolated_logging() -> Iterator[None]:
    """logs.setup reconfigures the root logger: put everything back at the end of the test body
    (pytest's own capture handlers of this phase included)."""
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    names = {*logs.LIBRARIES, "bot", "probe"}
    saved = {
        n: (list(logging.getLogger(n).handlers), logging.getLogger(n).level, logging.getLogger(n).propagate)
        for n in names
    }
    try:
        yield
    finally:
        for handler in root.handlers:
            if handler not in saved_root[0]:
                handler.close()
        root.handlers[:] = saved_root[0]
        root.setLevel(saved_root[1])
        for n, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(n)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def configured(**values: object) -> io.StringIO:
    out = io.StringIO()
    logs.setup(settings(**values), stream=out)
    return out


# -- libraries -------------------------------------------------------------------------------------
def test_library_levels_default_to_warning_and_can_be_set_all_or_one() -> None:
    assert set(logs.library_levels("WARNING").values()) == {logging.WARNING}
    assert {"aiosqlite", "httpcore", "httpx", "websockets", "discord", "Lark", "lark_oapi"} <= set(
        logs.LIBRARIES
    )
    assert set(logs.library_levels("debug").values()) == {logging.DEBUG}
    some = logs.library_levels("aiosqlite=DEBUG, httpx=info")
    assert (some["aiosqlite"], some["httpx"], some["discord"]) == (
        logging.DEBUG,
        logging.INFO,
        logging.WARNING,
    )
    mixed = logs.library_levels("INFO,websockets=ERROR,asyncio=DEBUG")
    assert (mixed["httpcore"], mixed["websockets"], mixed["asyncio"]) == (
        logging.INFO,
        logging.ERROR,
        logging.DEBUG,
    )
    with pytest.raises(ValueError, match="unknown log level"):
        logs.library_levels("LOUD")


def test_libraries_stay_at_warning_when_the_bot_logs_at_debug() -> None:
    with isolated_logging():
        out = configured(bot_log_level="DEBUG")
        logging.getLogger("aiosqlite").debug("executing SELECT * FROM jobs WHERE prompt = 'a dog'")
        logging.getLogger("httpcore.http11").debug("send_request_headers")
        logging.getLogger("discord.gateway").debug("WebSocket Event: {'content': 'hi'}")
        logging.getLogger("websockets.client").info("connection open")
        logging.getLogger("Lark").info("receive message, payload: {...}")
        logging.getLogger("aiosqlite").warning("database is locked")
        logging.getLogger("bot.core").debug("the bot's own debug line")
        text = out.getvalue()
        assert "a dog" not in text and "send_request_headers" not in text and "WebSocket Event" not in text
        assert "connection open" not in text and "payload" not in text
        assert "database is locked" in text and "the bot's own debug line" in text


def test_bot_log_level_libs_lets_them_speak() -> None:
    with isolated_logging():
        out = configured(bot_log_level="DEBUG", bot_log_level_libs="WARNING,aiosqlite=DEBUG")
        logging.getLogger("aiosqlite").debug("executing SELECT 1")
        logging.getLogger("httpx").info("HTTP Request: GET /")
        assert "executing SELECT 1" in out.getvalue() and "HTTP Request" not in out.getvalue()


def test_a_library_that_lowers_its_own_level_later_is_still_held() -> None:
    with isolated_logging():
        out = configured(bot_log_level="DEBUG")
        logging.getLogger("Lark").setLevel(logging.DEBUG)  # lark-oapi does this when its client is built
        logging.getLogger("Lark").debug("receive message, payload: secret words")
        logging.getLogger("Lark").error("connect failed")
        assert "secret words" not in out.getvalue() and "connect failed" in out.getvalue()


def test_a_library_handler_of_its_own_is_taken_over() -> None:
    with isolated_logging():
        own = io.StringIO()
        lark = logging.getLogger("Lark")
        lark.addHandler(logging.StreamHandler(own))  # as lark_oapi.core.log does at import
        out = configured(feishu_app_secret=SecretStr(SECRET))
        lark.warning("token %s expired", SECRET)
        assert own.getvalue() == ""
        assert "token *** expired" in out.getvalue() and SECRET not in out.getvalue()
        lark.addHandler(logging.StreamHandler(own))  # imported after setup: adopt() after the import
        logs.adopt("Lark")
        lark.warning("again")
        assert own.getvalue() == "" and "again" in out.getvalue()


# -- redaction of the whole formatted record ---------------------------------------------------------
def test_secrets_are_masked_in_messages_arguments_and_tracebacks() -> None:
    with isolated_logging():
        out = configured(ima_api_key=SecretStr(SECRET), discord_token=SecretStr("discord-token-xyz"))
        log = logging.getLogger("bot.probe")
        log.info("key=%s", SECRET)
        log.info(f"inline {SECRET}")
        try:
            raise RuntimeError(
                f"upload to https://up.example/?appKey={SECRET} failed; token discord-token-xyz"
            )
        except RuntimeError:
            log.exception("upload failed")
        log.warning("where am I", stack_info=True, extra={"detail": SECRET})
        text = out.getvalue()
        assert SECRET not in text and "discord-token-xyz" not in text
        assert "key=***" in text and "inline ***" in text and "appKey=***" in text
        assert "Traceback (most recent call last)" in text and "RuntimeError" in text


def test_secrets_registered_at_run_time_are_masked_too() -> None:
    with isolated_logging():
        out = configured()
        redact.register("upload-app-key-987")
        try:
            try:
                raise ValueError("bad answer for upload-app-key-987")
            except ValueError:
                logging.getLogger("httpcore").error("request failed", exc_info=True)
        finally:
            redact.unregister("upload-app-key-987")
        assert "upload-app-key-987" not in out.getvalue() and "bad answer for ***" in out.getvalue()


# -- no prompt at any level ---------------------------------------------------------------------------
async def test_a_whole_conversation_at_debug_logs_no_prompt(sandbox: Sandbox, tmp_path: Path) -> None:
    with isolated_logging():
        prompt = "a purple giraffe reading a newspaper on the moon"
        out = configured(bot_log_level="DEBUG", bot_log_dir=tmp_path / "logs")
        core = await open_core(make_settings(sandbox, tmp_path / "bot.sqlite3"))
        try:
            conv = RecordingConversation()
            job = await core.handle(
                Incoming(platform="console", chat_id="c", user_id="u", text=f"make a video of {prompt}"), conv
            )
            assert job is not None
            await asyncio.wait_for(job.wait(), 60)
            assert conv.kinds()[-1] == "video"
        finally:
            await close_core(core)
        for handler in logging.getLogger().handlers:
            handler.flush()
        for text in (out.getvalue(), (tmp_path / "logs" / "bot.log").read_text(encoding="utf-8")):
            assert "task created" in text  # the bot did log, at DEBUG
            assert "giraffe" not in text and "newspaper" not in text
            assert "aiosqlite" not in text


# -- daily files, seven kept ---------------------------------------------------------------------------
def test_bot_log_dir_writes_a_daily_file(tmp_path: Path) -> None:
    with isolated_logging():
        configured(bot_log_dir=tmp_path / "logs", ima_api_key=SecretStr(SECRET))
        logging.getLogger("bot.probe").warning("into the file with %s", SECRET)
        [handler] = [
            h
            for h in logging.getLogger().handlers
            if isinstance(h, logging.handlers.TimedRotatingFileHandler)
        ]
        handler.flush()
        assert handler.when == "MIDNIGHT" and handler.backupCount == 7
        text = (tmp_path / "logs" / "bot.log").read_text(encoding="utf-8")
        assert "into the file with ***" in text and SECRET not in text


def test_the_file_turns_over_at_midnight() -> None:
    handler = logs.daily_file(Path(os.environ.get("TMPDIR", "/tmp")) / f"bot-logs-{os.getpid()}")
    try:
        noon = time.mktime((2025, 3, 14, 12, 0, 0, 0, 0, -1))
        assert time.localtime(handler.computeRollover(int(noon)))[:6] == (2025, 3, 15, 0, 0, 0)
    finally:
        handler.close()


def test_seven_days_are_kept(tmp_path: Path) -> None:
    handler = logs.daily_file(tmp_path)
    logger = logging.getLogger("probe")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for day in range(1, 13):  # twelve earlier days on disk
            (tmp_path / f"bot.log.2025-01-{day:02d}").write_text(f"day {day}\n", encoding="utf-8")
        logger.info("today")
        handler.doRollover()
        backups = sorted(p.name for p in tmp_path.iterdir() if p.name != "bot.log")
        assert len(backups) == 7
        assert "bot.log.2025-01-01" not in backups  # the oldest went first
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_the_console_keeps_routine_lines_out_of_the_terminal_but_in_the_file(tmp_path: Path) -> None:
    with isolated_logging():
        out = io.StringIO()
        logs.setup(settings(bot_log_dir=tmp_path), stream=out, terminal_level=logging.WARNING)
        logging.getLogger("bot.probe").info("routine")
        logging.getLogger("bot.probe").warning("worth seeing")
        for handler in logging.getLogger().handlers:
            handler.flush()
        assert "routine" not in out.getvalue() and "worth seeing" in out.getvalue()
        assert "routine" in (tmp_path / "bot.log").read_text(encoding="utf-8")


def test_python_m_bot_at_debug_writes_the_day_file_without_prompts_or_sql(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMA_", "FEISHU_", "DISCORD_", "BOT_"))}
    env.update(
        IMA_SANDBOX_TIME_SCALE="0.01",
        BOT_DB_PATH=str(tmp_path / "bot.sqlite3"),
        LANG="C.UTF-8",
        PYTHONIOENCODING="utf-8",
        PYTHONPATH=str(root),
        BOT_LOG_LEVEL="DEBUG",
        BOT_LOG_DIR=str(tmp_path / "logs"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "bot", "console"],
        input="make a 5 second video of a purple giraffe reading a newspaper\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Video ready" in done.stdout
    day_file = (tmp_path / "logs" / "bot.log").read_text(encoding="utf-8")
    assert "task created" in day_file and "task created" in done.stderr
    for text in (day_file, done.stderr):
        assert "giraffe" not in text and "newspaper" not in text
        assert "aiosqlite" not in text and "INSERT INTO" not in text
