"""Neutral views → what a Discord message shows: content, one embed, buttons, an optional file.

Words come from the views (already translated); this module only chooses the layout.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from typing import Any

import discord

from adapters.base import Alternative, FailureView, NoticeView, ProgressView, VideoView
from adapters.discord.buttons import JobActionButton, RerunButton, SameSeedButton
from bot.text import clip

BAR_WIDTH = 20
COLOR_RUNNING = discord.Colour.blurple()
COLOR_DONE = discord.Colour.green()
COLOR_FAILED = discord.Colour.red()
COLOR_TEXT = discord.Colour.light_grey()
#: Discord caps an embed description at 4096 characters, a button label at 80
_MAX_DESCRIPTION = 4096
_MAX_LABEL = 80
#: and a message's content at 2000
_MAX_CONTENT = 2000


@dataclass
class Rendered:
    """One message's worth of output. `file_bytes` becomes a fresh discord.File per send."""

    content: str | None = None
    embed: discord.Embed | None = None
    view: discord.ui.View | None = None
    file_bytes: bytes | None = None
    filename: str = "video.mp4"
    #: the content to show when the file is dropped (its link then plays instead)
    unwrapped: str | None = None

    def without_file(self) -> Rendered:
        """The same message with the link alone (Discord refused the upload as too large)."""
        content = self.content
        if content is not None and self.unwrapped is not None:
            content = self.unwrapped
        return dataclasses.replace(self, content=content, file_bytes=None, unwrapped=None)

    def file(self) -> discord.File | None:
        if self.file_bytes is None:
            return None
        return discord.File(io.BytesIO(self.file_bytes), filename=self.filename)

    def edit_kwargs(self) -> dict[str, Any]:
        """Arguments for an edit: everything set explicitly, so stale parts are cleared."""
        kw: dict[str, Any] = {"content": self.content, "embed": self.embed, "view": self.view}
        f = self.file()
        if f is not None:
            kw["attachments"] = [f]
        return kw

    def send_kwargs(self) -> dict[str, Any]:
        """Arguments for a new message: only what is set."""
        kw: dict[str, Any] = {}
        if self.content is not None:
            kw["content"] = self.content
        if self.embed is not None:
            kw["embed"] = self.embed
        if self.view is not None:
            kw["view"] = self.view
        f = self.file()
        if f is not None:
            kw["file"] = f
        return kw


def bar(percent: int, width: int = BAR_WIDTH) -> str:
    """A text progress bar (symbols only, no words)."""
    filled = max(0, min(width, width * percent // 100))
    return "█" * filled + "░" * (width - filled)


def _actions(
    job_id: str, labels: list[tuple[str, str | None]], requester: str | None
) -> discord.ui.View | None:
    """Confirm / No thanks / ❌ Cancel buttons for the labels the view set (None: no button)."""
    buttons = discord.ui.View(timeout=None)
    for action, label in labels:
        if label and JobActionButton.fits(action, job_id):
            buttons.add_item(
                JobActionButton.make(action, job_id, clip(label, _MAX_LABEL), requester=requester)
            )
    return buttons if buttons.children else None


def _reruns(
    job_id: str,
    same_label: str | None,
    alternatives: tuple[Alternative, ...],
    requester: str | None,
    same_seed_label: str | None = None,
) -> discord.ui.View | None:
    """Retry / Again (the same model, primary), Same seed (when offered) and one button per other model."""
    buttons = discord.ui.View(timeout=None)
    if same_label and RerunButton.fits(job_id, None):
        buttons.add_item(
            RerunButton.make(job_id, None, clip(same_label, _MAX_LABEL), primary=True, requester=requester)
        )
    if same_seed_label and SameSeedButton.fits(job_id):
        buttons.add_item(SameSeedButton.make(job_id, clip(same_seed_label, _MAX_LABEL), requester=requester))
    for alt in alternatives:
        if RerunButton.fits(job_id, alt.model_id) and len(buttons.children) < 25:
            buttons.add_item(
                RerunButton.make(job_id, alt.model_id, clip(alt.label, _MAX_LABEL), requester=requester)
            )
    return buttons if buttons.children else None


def notice(view: NoticeView, requester: str | None = None) -> Rendered:
    """The notice; Confirm and No thanks when it waits for an OK, else ❌ Cancel (when offered)."""
    embed = discord.Embed(description=clip(view.text, _MAX_DESCRIPTION), colour=COLOR_RUNNING)
    if view.confirm_label:
        labels = [("confirm", view.confirm_label), ("decline", view.decline_label)]
    else:
        labels = [("cancel", view.cancel_label)]
    return Rendered(embed=embed, view=_actions(view.job_id, labels, requester))


def progress(view: ProgressView, notice_view: NoticeView | None, requester: str | None = None) -> Rendered:
    """The notice (when known) with a progress bar under it, in one embed, and ❌ Cancel."""
    parts = [notice_view.text] if notice_view is not None else []
    parts.append(f"`{bar(view.percent)}`\n{view.text}")
    embed = discord.Embed(description=clip("\n\n".join(parts), _MAX_DESCRIPTION), colour=COLOR_RUNNING)
    return Rendered(embed=embed, view=_actions(view.job_id, [("cancel", view.cancel_label)], requester))


def video(
    view: VideoView,
    file_bytes: bytes | None = None,
    filename: str = "video.mp4",
    requester: str | None = None,
) -> Rendered:
    """The mp4 URL in the content (Discord shows a player), the caption in an embed beside it,
    with Again, Same seed (when the task's seed is known) and "Try <model>" buttons.

    With the file attached the URL is wrapped in <…> so Discord shows one player, not two. The
    content is cut to Discord's 2,000 characters."""
    content = clip(view.link_text, _MAX_CONTENT)
    unwrapped = None
    if file_bytes is not None and view.url:
        unwrapped = content
        content = clip(view.link_text.replace(view.url, f"<{view.url}>"), _MAX_CONTENT)
    embed = discord.Embed(description=clip(view.caption, _MAX_DESCRIPTION), colour=COLOR_DONE)
    if view.cover_url and view.cover_url.startswith(("https://", "http://")):
        embed.set_thumbnail(url=view.cover_url)
    buttons = _reruns(
        view.job_id, view.again_label, view.alternatives, view.requester or requester, view.same_seed_label
    )
    return Rendered(
        content=content,
        embed=embed,
        view=buttons,
        file_bytes=file_bytes,
        filename=filename,
        unwrapped=unwrapped,
    )


def failure(view: FailureView, requester: str | None = None) -> Rendered:
    """The reason and suggestions, with Retry and one button per suggested model."""
    embed = discord.Embed(description=clip(view.text, _MAX_DESCRIPTION), colour=COLOR_FAILED)
    return Rendered(embed=embed, view=_reruns(view.job_id, view.retry_label, view.alternatives, requester))


def ready_ping(text: str) -> str:
    """The line that tells the requester their video is ready (a message of its own)."""
    return clip(text, _MAX_CONTENT)


def text(message: str) -> Rendered:
    return Rendered(content=clip(message, _MAX_CONTENT))
