"""Answers to what people say besides a video request: help, models, jobs, preferences, chat.

Nothing here creates a task. Each function returns the translated text to send; the core
decides when to send it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot import i18n
from bot.ima.types import TASK_TYPES
from bot.text import one_line
from bot.understand.intent import core_text, is_gibberish, is_idle_question, is_small_talk, load_intents
from bot.understand.normalize import fold

if TYPE_CHECKING:
    from bot.core import BotCore

_PROMPT_PREVIEW = 40
_JOBS_SHOWN = 8


def help_text(lang: str) -> str:
    """A short how-to with example requests."""
    return i18n.t("help.body", lang)


async def models_text(core: BotCore, lang: str) -> str:
    """Every task type's models with 'from N pts' and the estimated time, from the live list."""
    lines = [i18n.t("models.title", lang)]
    for task in TASK_TYPES:
        choices = await core.model_choices(task, lang)
        if not choices:
            continue
        lines.append(i18n.t("models.task", lang, task=i18n.t(f"task.{task}", lang)))
        lines += [
            i18n.t(
                "models.line",
                lang,
                model=c.name,
                credits=c.credits_min,
                est_min=c.est_min_s,
                est_max=c.est_max_s,
            )
            for c in choices
        ]
    if len(lines) == 1:
        return i18n.t("models.none", lang)
    lines.append(i18n.t("models.footer", lang))
    return "\n".join(lines)


async def jobs_text(core: BotCore, platform: str, user_id: str, lang: str) -> str:
    """The person's running, queued and recent jobs, newest first."""
    jobs = await core.recent_jobs(platform, user_id, _JOBS_SHOWN)
    if not jobs:
        return i18n.t("jobs.none", lang)
    lines = [i18n.t("jobs.title", lang)]
    for j in jobs:
        status_key = f"jobs.status.{j.status}"
        line = i18n.t(
            "jobs.line",
            lang,
            status=i18n.t(status_key, lang) if i18n.has(status_key, lang) else j.status,
            model=j.model_name or "—",
            prompt=one_line(j.prompt, _PROMPT_PREVIEW) or "—",
            credits=i18n.t("jobs.credits", lang, credits=j.credits) if j.credits is not None else "",
        )
        if j.url:
            line += i18n.t("jobs.link", lang, url=j.url)
        lines.append(line)
    return "\n".join(lines)


async def preferences_text(core: BotCore, platform: str, user_id: str, lang: str) -> str:
    """The person's preferred models, or how to set one."""
    prefs = await core.store.preferences(platform, user_id)
    if not prefs:
        return i18n.t("prefs.none", lang)
    items = [
        i18n.t("prefs.item", lang, model=p.model_name, task=i18n.t(f"task.{task}", lang))
        for task, p in sorted(prefs.items())
    ]
    return i18n.t("prefs.show", lang, prefs=", ".join(items))


def chat_reply(text: str, lang: str, *, answered_nothing: bool) -> str:
    """One friendly line for a message that asks for no video.

    Keyboard mash and a request with nothing to depict ("生成一段视频") get "what should I
    make?"; an idle question gets "I only make videos"; a yes or no with nothing asked gets a
    nudge; greetings and thanks get a hello that points at help."""
    tables = load_intents()
    words = core_text(fold(text))
    if answered_nothing:
        return i18n.t("talk.ack", lang)
    if not words or is_small_talk(words, tables):  # "🙂", "👍", "hi", "谢谢"
        return i18n.t("talk.hello", lang)
    if words and is_idle_question(words, tables) and not is_gibberish(words):
        return i18n.t("talk.question", lang)
    return i18n.t("chat.need_prompt", lang)


async def usage_text(core: BotCore, platform: str, user_id: str, chat_id: str, lang: str) -> str:
    """The person's credits and jobs today and this month (and their budget's rest); for an
    admin also this chat's and the biggest spenders today."""
    budgets = core.budgets
    day, month = budgets.day_start(), budgets.month_start()
    store = core.store
    [(_, today, jobs_today)] = await store.usage(platform, day, user_id=user_id)
    [(_, this_month, jobs_month)] = await store.usage(platform, month, user_id=user_id)
    lines = [
        i18n.t(
            "usage.mine", lang, today=today, jobs_today=jobs_today, month=this_month, jobs_month=jobs_month
        )
    ]
    user_limit, chat_limit = await budgets.limits()
    if user_limit is not None and not budgets.is_admin(platform, user_id):
        lines.append(
            i18n.t(
                "usage.left",
                lang,
                left=max(0, user_limit - today),
                limit=user_limit,
                resets=budgets.resets_at(),
            )
        )
    if budgets.is_admin(platform, user_id):
        [(_, chat_today, chat_jobs)] = await store.usage(platform, day, chat_id=chat_id)
        lines.append(
            i18n.t(
                "usage.chat",
                lang,
                credits=chat_today,
                jobs=chat_jobs,
                limit=chat_limit if chat_limit is not None else "—",
            )
        )
        for who, credits, jobs in await store.usage(platform, day, by="user_id"):
            lines.append(i18n.t("usage.person", lang, who=who, credits=credits, jobs=jobs))
        for where, credits, jobs in await store.usage(platform, day, by="chat_id"):
            lines.append(i18n.t("usage.per_chat", lang, where=where, credits=credits, jobs=jobs))
    return "\n".join(lines)
