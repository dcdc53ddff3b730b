"""Buttons that survive a restart: the custom_id carries the job id, the model (or "same seed")
and whom the job belongs to.

They are `DynamicItem`s registered with `client.add_dynamic_items` at start-up, so a press on
a message posted before the restart is still understood. The requester's id at the end of a
custom_id is optional (messages posted before it was added have none): it lets the adapter
answer someone else's press privately and leave the buttons in place for their owner.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import discord

PREFIX = "imabot:rerun"
#: Retry / Again (no model: the same one) or "switch to model X"; optional requester at the end
TEMPLATE = re.compile(r"imabot:rerun:(?P<job>[\w-]+):(?P<model>[\w.\-]*)(?::(?P<user>\d+))?")
#: Confirm, No thanks and ❌ Cancel of one job
ACTIONS = ("confirm", "decline", "cancel")
ACTION_TEMPLATE = re.compile(r"imabot:(?P<action>confirm|decline|cancel):(?P<job>[\w-]+)(?::(?P<user>\d+))?")
#: "Same seed" after a video: the same model and the seed the job's task ran with
SEED_TEMPLATE = re.compile(r"imabot:seed:(?P<job>[\w-]+)(?::(?P<user>\d+))?")
#: Discord's limit on a component's custom_id
MAX_CUSTOM_ID = 100


class ButtonHandler(Protocol):
    """What a press calls (`Handlers`), found on the client as `button_handler`."""

    async def rerun(
        self,
        interaction: discord.Interaction[Any],
        job_id: str,
        model_id: str | None,
        requester: str | None = None,
        *,
        same_seed: bool = False,
    ) -> None: ...

    async def job_action(
        self, interaction: discord.Interaction[Any], action: str, job_id: str, requester: str | None = None
    ) -> None: ...


def _handler(interaction: discord.Interaction[Any]) -> ButtonHandler | None:
    return getattr(interaction.client, "button_handler", None)


def custom_id(job_id: str, model_id: str | None, requester: str | None = None) -> str:
    base = f"{PREFIX}:{job_id}:{model_id or ''}"
    return f"{base}:{requester}" if requester else base


def action_id(action: str, job_id: str, requester: str | None = None) -> str:
    base = f"imabot:{action}:{job_id}"
    return f"{base}:{requester}" if requester else base


def seed_id(job_id: str, requester: str | None = None) -> str:
    base = f"imabot:seed:{job_id}"
    return f"{base}:{requester}" if requester else base


def _fits(cid: str, template: re.Pattern[str]) -> bool:
    """True when a custom_id matches its template and Discord's 100-character limit."""
    return len(cid) <= MAX_CUSTOM_ID and template.fullmatch(cid) is not None


def _requester(requester: str | None) -> str | None:
    return requester if requester and requester.isascii() and requester.isdigit() else None


class RerunButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=TEMPLATE):
    """ "Retry" / "Again" (no model: the same one) or "switch to model X" for a finished job."""

    def __init__(
        self, job_id: str, model_id: str | None, button: discord.ui.Button[Any], requester: str | None = None
    ) -> None:
        super().__init__(button)
        self.job_id = job_id
        self.model_id = model_id or None
        self.requester = requester or None

    @staticmethod
    def fits(job_id: str, model_id: str | None) -> bool:
        """True when the ids fit the custom_id template and Discord's 100-character limit."""
        return _fits(custom_id(job_id, model_id), TEMPLATE)

    @classmethod
    def make(
        cls,
        job_id: str,
        model_id: str | None,
        label: str,
        *,
        primary: bool = False,
        requester: str | None = None,
    ) -> RerunButton:
        """The button; the requester is left out of the custom_id when it would not fit."""
        user = _requester(requester)
        if user and not _fits(custom_id(job_id, model_id, user), TEMPLATE):
            user = None
        style = discord.ButtonStyle.primary if primary else discord.ButtonStyle.secondary
        button: discord.ui.Button[Any] = discord.ui.Button(
            label=label, style=style, custom_id=custom_id(job_id, model_id, user)
        )
        return cls(job_id, model_id, button, user)

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> RerunButton:
        button = item if isinstance(item, discord.ui.Button) else discord.ui.Button(custom_id=match.group(0))
        return cls(match["job"], match["model"] or None, button, match["user"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        handler = _handler(interaction)
        if handler is None:  # not our client: nothing sensible to do
            return
        await handler.rerun(interaction, self.job_id, self.model_id, self.requester)


_ACTION_STYLES = {
    "confirm": discord.ButtonStyle.success,
    "decline": discord.ButtonStyle.secondary,
    "cancel": discord.ButtonStyle.danger,
}


class JobActionButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=ACTION_TEMPLATE):
    """Confirm or No thanks on a job waiting for its requester's OK; ❌ Cancel while it runs."""

    def __init__(
        self, action: str, job_id: str, button: discord.ui.Button[Any], requester: str | None = None
    ) -> None:
        super().__init__(button)
        self.action = action
        self.job_id = job_id
        self.requester = requester or None

    @staticmethod
    def fits(action: str, job_id: str) -> bool:
        return action in ACTIONS and _fits(action_id(action, job_id), ACTION_TEMPLATE)

    @classmethod
    def make(cls, action: str, job_id: str, label: str, *, requester: str | None = None) -> JobActionButton:
        user = _requester(requester)
        if user and not _fits(action_id(action, job_id, user), ACTION_TEMPLATE):
            user = None
        button: discord.ui.Button[Any] = discord.ui.Button(
            label=label, style=_ACTION_STYLES[action], custom_id=action_id(action, job_id, user)
        )
        return cls(action, job_id, button, user)

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> JobActionButton:
        button = item if isinstance(item, discord.ui.Button) else discord.ui.Button(custom_id=match.group(0))
        return cls(match["action"], match["job"], button, match["user"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        handler = _handler(interaction)
        if handler is None:
            return
        await handler.job_action(interaction, self.action, self.job_id, self.requester)


class SameSeedButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=SEED_TEMPLATE):
    """ "Same seed" on a finished video: the job again with its model and the seed its task ran with."""

    def __init__(self, job_id: str, button: discord.ui.Button[Any], requester: str | None = None) -> None:
        super().__init__(button)
        self.job_id = job_id
        self.requester = requester or None

    @staticmethod
    def fits(job_id: str) -> bool:
        return _fits(seed_id(job_id), SEED_TEMPLATE)

    @classmethod
    def make(cls, job_id: str, label: str, *, requester: str | None = None) -> SameSeedButton:
        user = _requester(requester)
        if user and not _fits(seed_id(job_id, user), SEED_TEMPLATE):
            user = None
        button: discord.ui.Button[Any] = discord.ui.Button(
            label=label, style=discord.ButtonStyle.secondary, custom_id=seed_id(job_id, user)
        )
        return cls(job_id, button, user)

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> SameSeedButton:
        button = item if isinstance(item, discord.ui.Button) else discord.ui.Button(custom_id=match.group(0))
        return cls(match["job"], button, match["user"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        handler = _handler(interaction)
        if handler is None:
            return
        await handler.rerun(interaction, self.job_id, None, self.requester, same_seed=True)
