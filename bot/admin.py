"""What an admin (BOT_ADMINS) may change from chat: budgets and who may spend.

    admin budget user 500        each person's daily credits ("off": no limit)
    admin budget chat 2000       each chat's daily credits
    admin allow user ou_123      Feishu: this person may spend (once any are listed, only they)
    admin disallow user ou_123
    admin allow role Creators    Discord: people with this role (id or name) may spend
    admin disallow role Creators
    admin usage                  today's spending per chat and per person

Changes are kept in the database (they win over the settings) and take effect at once.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from bot import commands, i18n
from bot.budget import ALLOWED_ROLES, ALLOWED_USERS, CHAT_LIMIT, USER_LIMIT
from bot.chat import Incoming

if TYPE_CHECKING:
    from bot.core import BotCore

_COMMAND = re.compile(r"^\s*/?(?:admin|管理)(?:\s+|$)(?P<rest>.*)$", re.IGNORECASE | re.DOTALL)
_BUDGET = re.compile(r"^budget\s+(?P<scope>user|chat)\s+(?P<value>\d+|off)$", re.IGNORECASE)
_ALLOW = re.compile(r"^(?P<verb>allow|disallow)\s+(?P<what>user|role)\s+(?P<who>.+)$", re.IGNORECASE)


def is_admin_command(text: str) -> bool:
    """True for a message that starts with "admin" / "/admin" (answered by `run`, never parsed
    as a video request, whoever sends it)."""
    return _COMMAND.match(text) is not None


async def run(core: BotCore, incoming: Incoming) -> str:
    """Carry out one admin command; the answer to show (a refusal for non-admins)."""
    lang = i18n.detect_language(incoming.text, incoming.language)
    budgets = core.budgets
    if not budgets.is_admin(incoming.platform, incoming.user_id):
        return i18n.t("admin.only_admins", lang)
    m = _COMMAND.match(incoming.text)
    rest = " ".join((m["rest"] if m else "").split())
    if rest.lower() == "usage":
        return await commands.usage_text(core, incoming.platform, incoming.user_id, incoming.chat_id, lang)
    if (b := _BUDGET.match(rest)) is not None:
        key = USER_LIMIT if b["scope"].lower() == "user" else CHAT_LIMIT
        value = b["value"].lower()
        await budgets.set_override(key, value)
        return i18n.t(
            "admin.budget_set",
            lang,
            scope=i18n.t(f"admin.scope_{b['scope'].lower()}", lang),
            value=value if value != "off" else i18n.t("admin.no_limit", lang),
        )
    if (a := _ALLOW.match(rest)) is not None:
        users, roles = await budgets.allowlists()
        listed = users if a["what"].lower() == "user" else roles
        who = a["who"].strip()
        if a["verb"].lower() == "allow" and who not in listed:
            listed.append(who)
        elif a["verb"].lower() == "disallow" and who in listed:
            listed.remove(who)
        key = ALLOWED_USERS if a["what"].lower() == "user" else ALLOWED_ROLES
        await budgets.set_override(key, json.dumps(listed, ensure_ascii=False))
        return i18n.t("admin.allowlist", lang, who=", ".join(listed) or i18n.t("admin.everyone", lang))
    return i18n.t("admin.help", lang)
