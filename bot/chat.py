"""The neutral boundary between the core and a platform: what the core receives (`Incoming`),
the views it answers with, and the protocols both sides keep (`Conversation`, `Core`, `Adapter`).

The core owns these types; each platform adapter imports them (adapters/base.py re-exports
them for the adapters' convenience), never the reverse.


An adapter turns a platform event into an `Incoming` and hands it to the core together with a
`Conversation`; the core answers only through that protocol, with views whose words are already
translated. An adapter chooses how a view looks (a card patched in place, an embed edited in
place, lines in a terminal) but never writes words of its own: labels come from `bot.i18n`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ImageInput:
    """An image a user sent: bytes the platform gave us, or a URL (validated by the core)."""

    data: bytes | None = None
    url: str | None = None
    filename: str = "image"
    content_type: str | None = None


@dataclass(frozen=True)
class Incoming:
    """One user message, platform-neutral."""

    platform: str  # "console" | "feishu" | "discord"
    chat_id: str
    user_id: str
    text: str
    images: tuple[ImageInput, ...] = ()
    #: the platform's id for this message/event; the core de-duplicates on it
    event_id: str | None = None
    #: ids of earlier messages merged into this request (an image sent before its text): a
    #: redelivery of any of them must not start a second paid job either
    extra_event_ids: tuple[str, ...] = ()
    #: message to reply to (Feishu group replies); adapters may ignore it
    reply_to: str | None = None
    #: language hint from the platform ("zh"/"en") for messages whose text says nothing
    language: str | None = None
    #: structured options (Discord slash command) that override what the text says
    overrides: dict[str, object] = field(default_factory=dict)
    #: False for a group message that does not @-mention the bot: the core then answers only a
    #: question it asked that person, and never starts a video or chats. A "no" counts as it is;
    #: a yes or a choice, which spend, only when the message replies to one of the bot's own
    #: (`answers_bot`): a bare "ok" in a group may be meant for someone else
    mentioned: bool = True
    #: an unmentioned message that replies to (quotes) one of the bot's messages
    answers_bot: bool = False
    #: sent with the platform's video command (Discord /video): its text is the description,
    #: however short or chatty, and it starts without asking whether a video was meant
    video_command: bool = False
    #: the sender's roles where the platform has them (Discord: role ids and names), for
    #: DISCORD_ALLOWED_ROLES
    roles: tuple[str, ...] = ()
    #: the sender may not be done: a picture the bot was still holding for its text when it
    #: stopped. A video it asks for waits for a yes (the text may come after the restart, as
    #: its own request: two paid tasks for one)
    ask_first: bool = False


@dataclass(frozen=True)
class Alternative:
    """A model the user can switch to, with its button label already translated."""

    model_id: str
    model_name: str
    label: str  # e.g. "Hailuo 2.0 (fast, 5 pts)"


@dataclass(frozen=True)
class NoticeView:
    """The pre-generation notice."""

    job_id: str
    title: str
    text: str  # full body, translated
    model_name: str
    credits: int
    est_min_s: int
    est_max_s: int
    #: set when the job waits for the requester's OK (over the confirm threshold): button labels
    confirm_label: str | None = None
    decline_label: str | None = None
    #: a button that cancels the job while it runs
    cancel_label: str | None = None


@dataclass(frozen=True)
class ProgressView:
    job_id: str
    percent: int  # 0..95 while running
    elapsed_s: int
    est_max_s: int
    text: str  # translated progress line(s)
    overdue: bool = False  # past the estimate: held at 95 %
    cancel_label: str | None = None


@dataclass(frozen=True)
class VideoView:
    """A finished video: the URL plays inline where the platform can; `link_text` follows it."""

    job_id: str
    url: str
    cover_url: str | None
    caption: str
    link_text: str
    model_name: str
    duration_s: float | None = None
    #: bytes-free: adapters that upload the file fetch `url` themselves (size-capped)
    #: "again" (same request and model) and "another model" buttons, as on a failure
    again_label: str | None = None
    #: "again with the same seed" (the same video again); set when the task ran with a known seed
    same_seed_label: str | None = None
    alternatives: tuple[Alternative, ...] = ()
    #: who asked (platform user id): adapters mention them where an edit would notify nobody
    requester: str | None = None


@dataclass(frozen=True)
class FailureView:
    job_id: str
    title: str
    text: str  # reason + suggestions, translated
    kind: str
    alternatives: tuple[Alternative, ...] = ()
    retry_label: str | None = None  # set when retrying the same request can help


@runtime_checkable
class Conversation(Protocol):
    """How the core talks back to one chat about one job.

    A conversation may also expose `target_state: dict[str, str]` (e.g. the id of the card or
    message it edits); the core saves it with the job after the notice, and hands it back in
    `ReplyTarget.state` when the job is resumed after a restart."""

    async def notice(self, view: NoticeView) -> None: ...

    async def progress(self, view: ProgressView) -> None: ...

    async def video(self, view: VideoView) -> None: ...

    async def failure(self, view: FailureView) -> None: ...

    async def text(self, text: str) -> None: ...


@dataclass(frozen=True)
class ReplyTarget:
    """Where a job's answers go: enough for an adapter to rebuild a Conversation after a restart."""

    platform: str
    chat_id: str
    user_id: str
    reply_to: str | None = None
    language: str = "zh"
    #: adapter-private state (e.g. the id of the card or message being edited)
    state: dict[str, str] = field(default_factory=dict)


