"""Failure buttons that survive a restart: the custom_id carries the job id and the model.

They are `DynamicItem`s registered with `client.add_dynamic_items` at start-up, so a press on
a message posted before the restart is still understood.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import discord

PREFIX = "imabot:rerun"
TEMPLATE = re.compile(r"imabot:rerun:(?P<job>[\w-]+):(?P<model>[\w.\-]*)")
#: Discord's limit on a component's custom_id
MAX_CUSTOM_ID = 100


class RerunHandler(Protocol):
    async def rerun(self, interaction: discord.Interaction[Any], job_id: str, model_id: str | None) -> None: ...


def custom_id(job_id: str, model_id: str | None) -> str:
    return f"{PREFIX}:{job_id}:{model_id or ''}"


class RerunButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=TEMPLATE):
    """"Retry" (no model: the same one) or "switch to model X" for a failed job."""

    def __init__(self, job_id: str, model_id: str | None, button: discord.ui.Button[Any]) -> None:
        super().__init__(button)
        self.job_id = job_id
        self.model_id = model_id or None

    @staticmethod
    def fits(job_id: str, model_id: str | None) -> bool:
        """True when the ids fit the custom_id template and Discord's 100-character limit."""
        cid = custom_id(job_id, model_id)
        return len(cid) <= MAX_CUSTOM_ID and TEMPLATE.fullmatch(cid) is not None

    @classmethod
    def make(cls, job_id: str, model_id: str | None, label: str, *, primary: bool = False) -> RerunButton:
        style = discord.ButtonStyle.primary if primary else discord.ButtonStyle.secondary
        button: discord.ui.Button[Any] = discord.ui.Button(label=label, style=style, custom_id=custom_id(job_id, model_id))
        return cls(job_id, model_id, button)

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> RerunButton:
        button = item if isinstance(item, discord.ui.Button) else discord.ui.Button(custom_id=match.group(0))
        return cls(match["job"], match["model"] or None, button)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        handler: RerunHandler | None = getattr(interaction.client, "rerun_handler", None)
        if handler is None:  # not our client: nothing sensible to do
            return
        await handler.rerun(interaction, self.job_id, self.model_id)
