"""Small text helpers shared by the core and the adapters.

Kept free of imports from the rest of the bot, so that light modules (bot.i18n) and heavy ones
(bot.understand.parser, the adapters) can all use them without an import cycle.
"""

from __future__ import annotations

import re

#: one Chinese character: CJK Unified Ideographs, Extension A and the compatibility block
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

ELLIPSIS = "…"


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + ELLIPSIS


def one_line(text: str, limit: int) -> str:
    """`text` on one line (every run of whitespace a single space), then clipped to `limit`:
    a preview of something a person wrote, for a list with one entry per line."""
    return clip(" ".join(text.split()), limit)
