"""`python -m bot` (also `ima-bot`): run | console | sandbox | parse."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from bot.config import Settings

USAGE = """usage: python -m bot [run | console [--image PATH] | sandbox [options] | parse [options] TEXT]

  run       (default) the configured platforms; with none configured, the terminal chat
  console   chat with the bot in this terminal (images: --image PATH or /image PATH lines)
  sandbox   serve the local IMA-compatible sandbox (python -m bot sandbox --help)
  parse     print how a message is understood, as JSON (python -m bot parse --help)
"""


def _console_language() -> str:
    lang = os.environ.get("LC_ALL") or os.environ.get("LANG") or ""
    return "zh" if lang.lower().startswith("zh") else "en"


async def _console(settings: Settings, images: list[Path]) -> int:
    from adapters.console import ConsoleAdapter
    from bot.app import open_runtime

    async with open_runtime(settings) as rt:
        adapter = ConsoleAdapter(
            rt.core,
            images=images,
            language=_console_language(),
            sandbox=rt.sandbox is not None,
            local_file=rt.local_file,
            max_image_bytes=settings.bot_max_image_bytes,
        )
        if rt.sandbox is None:
            # an in-process sandbox forgets its tasks when it stops: only a real API can be resumed
            await rt.core.resume(lambda t: adapter.conversation_for(t) if t.platform == "console" else None)
            await rt.core.wait_idle()
        await adapter.start()
        await rt.core.wait_idle()
    return 0


async def _platforms(settings: Settings) -> int:
    from bot.app import open_runtime
    from bot.chat import Adapter

    async with open_runtime(settings) as rt:
        adapters: dict[str, Adapter] = {}
        if settings.feishu_enabled:
            from adapters.feishu import FeishuAdapter
            from bot import logs

            logs.adopt("Lark")  # lark-oapi brings a stdout handler of its own
            adapters["feishu"] = FeishuAdapter(settings, rt.core)
        if settings.discord_enabled:
            from adapters.discord import DiscordAdapter

            adapters["discord"] = DiscordAdapter(settings, rt.core)
        from adapters.supervise import Supervisor

        async def resume(platform: str, adapter: Adapter) -> None:
            # once a platform is ready (a resumed job's first words need it), its jobs go on there
            await rt.core.resume(lambda t: adapter.conversation_for(t) if t.platform == platform else None)

        # each platform on its own: a login or connection failure is logged and retried with
        # backoff while the other keeps serving; each one's state is logged as it changes
        supervisor = Supervisor(adapters, on_ready=resume)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, lambda: loop.create_task(supervisor.stop()))
        await supervisor.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m bot` and `ima-bot`."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args.pop(0) if args and (not args[0].startswith("-") or args[0] in ("-h", "--help")) else "run"
    if command in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if command == "sandbox":
        from bot.sandbox.cli import main as sandbox_main

        return sandbox_main(args)
    if command == "parse":
        from bot.parse_cli import main as parse_main

        return parse_main(args)
    if command not in ("run", "console"):
        print(USAGE, file=sys.stderr)
        return 2
    settings = Settings()
    from bot import logs

    terminal = command == "console" or not (settings.feishu_enabled or settings.discord_enabled)
    # the terminal is the conversation: keep routine logs out of it unless asked for (a log
    # file still gets them)
    logs.setup(
        settings, terminal_level=logging.WARNING if terminal and "BOT_LOG_LEVEL" not in os.environ else None
    )
    if command == "console":
        parser = argparse.ArgumentParser(prog="python -m bot console")
        parser.add_argument(
            "--image", action="append", type=Path, default=[], help="attach an image to the first message"
        )
        opts = parser.parse_args(args)
        return _until_interrupted(_console(settings, opts.image))
    if settings.feishu_enabled or settings.discord_enabled:
        return asyncio.run(_platforms(settings))
    return _until_interrupted(_console(settings, []))


def _until_interrupted(main: Coroutine[Any, Any, int]) -> int:
    """Run the terminal chat; Ctrl-C ends it quietly. asyncio.run cancels the chat first, so
    every job stops where it is and its row stays as it was (resumable), not "failed"."""
    try:
        return asyncio.run(main)
    except KeyboardInterrupt:
        sys.stdout.write("\n")  # leave the shell prompt on a line of its own
        sys.stdout.flush()
        return 130  # the shell's convention for "ended by SIGINT"


if __name__ == "__main__":
    sys.exit(main())
