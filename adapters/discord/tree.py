"""Slash commands: names, options, choices and descriptions, each delegating to `Handlers`.

Descriptions and choice names are locale keys: English is the default text and the
translator below gives Discord the Chinese one for zh-CN (Simplified) and zh-TW (Traditional).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import discord
from discord import app_commands

from adapters.discord.handlers import Handlers, VideoOptions
from adapters.discord.options import Options, options
from bot import i18n
from bot.ima.types import TASK_TYPES


def ls(key: str) -> app_commands.locale_str:
    """A command text: English by default, translated per client locale by `LocaleTranslator`."""
    return app_commands.locale_str(i18n.t(key, "en"), key=key)


class LocaleTranslator(app_commands.Translator):
    """Fills Discord's localizations of command texts from locales/zh.toml (zh-CN) and
    locales/zh-Hant.toml (zh-TW)."""

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        key = string.extras.get("key")
        language = i18n.normalize_language(str(locale.value))
        if not key or language == "en" or not i18n.has(key, language):
            return None
        return i18n.t(key, language)


async def command_hash(tree: app_commands.CommandTree[Any]) -> str:
    """A digest of the global commands exactly as a sync would send them (names, options,
    choices and every localization): equal digests, nothing to sync."""
    translator = tree.translator
    if translator is None:
        payloads = [command.to_dict(tree) for command in tree.get_commands()]
    else:
        payloads = [await command.get_translated_payload(tree, translator) for command in tree.get_commands()]
    payloads.sort(key=lambda p: str(p.get("name")))
    return hashlib.sha256(json.dumps(payloads, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _task_choices() -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=ls(f"task.{task}"), value=task) for task in TASK_TYPES]


#: /video options, in the order Discord shows them (at most 25; each has discord.cmd.video.<name>)
VIDEO_OPTIONS = (
    "prompt",
    "model",
    "duration",
    "resolution",
    "aspect_ratio",
    "image",
    "image2",
    "mode",
    "sound",
    "negative_prompt",
    "seed",
    "shot_type",
    "prompt_extend",
)


def _video_command(h: Handlers, table: Options) -> app_commands.Command[Any, Any, Any]:
    """/video with its options, choices and model autocomplete."""

    @app_commands.command(name="video", description=ls("discord.cmd.video.description"))
    @app_commands.describe(**{name: ls(f"discord.cmd.video.{name}") for name in VIDEO_OPTIONS})
    @app_commands.choices(
        resolution=[app_commands.Choice(name=r, value=r) for r in table.resolutions],
        aspect_ratio=[app_commands.Choice(name=r, value=r) for r in table.aspect_ratios],
        mode=[app_commands.Choice(name=ls(f"discord.mode.{m}"), value=m) for m in table.modes],
        sound=[app_commands.Choice(name=ls(f"discord.sound.{v}"), value=v) for v in table.switches],
        shot_type=[app_commands.Choice(name=ls(f"discord.shot.{v}"), value=v) for v in table.shot_types],
        prompt_extend=[app_commands.Choice(name=ls(f"discord.extend.{v}"), value=v) for v in table.switches],
    )
    async def video(
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, 2000],
        model: str | None = None,
        duration: app_commands.Range[int, 1, 60] | None = None,
        resolution: str | None = None,
        aspect_ratio: str | None = None,
        image: discord.Attachment | None = None,
        image2: discord.Attachment | None = None,
        mode: str | None = None,
        sound: str | None = None,
        negative_prompt: app_commands.Range[str, 1, 500] | None = None,
        # seeds are 32-bit signed integers at the providers; -1 ("random") is what leaving it out means
        seed: app_commands.Range[int, 0, 2147483647] | None = None,
        shot_type: str | None = None,
        prompt_extend: str | None = None,
    ) -> None:
        await h.video(
            interaction,
            VideoOptions(
                prompt,
                model,
                duration,
                resolution,
                aspect_ratio,
                image,
                image2,
                mode,
                sound=sound,
                negative_prompt=negative_prompt,
                seed=seed,
                shot_type=shot_type,
                prompt_extend=prompt_extend,
            ),
        )

    @video.autocomplete("model")
    async def video_model(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await h.model_autocomplete(interaction, current)

    return video


def build_commands(h: Handlers) -> list[app_commands.Command[Any, Any, Any] | app_commands.Group]:
    """The bot's slash commands, bound to `h`."""
    table = options()

    video = _video_command(h, table)

    @app_commands.command(name="models", description=ls("discord.cmd.models.description"))
    async def models(interaction: discord.Interaction) -> None:
        await h.models(interaction)

    prefer = app_commands.Group(name="prefer", description=ls("discord.cmd.prefer.description"))

    @prefer.command(name="model", description=ls("discord.cmd.prefer.model.description"))
    @app_commands.describe(
        model=ls("discord.cmd.prefer.model.model"), task=ls("discord.cmd.prefer.model.task")
    )
    @app_commands.choices(task=_task_choices())
    async def prefer_model(interaction: discord.Interaction, model: str, task: str | None = None) -> None:
        await h.prefer_model(interaction, model, task)

    @prefer_model.autocomplete("model")
    async def prefer_model_model(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await h.model_autocomplete(interaction, current)

    @prefer.command(name="clear", description=ls("discord.cmd.prefer.clear.description"))
    @app_commands.describe(task=ls("discord.cmd.prefer.clear.task"))
    @app_commands.choices(task=_task_choices())
    async def prefer_clear(interaction: discord.Interaction, task: str | None = None) -> None:
        await h.prefer_clear(interaction, task)

    @app_commands.command(name="jobs", description=ls("discord.cmd.jobs.description"))
    async def jobs(interaction: discord.Interaction) -> None:
        await h.jobs(interaction)

    @app_commands.command(name="cancel", description=ls("discord.cmd.cancel.description"))
    async def cancel(interaction: discord.Interaction) -> None:
        await h.cancel(interaction)

    @app_commands.command(name="usage", description=ls("discord.cmd.usage.description"))
    async def usage(interaction: discord.Interaction) -> None:
        await h.usage(interaction)

    @app_commands.command(name="help", description=ls("discord.cmd.help.description"))
    async def help_(interaction: discord.Interaction) -> None:
        await h.help(interaction)

    return [video, models, prefer, jobs, cancel, usage, help_]
