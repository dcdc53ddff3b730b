"""Check Discord attachments before downloading any of them: an image type, size-capped.

The core verifies the bytes again (format, size); this check only avoids fetching a 200 MB
video someone attached by mistake, and answers at once with a clear message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import discord

from adapters.base import ImageInput
from bot.images import human_size


@dataclass(frozen=True)
class Rejection:
    """Why an attachment is refused: a locale key under image.* and its values."""

    key: str
    values: dict[str, object]


def check(attachments: Sequence[discord.Attachment], max_bytes: int) -> Rejection | None:
    """The first problem with these attachments, or None when all look like usable images."""
    for a in attachments:
        if not (a.content_type or "").lower().startswith("image/"):
            return Rejection("image.not_image", {"name": a.filename})
        if a.size > max_bytes:
            return Rejection("image.too_large", {"size": human_size(a.size), "limit": human_size(max_bytes)})
    return None


async def download(attachments: Sequence[discord.Attachment]) -> tuple[ImageInput, ...]:
    """The attachments' bytes as ImageInputs (call `check` first)."""
    out = []
    for a in attachments:
        data = await a.read()
        out.append(ImageInput(data=data, filename=a.filename, content_type=a.content_type))
    return tuple(out)
