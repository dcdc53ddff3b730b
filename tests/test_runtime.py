"""The runtime the bot starts with (bot.app.open_runtime): what start-up leaves behind."""

from __future__ import annotations

import gc
from pathlib import Path

from bot.app import open_runtime
from bot.config import Settings


async def test_start_up_leaves_its_objects_out_of_the_collectors_walks(tmp_path: Path) -> None:
    gc.unfreeze()
    settings = Settings(_env_file=None, bot_db_path=tmp_path / "bot.sqlite3")
    async with open_runtime(settings) as runtime:
        assert runtime.sandbox is not None  # no key: the built-in sandbox
        # a full collection would otherwise walk every module and table at each burst
        assert gc.get_freeze_count() > 10_000
    gc.unfreeze()
