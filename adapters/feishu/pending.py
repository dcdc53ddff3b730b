"""Small in-memory bookkeeping: recently seen message ids, and images waiting for their text."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from adapters.base import ImageInput


class RecentIds:
    """Message ids seen in the last `ttl_s` seconds (bounded).

    The core's store is the durable de-duplication; this catches the ids it never sees, such as
    an image message merged into the text that followed it. `clock` gives monotonic seconds
    (a test hands in a fake one to let a day pass).
    """

    def __init__(
        self, ttl_s: float = 24 * 3600, max_size: int = 50_000, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.max_size = max_size
        self._clock = clock
        self._ids: OrderedDict[str, float] = OrderedDict()

    def add(self, key: str) -> bool:
        """Remember `key`; True the first time, False when it was seen recently."""
        now = self._clock()
        while self._ids and (
            len(self._ids) >= self.max_size or next(iter(self._ids.values())) < now - self.ttl_s
        ):
            self._ids.popitem(last=False)
        if key in self._ids:
            return False
        self._ids[key] = now
        return True


class ImagesNotDownloaded(Exception):
    """A picture of the message could not be fetched from Feishu: the request is not made
    without it (a text-only video, or the wrong frame first, would not be what was asked)."""


@dataclass
class PendingImages:
    """Images one user sent in one chat, waiting a short while for the text that describes them."""

    message_ids: list[str] = field(default_factory=list)
    downloads: list[asyncio.Future[list[ImageInput]]] = field(default_factory=list)
    reply_to: str | None = None

    async def collect(self) -> list[ImageInput]:
        """The images, in the order they were sent, once downloaded (ImagesNotDownloaded when
        any of them could not be)."""
        out: list[ImageInput] = []
        for images in await asyncio.gather(*self.downloads):
            out.extend(images)
        return out
