"""Wiring: settings → (sandbox) → IMA client → store → BotCore, and the adapters to run."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from bot.catalog import load_catalog
from bot.config import SANDBOX_KEY, Settings
from bot.core import BotCore
from bot.ima import ImaClient
from bot.store import Store

if TYPE_CHECKING:
    from bot.sandbox import Sandbox

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    core: BotCore
    sandbox: Sandbox | None

    def local_file(self, url: str) -> Path | None:
        """The file behind a URL the built-in sandbox serves (it stops with the process; the file stays)."""
        if self.sandbox is None or not url.startswith(f"{self.sandbox.base_url}/media/"):
            return None
        path = self.sandbox.media_dir / url.removeprefix(f"{self.sandbox.base_url}/media/")
        return path if path.is_file() else None


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Everything the bot needs, closed in reverse order on exit.

    With no IMA_API_KEY the built-in sandbox is started in-process on a free loopback port
    (real HTTP), so a fresh clone works with nothing configured."""
    async with AsyncExitStack() as stack:
        sandbox: Sandbox | None = None
        if settings.uses_sandbox:
            # imported only when it runs: aiohttp, PyAV and Pillow cost ~0.4 s of start-up
            from bot.sandbox import Sandbox, SandboxConfig

            # media kept beside the database, so the videos outlive the in-process sandbox
            media_dir = settings.bot_db_path.parent / "sandbox-media"
            sandbox = await stack.enter_async_context(
                Sandbox(
                    SandboxConfig(
                        port=0, api_key=SANDBOX_KEY, time_scale=settings.time_scale, media_dir=media_dir
                    )
                )
            )
            settings = settings.model_copy(
                update={
                    "ima_api_key": SecretStr(SANDBOX_KEY),
                    "ima_base_url": sandbox.base_url,
                    "ima_im_base_url": sandbox.base_url,
                    "ima_upload_app_key": SecretStr(sandbox.config.upload_app_key),
                }
            )
            log.info("using the built-in IMA sandbox at %s", sandbox.base_url)
        client = ImaClient.from_settings(settings)
        stack.push_async_callback(client.aclose)
        store = await Store.open(settings.db_url, lease_s=settings.bot_lease_s)
        stack.push_async_callback(store.close)
        # redeliveries come within hours (Feishu's last retry is at 6 h): a week is plenty
        await store.prune_seen(older_than_s=7 * 86400)
        core = BotCore(settings=settings, client=client, store=store, catalog=load_catalog())
        stack.push_async_callback(core.cancel_all)
        settle_heap()
        yield Runtime(core, sandbox)


#: net new objects between two young collections (Python's default: 700)
YOUNG_COLLECTION_EVERY = 50_000


def settle_heap() -> None:
    """Put what start-up built (modules, phrase tables, catalogs, SDKs) out of the garbage
    collector's reach. A full collection walks every live object: ~100 ms with the loop stopped,
    in the middle of a burst of messages. Once the bot is ready, only what it makes from then on
    is walked.

    And walk that less often: with hundreds of messages in flight most young objects are alive,
    so each young collection walks them again. At Python's 700, 300 messages at once cost ~40
    collections, 9-16 ms of the loop (a fifth of the burst); at 50,000 none, and a collection,
    when one comes, walks a few tens of thousands of objects (~10 ms)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, *gc.get_threshold()[1:])
