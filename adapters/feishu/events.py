"""`im.message.receive_v1` → a plain `ReceivedMessage`: text with mentions resolved, image keys."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from lark_oapi.api.im.v1 import EventMessage, MentionEvent, P2ImMessageReceiveV1

SUPPORTED_TYPES = ("text", "post", "image")
_SPACES = re.compile(r"[ \t]+")


@dataclass(frozen=True)
class ReceivedMessage:
    """One user message, as the adapter needs it."""

    message_id: str
    chat_id: str
    chat_type: str  # "p2p" | "group"
    user_id: str  # the sender's open_id
    message_type: str
    text: str
    image_keys: tuple[str, ...]
    mentions_bot: bool
    create_time_ms: int | None
    #: the message this one replies to (quotes), if any
    parent_id: str | None = None

    @property
    def is_group(self) -> bool:
        return self.chat_type != "p2p"


def parse_event(event: P2ImMessageReceiveV1, bot_open_id: str | None) -> ReceivedMessage | None:
    """The message in `event`; None when it is not one the bot reads (another bot, a sticker…)."""
    data = event.event
    if data is None or data.message is None or data.sender is None:
        return None
    if data.sender.sender_type not in (None, "user"):
        return None  # other bots and apps: never answer them (no loops)
    msg = data.message
    sender = data.sender.sender_id.open_id if data.sender.sender_id else None
    if not (msg.message_id and msg.chat_id and sender) or msg.message_type not in SUPPORTED_TYPES:
        return None
    try:
        content = json.loads(msg.content or "{}")
    except ValueError:
        return None
    mentions = list(msg.mentions or [])
    bot_keys = {m.key for m in mentions if m.key and _is_bot(m, bot_open_id)}
    names = {m.key: m.name or "" for m in mentions if m.key}
    text, images = _content(msg, content, bot_keys, names)
    return ReceivedMessage(
        message_id=msg.message_id,
        chat_id=msg.chat_id,
        chat_type=msg.chat_type or "group",
        user_id=sender,
        message_type=msg.message_type,
        text=text,
        image_keys=tuple(images),
        mentions_bot=bool(bot_keys),
        create_time_ms=_int(msg.create_time),
        parent_id=msg.parent_id or None,
    )


def _is_bot(mention: MentionEvent, bot_open_id: str | None) -> bool:
    # only the bot's own open_id tells an @ of this bot from an @ of another bot (mentioned_type
    # is "bot" for both): unknown, no mention counts, so an @OtherBot never spends here
    return bool(bot_open_id and mention.id and mention.id.open_id == bot_open_id)


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _resolve(text: str, bot_keys: set[str], names: dict[str, str]) -> str:
    """Drop @bot placeholders; turn other placeholders into the person's name."""
    for key in sorted(names, key=len, reverse=True):  # "@_user_10" before "@_user_1"
        text = text.replace(key, "" if key in bot_keys else f"@{names[key]}")
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.splitlines()).strip()


def _content(
    msg: EventMessage, content: dict[str, Any], bot_keys: set[str], names: dict[str, str]
) -> tuple[str, list[str]]:
    if msg.message_type == "text":
        return _resolve(str(content.get("text", "")), bot_keys, names), []
    if msg.message_type == "image":
        key = content.get("image_key")
        return "", [str(key)] if key else []
    return _post(content, bot_keys, names)


def _post(content: dict[str, Any], bot_keys: set[str], names: dict[str, str]) -> tuple[str, list[str]]:
    """Rich text: its title and text runs joined, its images in order."""
    if "content" not in content and content:
        # some deliveries wrap the post in a locale ({"zh_cn": {...}}): take the first one
        first = next(iter(content.values()))
        content = first if isinstance(first, dict) else {}
    lines: list[str] = []
    images: list[str] = []
    title = str(content.get("title") or "").strip()
    if title:
        lines.append(title)
    for paragraph in content.get("content") or []:
        parts: list[str] = []
        for el in paragraph or []:
            tag = el.get("tag")
            if tag in ("text", "a", "code_block", "md"):
                parts.append(str(el.get("text", "")))
            elif tag == "at":
                key = str(el.get("user_id", ""))
                parts.append(key if key in names else f"@{el.get('user_name', '')}")
            elif tag == "img" and el.get("image_key"):
                images.append(str(el["image_key"]))
        lines.append("".join(parts))
    return _resolve("\n".join(lines), bot_keys, names), images