class Adapter(Protocol):
    """A platform connection run by `python -m bot`."""

    platform: str

    async def start(self) -> None:
        """Connect and serve until `stop()`; returns when stopped."""
        ...

    async def stop(self) -> None: ...

    async def wait_ready(self) -> None:
        """Return once the adapter can send messages (after `start()` connected)."""
        ...

    def conversation_for(self, target: ReplyTarget) -> Conversation:
        """A Conversation for a job resumed after a restart."""
        ...


#: what an adapter calls for each message: the core's `handle`
Handler = Callable[[Incoming, Conversation], Awaitable[object]]


@dataclass(frozen=True)
class ModelChoice:
    """A model offered for a task type, with its live price range."""

    model_id: str
    name: str
    task_type: str
    credits_min: int
    credits_max: int
    est_min_s: int
    est_max_s: int


@dataclass(frozen=True)
class JobSummary:
    job_id: str
    status: str  # accepted | running | delivered | failed
    model_name: str
    prompt: str
    credits: int | None
    created_at: float  # unix seconds
    url: str | None = None


class JobHandle(Protocol):
    """A job the core accepted; `wait()` returns its final status."""

    job_id: str

    async def wait(self) -> str: ...


class Core(Protocol):
    """What an adapter may ask of the core (implemented by `bot.core.BotCore`)."""

    async def handle(self, incoming: Incoming, conversation: Conversation) -> JobHandle | None:
        """Understand one message and run what it asks; None when nothing was started
        (a duplicate event, a preference change, a message the core answered with text)."""
        ...

    async def rerun(
        self,
        job_id: str,
        *,
        user_id: str,
        model_id: str | None,
        conversation: Conversation,
        same_seed: bool = False,
        roles: tuple[str, ...] = (),
    ) -> JobHandle | None:
        """Run an earlier job again for `user_id` (a button press): same model when
        `model_id` is None, else that model. None when the job is unknown or not theirs, or
        they may no longer spend (`roles`: their Discord roles); the core has already told the
        conversation why."""
        ...

    async def confirm(
        self, job_id: str, *, user_id: str, conversation: Conversation, roles: tuple[str, ...] = ()
    ) -> JobHandle | None:
        """The Confirm button of a job waiting for an OK; works once, for someone who may still
        spend (`roles`: their Discord roles)."""
        ...

    async def decline(self, job_id: str, *, user_id: str, conversation: Conversation) -> None:
        """The "No thanks" button of a job waiting for an OK; it ends unpaid."""
        ...

    async def cancel(
        self,
        job_id: str | None,
        *,
        platform: str,
        user_id: str,
        conversation: Conversation,
        language: str | None = None,
    ) -> None:
        """The Cancel button (or "cancel" typed: job_id None, the person's latest job)."""
        ...

    async def model_choices(self, task_type: str, language: str) -> list[ModelChoice]: ...

    async def usage(self, platform: str, user_id: str, chat_id: str, language: str) -> str:
        """Credits and jobs today and this month, worded (/usage)."""
        ...

    async def set_preference(
        self, platform: str, user_id: str, task_type: str, model_id: str, language: str
    ) -> str:
        """Save a preferred model; returns the confirmation to show (translated)."""
        ...

    async def clear_preference(
        self, platform: str, user_id: str, task_type: str | None, language: str
    ) -> str:
        """Forget preferred models (one task type or all); returns the confirmation to show."""
        ...

    async def recent_jobs(self, platform: str, user_id: str, limit: int = 10) -> list[JobSummary]: ...

    def t(self, key: str, language: str, **values: object) -> str:
        """A translated string from locales/."""
        ...
