"""The core adapters talk to: understands a message, keeps preferences, runs and resumes jobs.

It implements `bot.chat.Core`; it never imports a platform SDK or an adapter.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from bot import admin, commands, i18n
from bot.catalog import Catalog, ModelInfo
from bot.chat import (
    Conversation,
    Incoming,
    JobSummary,
    ModelChoice,
    ReplyTarget,
)
from bot.config import Settings
from bot.ima import ImaClient
from bot.ima.errors import ImaError
from bot.ima.types import MAX_PROMPT_CHARS, TASK_TYPES
from bot.images import CheckedImage, ImageRejected, check_images, with_linked_images
from bot.orchestrator import QUESTION_TTL_S, Orchestrator
from bot.selection import offers_from
from bot.store import (
    ACTIVE,
    WAITING,
    Job,
    JobRequest,
    OpenQuestion,
    Preference,
    PreferenceChange,
    Store,
    StoredImage,
    TooManyJobs,
)
from bot.understand import Request, model_for_task, parse
from bot.understand.lexicon import canonical, load_lexicon
from bot.understand.normalize import fold

log = logging.getLogger(__name__)

_OVERRIDES = (
    "model_id",
    "duration",
    "resolution",
    "aspect_ratio",
    "task_type",
    "sound",
    "negative_prompt",
    "seed",
    "shot_type",
    "prompt_extend",
)
#: longer messages are refused before they are parsed
MAX_MESSAGE_CHARS = 8000
#: messages understood and admitted at the same time (more wait their turn, in order). Enough
#: that some are parsed while others wait for the database (300 at once: notice p95 ~156 ms with
#: 32, ~121 ms with 128), few enough that one turn of the loop parses for ~15 ms at most
MESSAGES_AT_ONCE = 128
#: longer messages are parsed in a worker thread
_PARSE_ON_LOOP_CHARS = 1000


def _valid_text(incoming: Incoming) -> Incoming:
    """The message with anything that is not valid Unicode (a lone surrogate) replaced, so no
    later step (the database, a platform API) fails on it."""
    try:
        incoming.text.encode("utf-8")
    except UnicodeEncodeError:
        return replace(incoming, text=incoming.text.encode("utf-8", "replace").decode("utf-8"))
    return incoming


def _replaced(before: Preference | None, key: str, at: float) -> dict[str, Any]:
    """JobRequest.replaced for a preference changed to `key` at `at` from `before`."""
    if before is None:
        return {"set": key, "at": at}
    return {
        "set": key,
        "at": at,
        "model_key": before.model_key,
        "model_id": before.model_id,
        "model_name": before.model_name,
    }


def _as_video_command(request: Request, incoming: Incoming) -> Request:
    """A message sent with the video command asks for a video in so many words: a short or
    chatty description ("sunset", "thanks a lot") is still its prompt, and nothing asks first.
    A command word alone ("help") stays that command."""
    if request.intent == "chat" and any(ch.isalnum() for ch in incoming.text):
        return replace(request, intent="video", prompt=incoming.text.strip(), unsure=False)
    return replace(request, unsure=False) if request.unsure else request


def _checked(images: list[StoredImage]) -> list[CheckedImage]:
    """Pictures kept with a job, as the orchestrator uploads them."""
    return [CheckedImage(im.data, im.content_type, im.url) for im in images]


@dataclass
class RunningJob:
    """A job the core accepted; `wait()` returns its final status."""

    job_id: str
    task: asyncio.Task[str]
    owner: tuple[str, str] = ("", "")  # (platform, user_id)

    async def wait(self) -> str:
        try:
            return await asyncio.shield(self.task)
        except asyncio.CancelledError:
            waiter = asyncio.current_task()
            if self.task.cancelled() and not (waiter is not None and waiter.cancelling()):
                return "cancelled"  # stopped by "cancel" or at shutdown, not this waiter
            raise


class BotCore:
    """Platform-neutral bot. Built with its client and store by `bot.app.open_runtime(settings)`."""

    def __init__(
        self,
        *,
        settings: Settings,
        client: ImaClient,
        store: Store,
        catalog: Catalog,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`sleep` and `clock` time the jobs' waits (back-off, polls, deadlines): tests pass
        their own to reach the recovery branches without waiting."""
        self.settings = settings
        self.client = client
        self.store = store
        self.catalog = catalog
        self.orchestrator = Orchestrator(
            client=client, store=store, catalog=catalog, settings=settings, sleep=sleep, clock=clock
        )
        self.budgets = self.orchestrator.budgets
        self._jobs: dict[str, RunningJob] = {}
        self._taking = asyncio.Semaphore(MESSAGES_AT_ONCE)
        self._owned: collections.Counter[tuple[str, str]] = collections.Counter()  # job places per person
        self._slots = asyncio.Semaphore(settings.bot_max_concurrent_jobs)
        self._queued = 0  # jobs waiting for a slot
        # several processes on one database (PostgreSQL): the conversations resumed jobs answer
        # in, and the task that renews this process's leases and takes over a dead one's jobs
        self._conversation_for: list[Callable[[ReplyTarget], Conversation | None]] = []
        self._leases: asyncio.Task[None] | None = None
        # load the phrase tables and message catalogs now, not on the first message's turn of the loop
        parse("")
        for language in i18n.LANGUAGES:
            i18n.catalog(language)

    # -- Core protocol ---------------------------------------------------------------------------
    def t(self, key: str, language: str, **values: object) -> str:
        return i18n.t(key, language, **values)

    async def handle(self, incoming: Incoming, conversation: Conversation) -> RunningJob | None:
        """Understand one message and act on it (see bot.chat.Core.handle). Whatever goes
        wrong ends in a plain-language reply and a logged error, never in silence."""
        try:
            # a burst of messages is taken a bounded number at a time: a thousand parses in one
            # turn of the loop would hold up every chat's progress for a fifth of a second; and
            # while one waits for its answer, creates wait for it (bot.first_answers)
            with self.orchestrator.answers.owing():
                async with self._taking:
                    return await self._handle(incoming, conversation)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("handling a %s message failed", incoming.platform)
            lang = i18n.normalize_language(incoming.language) if incoming.language else "en"
            with contextlib.suppress(Exception):
                await conversation.text(self.t("talk.failed_to_answer", lang))
            return None

    async def _handle(self, incoming: Incoming, conversation: Conversation) -> RunningJob | None:
        """intake check -> understand -> route by intent -> admit -> run."""
        incoming = _valid_text(incoming)
        ids = list(dict.fromkeys(i for i in (incoming.event_id, *incoming.extra_event_ids) if i))
        # the intake transaction de-duplicates every path; this early look only saves the work of
        # checking (downloading) a redelivered message's pictures again
        if incoming.images and await self.store.seen_any(incoming.platform, ids):
            log.info("duplicate event %s/%s ignored", incoming.platform, incoming.event_id)
            return None
        if len(incoming.text) > MAX_MESSAGE_CHARS:
            # refused before parsing: nothing anyone types to describe a video is this long
            if await self.store.intake(incoming.platform, ids):
                lang = parse(incoming.text[:200]).language
                await conversation.text(
                    self.t("talk.too_long", lang, length=len(incoming.text), limit=MAX_MESSAGE_CHARS)
                )
            return None
        incoming = with_linked_images(incoming)
        if incoming.mentioned and admin.is_admin_command(incoming.text):
            if await self.store.intake(incoming.platform, ids):
                await conversation.text(await admin.run(self, incoming))
            return None
        request = await self._understand(incoming)
        if request.intent == "video" and not request.unknown_model and incoming.mentioned:
            return await self._accept_video(request, incoming, conversation, ids)
        if not await self.store.intake(incoming.platform, ids):
            return None  # a redelivery that raced this one
        return await self._converse(request, incoming, conversation)

    async def _converse(self, request: Request, incoming: Incoming, conv: Conversation) -> RunningJob | None:
        """Everything but a new video: commands, answers to the bot's questions, chat."""
        lang = request.language
        intent = request.intent
        # a yes or a no answers any question; a model named answers only "try another model?"
        # (never a price question: "用海螺" is not a yes to Sora's price); "forget my model" is
        # the preference command whatever was asked
        answers = intent in ("confirm", "decline") or (intent == "prefer" and request.model_key is not None)
        if answers and not request.unknown_model:
            if not (incoming.mentioned or incoming.answers_bot or request.intent == "decline"):
                return None  # a group "ok" not addressed to the bot: it may be for someone else
            question = await self.store.take_question(
                incoming.platform, incoming.chat_id, incoming.user_id, None if intent != "prefer" else "retry"
            )
            if question is not None:
                return await self._answer(question, request, incoming, conv)
        if not incoming.mentioned:
            return None  # group talk not addressed to the bot: it may only answer its own questions
        if request.intent == "cancel" and not request.unknown_model:
            await self.cancel(
                None, platform=incoming.platform, user_id=incoming.user_id, conversation=conv, language=lang
            )
        elif request.intent == "prefer" and not request.unknown_model:
            await self._prefer(request, incoming, conv)
        else:
            await conv.text(await self._words_for(request, incoming))
        return None

    async def _words_for(self, request: Request, incoming: Incoming) -> str:
        """The answer in words to a command, an unknown model, a question or chat (no task)."""
        lang = request.language
        if request.unknown_model:
            names = ", ".join(m.name for m in self.catalog.for_task(request.task_type))
            return self.t("talk.unknown_model", lang, model=request.unknown_model, models=names)
        if request.intent == "help":
            return commands.help_text(lang)
        if request.intent == "models":
            return await commands.models_text(self, lang)
        if request.intent == "jobs" and request.topic == "usage":
            return await commands.usage_text(
                self, incoming.platform, incoming.user_id, incoming.chat_id, lang
            )
        if request.intent == "jobs":
            return await commands.jobs_text(self, incoming.platform, incoming.user_id, lang)
        if request.wants_images > len(incoming.images):
            return self.t("talk.need_two_images" if request.wants_images > 1 else "talk.need_image", lang)
        return commands.chat_reply(
            incoming.text, lang, answered_nothing=request.intent in ("confirm", "decline")
        )

    async def _remember(
        self, request: Request, incoming: Incoming, model: ModelInfo, model_id: str
    ) -> dict[str, Any] | None:
        """Save the model a message named as the person's preference for its task type; what
        it replaced when that changed their preference (see JobRequest.replaced), else None."""
        task = request.task_type
        before = await self.store.get_preference(incoming.platform, incoming.user_id, task)
        at = await self.store.set_preference(
            incoming.platform, incoming.user_id, task, model.key, model_id, model.name
        )
        if before is not None and before.model_key == model.key:
            return None
        return _replaced(before, model.key, at)

    async def _prefer(self, request: Request, incoming: Incoming, conv: Conversation) -> None:
        """Save, clear or show a preference, and say so; no video."""
        lang = request.language
        model = self._model_of(request)
        if request.preference == "save" and model is not None and request.model_id is not None:
            await self._remember(request, incoming, model, request.model_id)
            await conv.text(self.t("notice.remembered", lang, model=model.name))
        elif request.preference == "clear":
            removed = await self.store.clear_preference(incoming.platform, incoming.user_id, None)
            await conv.text(self.t("pref.cleared" if removed else "pref.cleared_none", lang))
        else:
            await conv.text(await commands.preferences_text(self, incoming.platform, incoming.user_id, lang))

    async def _answer(
        self, question: OpenQuestion, request: Request, incoming: Incoming, conv: Conversation
    ) -> RunningJob | None:
        """A yes, a no or a model choice in reply to the bot's last question in this chat."""
        lang = request.language
        if question.expires_at < time.time():
            if question.kind == "confirm":
                await self._set_status(question.job_id, "expired")
            await conv.text(self.t("talk.question_expired", lang))
            return None
        if request.intent == "decline":
            if question.kind == "confirm":
                await self.decline(question.job_id, user_id=incoming.user_id, conversation=conv)
                return None
            await conv.text(self.t("talk.declined", lang))
            return None
        if question.kind == "confirm":
            return await self.confirm(
                question.job_id, user_id=incoming.user_id, conversation=conv, roles=incoming.roles
            )
        model_id: str | None = None
        replaced: dict[str, Any] | None = None
        if request.model_key is not None:
            # the model for the task of the job it retries (an answer to a picture job's question
            # has no picture of its own: "Vidu Q2" animates one as Vidu Q2 Pro), saved as it would
            # be anywhere; a no to the rerun's price puts the old one back
            old = await self.store.get_job(question.job_id)
            task = old.task_type if old is not None else request.task_type
            key, task_id = model_for_task(request.model_key, task)
            model_id = key
            model = self.catalog.get(key)
            # a model that cannot do that task is not saved for it: the rerun says so instead
            fits = old is not None and model is not None and model.supports(task)
            if request.preference == "save" and fits and model is not None and task_id is not None:
                asked = replace(request, task_type=task, model_key=key, model_id=task_id)
                replaced = await self._remember(asked, incoming, model, task_id)
        elif request.choice is not None and request.choice < len(question.options):
            model_id = question.options[request.choice]
        elif question.options:
            model_id = question.options[0]  # "好的" takes the suggested model
        return await self.rerun(
            question.job_id,
            user_id=incoming.user_id,
            model_id=model_id,
            conversation=conv,
            roles=incoming.roles,
            replaced=replaced,
        )

    async def _accept_video(
        self, request: Request, incoming: Incoming, conversation: Conversation, ids: list[str]
    ) -> RunningJob | None:
        """Admit a video request (pictures, prompt, limits) and start its job."""
        lang = request.language

        async def refuse(text: str) -> None:
            if await self.store.intake(incoming.platform, ids):
                await conversation.text(text)

        try:
            images = await check_images(incoming.images, self.settings.bot_max_image_bytes)
        except ImageRejected as e:
            await refuse(self.t(f"image.{e.kind}", lang, **e.values))
            return None
        prompt = self._prompt(request, incoming)
        refusal = await self._refusal(request, incoming, bool(images), prompt)
        if refusal is not None:
            await refuse(refusal)
            return None
        owner = (incoming.platform, incoming.user_id)
        if not self._reserve(owner):
            # each job spends the operator's credits: one person cannot queue up dozens at once
            await refuse(self.t("chat.too_many_jobs", lang, limit=self.settings.bot_max_jobs_per_user))
            return None
        try:
            job, change = await self._new_job(request, incoming, prompt)
            prepared = await self.orchestrator.prepare(job)  # the row is then written once, with its plan
            stored = [StoredImage(im.content_type, im.data, im.url) for im in images]
            accepted = await self.store.intake(
                incoming.platform,
                ids,
                job,
                stored,
                max_active=self._shared_limit(owner),
                preference=change,
                book=prepared.booked if prepared else None,
            )
        except TooManyJobs:  # counted across every process sharing the database
            self._release(owner)
            await refuse(self.t("chat.too_many_jobs", lang, limit=self.settings.bot_max_jobs_per_user))
            return None
        except BaseException:
            self._release(owner)
            raise
        if not accepted:
            self._release(owner)
            return None
        return self._start(
            job, conversation, lambda: self.orchestrator.run(job, conversation, images, prepared)
        )

    async def _refusal(
        self, request: Request, incoming: Incoming, has_images: bool, prompt: str
    ) -> str | None:
        """Why a video request cannot be taken, in words (nothing is spent), or None."""
        lang = request.language
        if request.wants_images > len(incoming.images):
            return self.t("talk.need_two_images" if request.wants_images > 1 else "talk.need_image", lang)
        if len(prompt) > MAX_PROMPT_CHARS:
            return self.t("talk.prompt_too_long", lang, length=len(prompt), limit=MAX_PROMPT_CHARS)
        if not has_images and not any(ch.isalnum() for ch in prompt):
            return self.t("chat.need_prompt", lang)
        if not await self.budgets.may_spend(incoming.platform, incoming.user_id, incoming.roles):
            return self.t("budget.not_allowed", lang)
        return None

    async def _new_job(
        self, request: Request, incoming: Incoming, prompt: str
    ) -> tuple[Job, PreferenceChange | None]:
        """The job row for a video request, and the change to its person's preference the
        words make (a model named is remembered, "the best" forgets it), written with the job."""
        model = self._model_of(request)
        # a few words that may not be a request at all ("sora is overrated") change no preference
        preference = None if request.unsure else request.preference
        change, replaced = await self._preference_change(request, incoming, model, preference)
        pref = None
        if model is None and preference != "clear":  # handed back: the bot's pick, not the old one
            pref = await self.store.get_preference(incoming.platform, incoming.user_id, request.task_type)
            if pref is not None and pref.model_key in request.excluded_keys:
                pref = None  # "别用可灵" this time, though Kling is their preference
        job = Job(
            id=uuid.uuid4().hex[:16],
            platform=incoming.platform,
            chat_id=incoming.chat_id,
            user_id=incoming.user_id,
            reply_to=incoming.reply_to,
            language=request.language,
            task_type=request.task_type,
            prompt=prompt,
            request=JobRequest(
                text=incoming.text,
                model_key=model.key if model else None,
                preferred_key=pref.model_key if pref else None,
                duration=request.duration,
                resolution=request.resolution,
                aspect_ratio=request.aspect_ratio,
                tier=self._tier(request, model),
                remembered=replaced is not None,
                replaced=replaced,
                excluded=list(request.excluded_keys),
                controls=request.controls(),
                unsure=request.unsure,
            ),
        )
        return job, change

    async def _preference_change(
        self, request: Request, incoming: Incoming, model: ModelInfo | None, preference: str | None
    ) -> tuple[PreferenceChange | None, dict[str, Any] | None]:
        """The change a request's words make to its person's preference ("用可灵" saves Kling,
        "the best" forgets the saved one), and, when they save another model, what it replaces
        (the job keeps it: a no to the job's price puts it back, `_put_back_preference`)."""
        task = request.task_type
        if preference == "clear":
            return PreferenceChange(task), None
        if preference != "save" or model is None or request.model_id is None or not model.supports(task):
            return None, None  # a model that cannot do the task is not saved for it
        change = PreferenceChange(task, model.key, request.model_id, model.name)
        before = await self.store.get_preference(incoming.platform, incoming.user_id, task)
        if before is not None and before.model_key == model.key:
            return change, None  # saved already: nothing to put back
        return change, _replaced(before, model.key, change.at)

    async def _put_back_preference(self, job: Job, lang: str) -> str:
        """After a no to a job whose words saved another model: the preference as it was, when
        nothing has changed it since (its updated_at is still the job's). The words that say so,
        in `lang`, or "". Never raises: the no stands whatever happens here."""
        replaced = job.request.replaced
        if not replaced:
            return ""
        try:
            now = await self.store.get_preference(job.platform, job.user_id, job.task_type)
            if now is None or now.model_key != replaced.get("set") or now.updated_at != replaced.get("at"):
                return ""  # changed again since (or forgotten): not this job's to undo
            if replaced.get("model_key"):
                await self.store.set_preference(
                    job.platform,
                    job.user_id,
                    job.task_type,
                    replaced["model_key"],
                    replaced["model_id"],
                    replaced["model_name"],
                )
                return self.t("confirm.preference_back", lang, model=replaced["model_name"])
            await self.store.clear_preference(job.platform, job.user_id, job.task_type)
            return self.t("confirm.preference_unsaved", lang, model=job.model_name or now.model_name)
        except Exception:
            log.exception("putting back the preference job %s replaced failed", job.id)
            return ""

    async def rerun(
        self,
        job_id: str,
        *,
        user_id: str,
        model_id: str | None,
        conversation: Conversation,
        same_seed: bool = False,
        roles: tuple[str, ...] = (),
        replaced: dict[str, Any] | None = None,
    ) -> RunningJob | None:
        """A button press or a "yes": the same request again, with the same or another model
        (and, with `same_seed`, the seed the earlier task ran with: the same video again).
        Works once per earlier job, across double presses, redeliveries and restarts; only for
        someone who may still spend (`roles`: their Discord roles). `replaced`: the preference
        the answer asking for it replaced (JobRequest.replaced)."""
        old = await self._spenders_job(job_id, user_id, roles, conversation)
        if old is None:
            return None
        lang = old.language
        model = (
            self._resolve_model(model_id, old.task_type)
            if model_id
            else self.catalog.get(old.model_key or "")
        )
        old_images = await self.store.job_images(old.id)
        if old.task_type != "text_to_video" and not old.image_urls and not old_images:
            await conversation.text(self.t("error.interrupted", lang))
            return None
        owner = (old.platform, user_id)
        if not self._reserve(owner):
            await conversation.text(
                self.t("chat.too_many_jobs", lang, limit=self.settings.bot_max_jobs_per_user)
            )
            return None
        try:
            controls = dict(old.request.controls)
            if same_seed and old.params.get("seed") is not None:
                controls["seed"] = old.params["seed"]
            elif not same_seed:
                controls.pop("seed", None)  # plain "again" is a new take: a new seed
            request = replace(
                old.request,
                model_key=model.key if model else None,
                preferred_key=None,
                source=None,
                tier=None,
                remembered=False,
                replaced=replaced,  # what the answer that asked for it saved, if it did
                confirmed=False,
                unsure=False,  # a press means it
                recommended_key=None,
                controls=controls,
            )
            job = Job(
                id=uuid.uuid4().hex[:16],
                platform=old.platform,
                chat_id=old.chat_id,
                user_id=user_id,
                reply_to=old.reply_to,
                language=lang,
                task_type=old.task_type,
                prompt=old.prompt,
                request=request,
                image_urls=list(old.image_urls),
                target_state=dict(old.target_state),
            )
            # the press is used in the transaction that writes its job: both or neither, so a
            # press interrupted (or refused for too many jobs) can be pressed again
            accepted = await self.store.intake(
                old.platform,
                [],
                job,
                old_images,
                max_active=self._shared_limit(owner),
                once=f"rerun:{job_id}",
            )
        except TooManyJobs:
            self._release(owner)
            await conversation.text(
                self.t("chat.too_many_jobs", lang, limit=self.settings.bot_max_jobs_per_user)
            )
            return None
        except BaseException:
            self._release(owner)
            raise
        if not accepted:
            self._release(owner)
            await conversation.text(self.t("talk.already_started", lang))
            return None
        await self.store.forget_questions_about(job_id)
        images = [] if job.image_urls else _checked(old_images)
        return self._start(job, conversation, lambda: self.orchestrator.run(job, conversation, images))

    async def confirm(
        self, job_id: str, *, user_id: str, conversation: Conversation, roles: tuple[str, ...] = ()
    ) -> RunningJob | None:
        """The requester's OK for a job over the confirm threshold: it starts now, once, if they
        may still spend (`roles`: their Discord roles)."""
        job = await self._spenders_job(job_id, user_id, roles, conversation)
        if job is None:
            return None
        # a job parked before deadlines were kept with it: its last change was the question
        answer_by = job.request.answer_by
        if answer_by is None:
            answer_by = job.updated_at + QUESTION_TTL_S
        if job.status == WAITING and answer_by < time.time():
            await self._set_status(job.id, "expired")  # a button pressed after its question expired
            await self.store.forget_questions_about(job.id)
            job.status = "expired"
        if job.status != WAITING:
            key = "talk.question_expired" if job.status == "expired" else "talk.already_started"
            await conversation.text(self.t(key, job.language))
            return None
        owner = (job.platform, user_id)
        if not self._reserve(owner):
            await conversation.text(
                self.t("chat.too_many_jobs", job.language, limit=self.settings.bot_max_jobs_per_user)
            )
            return None
        try:
            job.request.confirmed = True
            # the OK is used, and the job taken by this process (the lease) whichever process asked
            # the question, in one transaction; not when it was used before or the job has ended
            # meanwhile (a "cancel" between the look above and this write)
            if not await self.store.save_leased(
                job, once=f"confirm:{job_id}", status="accepted", request=job.request
            ):
                self._release(owner)
                await conversation.text(self.t("talk.already_started", job.language))
                return None
            await self.store.forget_questions_about(job_id)
            images = [] if job.image_urls else _checked(await self.store.job_images(job.id))
        except BaseException:
            self._release(owner)
            raise
        return self._start(job, conversation, lambda: self.orchestrator.run(job, conversation, images))

    async def decline(self, job_id: str, *, user_id: str, conversation: Conversation) -> None:
        """The requester's no for a job waiting for an OK: it ends unpaid."""
        job = await self._own_job(job_id, user_id, conversation)
        if job is None:
            return None
        if job.status != WAITING or not await self.store.use_once(f"confirm:{job_id}"):
            await conversation.text(self.t("talk.already_started", job.language))
            return None
        await self.store.forget_questions_about(job_id)
        await self.store.save_job(job, status="cancelled", finished_at=time.time())
        await self.budgets.release(job)
        put_back = await self._put_back_preference(job, job.language)
        await conversation.text("\n".join(filter(None, (self.t("confirm.declined", job.language), put_back))))
        return None

    async def cancel(
        self,
        job_id: str | None,
        *,
        platform: str,
        user_id: str,
        conversation: Conversation,
        language: str | None = None,
    ) -> None:
        """Cancel one job (a button names it) or the person's latest unfinished one, and say
        honestly what it costs: nothing before the create call, possibly a charge after."""
        if job_id is not None:
            job = await self._own_job(job_id, user_id, conversation)
            if job is None:
                return
        else:
            mine = await self.store.active_jobs(platform, user_id)
            job = mine[-1] if mine else None
            if job is None:
                await conversation.text(self.t("cancel.none", language or "en"))
                return
        lang = language or job.language
        if job.status == "delivering":
            await conversation.text(self.t("cancel.too_late", lang))
            return
        if job.status not in (*ACTIVE, WAITING):
            await conversation.text(self.t("cancel.none", lang))
            return
        running = self._jobs.get(job.id)
        if running is not None:
            running.task.cancel()
            await asyncio.gather(running.task, return_exceptions=True)
        job = await self.store.get_job(job.id) or job  # the row as the stopped job left it
        if job.status in ("delivered", "delivering"):
            await conversation.text(self.t("cancel.too_late", lang))
            return
        was = job.status
        await self.store.forget_questions_about(job.id)
        await self.store.save_job(job, status="cancelled", finished_at=time.time())
        if was in ("accepted", WAITING):
            await self.budgets.release(job)  # never sent: nothing was spent
        # cancelling a price question is a no to it, as "no" is
        put_back = await self._put_back_preference(job, lang) if was == WAITING else ""
        key = {"accepted": "cancel.queued", WAITING: "cancel.unconfirmed"}.get(was, "cancel.running")
        await conversation.text(
            "\n".join(filter(None, (self.t(key, lang, prompt=job.prompt[:40]), put_back)))
        )

    async def _spenders_job(
        self, job_id: str, user_id: str, roles: tuple[str, ...], conversation: Conversation
    ) -> Job | None:
        """`_own_job`, for someone who may still spend (an allowlist may have changed since)."""
        job = await self._own_job(job_id, user_id, conversation)
        if job is not None and not await self.budgets.may_spend(job.platform, user_id, roles):
            await conversation.text(self.t("budget.not_allowed", job.language))
            return None
        return job

    async def _own_job(self, job_id: str, user_id: str, conversation: Conversation) -> Job | None:
        job = await self.store.get_job(job_id)
        if job is None:
            await conversation.text(self.t("chat.job_not_found", "en"))
            return None
        if job.user_id != user_id:
            await conversation.text(self.t("chat.not_your_job", job.language))
            return None
        return job

    async def _set_status(self, job_id: str, status: str) -> None:
        job = await self.store.get_job(job_id)
        if job is not None and job.status == WAITING:
            await self.store.save_job(job, status=status, finished_at=time.time())

    async def usage(self, platform: str, user_id: str, chat_id: str, language: str) -> str:
        """What the person spent today and this month (for admins: per chat and person), worded."""
        return await commands.usage_text(self, platform, user_id, chat_id, language)

    async def model_choices(self, task_type: str, language: str) -> list[ModelChoice]:
        """Models offered today for a task type, with live credits (empty if the list is unreachable)."""
        try:
            products = await self.client.products(task_type)
        except ImaError:
            return []
        out = []
        for o in offers_from(self.catalog, task_type, products):
            est_min, est_max = self.orchestrator.estimate(o.model)
            out.append(
                ModelChoice(
                    o.product.model_id, o.name, task_type, o.min_points, o.max_points, est_min, est_max
                )
            )
        return out

    async def set_preference(
        self, platform: str, user_id: str, task_type: str, model_id: str, language: str
    ) -> str:
        model = self._resolve_model(model_id, task_type)
        if model is None or model.model_id(task_type) is None:
            names = ", ".join(m.name for m in self.catalog.for_task(task_type))
            return self.t("pref.unknown_model", language, model=model_id, models=names)
        await self.store.set_preference(
            platform, user_id, task_type, model.key, model.ids[task_type], model.name
        )
        return self.t("pref.saved", language, model=model.name, task=self.t(f"task.{task_type}", language))

    async def clear_preference(
        self, platform: str, user_id: str, task_type: str | None, language: str
    ) -> str:
        removed = await self.store.clear_preference(platform, user_id, task_type)
        return self.t("pref.cleared" if removed else "pref.cleared_none", language)

    async def recent_jobs(self, platform: str, user_id: str, limit: int = 10) -> list[JobSummary]:
        jobs = await self.store.recent_jobs(platform, user_id, limit)
        return [
            JobSummary(
                j.id,
                "running" if j.status in ("creating", "delivering") else j.status,
                j.model_name or "",
                j.prompt,
                j.credits,
                j.created_at,
                j.result_url,
            )
            for j in jobs
        ]

    # -- lifecycle -------------------------------------------------------------------------------
    async def resume(
        self, conversation_for: Callable[[ReplyTarget], Conversation | None]
    ) -> list[RunningJob]:
        """Pick up every unfinished job after a restart; each answers in its own chat.

        On a shared database (PostgreSQL) only the jobs no live process holds are taken (their
        leases), and from now on this process renews its leases and, every third of the lease
        time, takes over the jobs of a process that stopped renewing (killed, or cut off)."""
        self._conversation_for.append(conversation_for)
        resumed = await self._pick_up(conversation_for)
        if self.store.shared and self._leases is None:
            self._leases = asyncio.create_task(self._keep_leases(), name="leases")
        return resumed

    async def _pick_up(
        self, conversation_for: Callable[[ReplyTarget], Conversation | None]
    ) -> list[RunningJob]:
        """Claim unfinished jobs and run them here; those no conversation here can answer are handed back."""
        limit = None
        if self.store.shared:  # leave the rest to processes with free slots
            limit = self.settings.bot_max_concurrent_jobs - len(self._jobs)
            if limit <= 0:
                return []
        resumed, skipped = [], []
        for job in await self.store.claim_jobs(limit):
            if job.id in self._jobs:
                continue
            target = ReplyTarget(
                job.platform, job.chat_id, job.user_id, job.reply_to, job.language, job.target_state
            )
            conv = conversation_for(target)
            if conv is None:
                skipped.append(job.id)
                continue  # that platform is not connected in this run; leave the job for later
            self._owned[(job.platform, job.user_id)] += 1  # resumed jobs count, but are never refused
            resumed.append(self._start(job, conv, functools.partial(self.orchestrator.resume, job, conv)))
        if skipped:
            await self.store.release_leases(skipped)
        return resumed

    async def _keep_leases(self) -> None:
        """Renew this process's leases (every third of the lease time); stop the jobs another
        process took; take over expired ones (looked for every tenth, a cheap indexed query, so
        a dead process's jobs move on soon after its leases run out)."""
        lease = self.settings.bot_lease_s
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(lease / 10)
            try:
                if time.monotonic() - renewed >= lease / 3:
                    renewed = time.monotonic()
                    for job_id in await self.store.renew_leases(list(self._jobs)):
                        running = self._jobs.get(job_id)
                        if running is not None:
                            log.warning("job %s is run by another process now; stopping it here", job_id)
                            running.task.cancel()

                def conversation_for(target: ReplyTarget) -> Conversation | None:
                    return next((c for f in self._conversation_for if (c := f(target)) is not None), None)

                taken = await self._pick_up(conversation_for)
                if taken:
                    log.info("took over %d job(s) of a process that stopped", len(taken))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("renewing leases failed; trying again")

    async def wait_idle(self) -> None:
        """Wait until every running job has ended."""
        while self._jobs:
            await asyncio.gather(*(j.task for j in list(self._jobs.values())), return_exceptions=True)

    async def cancel_all(self) -> None:
        """Stop watching jobs (at shutdown); their rows stay as they are, to be resumed — on a
        shared database by another process at once: this one hands its leases back."""
        if self._leases is not None:
            self._leases.cancel()
            await asyncio.gather(self._leases, return_exceptions=True)
            self._leases = None
        for j in list(self._jobs.values()):
            j.task.cancel()
        await asyncio.gather(*(j.task for j in list(self._jobs.values())), return_exceptions=True)
        if self.store.shared:
            with contextlib.suppress(Exception):  # a database already gone: the leases expire instead
                await self.store.release_leases()

    # -- internals ---------------------------------------------------------------------------------
    def _start(self, job: Job, conversation: Conversation, work: Callable[[], Awaitable[str]]) -> RunningJob:
        async def guarded() -> str:
            if self._slots.locked():
                # more jobs than BOT_MAX_CONCURRENT_JOBS: say so rather than stay silent
                with contextlib.suppress(Exception):  # a hiccup here must not lose the job
                    await conversation.text(self.t("progress.queued", job.language, ahead=self._queued + 1))
            self._queued += 1
            try:
                await self._slots.acquire()
            finally:
                self._queued -= 1
            try:
                return await work()
            finally:
                self._slots.release()

        task = asyncio.create_task(guarded(), name=f"job-{job.id}")
        owner = (job.platform, job.user_id)
        running = RunningJob(job.id, task, owner)
        self._jobs[job.id] = running

        def done(_t: asyncio.Task[str]) -> None:
            self._jobs.pop(job.id, None)
            self._release(owner)

        task.add_done_callback(done)
        return running

    def _reserve(self, owner: tuple[str, str]) -> bool:
        """Take one of the person's job places, before any await, so a burst of messages
        cannot get past the limit; False when they are all taken. `_start` gives it back.
        Admins are never limited."""
        if self._owned[owner] >= self.settings.bot_max_jobs_per_user and not self.budgets.is_admin(*owner):
            return False
        self._owned[owner] += 1
        return True

    def _shared_limit(self, owner: tuple[str, str]) -> int | None:
        """The per-person limit to check in the database too, when other processes share it."""
        if not self.store.shared or self.budgets.is_admin(*owner):
            return None
        return self.settings.bot_max_jobs_per_user

    def _release(self, owner: tuple[str, str]) -> None:
        self._owned[owner] -= 1
        if self._owned[owner] <= 0:
            del self._owned[owner]

    async def _understand(self, incoming: Incoming) -> Request:
        if len(incoming.text) > _PARSE_ON_LOOP_CHARS:
            # parsing is linear, but a few thousand characters still take tens of milliseconds:
            # a worker thread keeps the loop (every other chat's progress) responsive meanwhile
            request = await asyncio.to_thread(parse, incoming.text, len(incoming.images))
        else:
            request = parse(incoming.text, images=len(incoming.images))
        if incoming.video_command:
            request = _as_video_command(request, incoming)
        elif incoming.ask_first and request.intent == "video":
            request = replace(request, unsure=True)
        if not incoming.text.strip() and incoming.language:
            request = replace(request, language=i18n.normalize_language(incoming.language))
        elif request.traditional and request.language == "zh":
            request = replace(request, language="zh-Hant")  # answer in the script they wrote
        # a structured option wins over the words; False is a choice too ("sound: off")
        changes: dict[str, object] = {
            k: incoming.overrides[k]
            for k in _OVERRIDES
            if incoming.overrides.get(k) is not None and incoming.overrides.get(k) != ""
        }
        if "task_type" in changes and changes["task_type"] not in TASK_TYPES:
            changes.pop("task_type")
        if "model_id" in changes:
            task = str(changes.get("task_type", request.task_type))
            model = self._resolve_model(str(changes["model_id"]), task)
            changes["model_key"] = model.key if model else None
            changes["model_id"] = model.model_id(task) if model else None
            if model is None:  # a model the bot does not offer: said so, never another one run
                changes["unknown_model"] = str(incoming.overrides["model_id"])
        return replace(request, **changes) if changes else request  # type: ignore[arg-type]

    def _prompt(self, request: Request, incoming: Incoming) -> str:
        """What the model is asked for. When the parser took every word away ("把这张图动起来"
        is all instruction), the whole message still says it best; a bare picture gets the
        catalog's default prompt for its task type."""
        if request.prompt or not incoming.images:
            return request.prompt or ""
        return incoming.text.strip() or self.catalog.default_prompts.get(request.task_type, "")

    def _model_of(self, request: Request) -> ModelInfo | None:
        if request.model_key:
            return self.catalog.get(request.model_key)
        if request.model_id:
            return self.catalog.by_id(request.model_id, request.task_type)
        return None

    def _resolve_model(self, name_or_id: str, task_type: str) -> ModelInfo | None:
        """A model from a catalog key, a model_id or a display name (buttons and /prefer send
        these), else a name people use for it ("kling", "可灵": Discord's option takes free text)."""
        found = (
            self.catalog.get(name_or_id)
            or self.catalog.by_id(name_or_id, task_type)
            or self.catalog.by_id(name_or_id)
            or self.catalog.by_name(name_or_id)
        )
        if found is None:
            key = load_lexicon().model_keys.get(canonical(fold(name_or_id.strip())))
            found = self.catalog.get(key) if key else None
        return found

    def _tier(self, request: Request, model: ModelInfo | None) -> str | None:
        """ "budget" or "premium" when the message asked for the cheapest or the best rather
        than naming a model (the parser then names the tier's model without saving it)."""
        if model is None or request.preference == "save":
            return None
        if model.key == self.catalog.budget.get(request.task_type):
            return "budget"
        if model.key == self.catalog.premium.get(request.task_type):
            return "premium"
        return None
