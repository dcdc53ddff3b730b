"""The core adapters talk to: understands a message, keeps preferences, runs and resumes jobs.

It implements `adapters.base.Core`; it never imports a platform SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from adapters.base import (
    Conversation,
    Incoming,
    JobSummary,
    ModelChoice,
    ReplyTarget,
)
from bot import i18n
from bot.catalog import Catalog, ModelInfo
from bot.config import Settings
from bot.ima import ImaClient
from bot.ima.errors import ImaError
from bot.ima.types import TASK_TYPES
from bot.images import ImageRejected, check_images, with_linked_images
from bot.orchestrator import Orchestrator
from bot.selection import offers_from
from bot.store import Job, Store
from bot.understand import Request, parse

log = logging.getLogger(__name__)

_OVERRIDES = ("model_id", "duration", "resolution", "aspect_ratio", "task_type")


@dataclass
class RunningJob:
    """A job the core accepted; `wait()` returns its final status."""

    job_id: str
    task: asyncio.Task[str]
    owner: tuple[str, str] = ("", "")  # (platform, user_id)

    async def wait(self) -> str:
        return await asyncio.shield(self.task)


class BotCore:
    """Platform-neutral bot. Build with `bot.app.open_core(settings)`."""

    def __init__(self, *, settings: Settings, client: ImaClient, store: Store, catalog: Catalog) -> None:
        self.settings = settings
        self.client = client
        self.store = store
        self.catalog = catalog
        self.orchestrator = Orchestrator(client=client, store=store, catalog=catalog, settings=settings)
        self._jobs: dict[str, RunningJob] = {}
        self._slots = asyncio.Semaphore(settings.bot_max_concurrent_jobs)
        self._queued = 0  # jobs waiting for a slot
        # load the phrase tables and message catalogs now, not on the first message's turn of the loop
        parse("")
        for language in i18n.LANGUAGES:
            i18n.catalog(language)

    # -- Core protocol ---------------------------------------------------------------------------
    def t(self, key: str, language: str, **values: object) -> str:
        return i18n.t(key, language, **values)

    async def handle(self, incoming: Incoming, conversation: Conversation) -> RunningJob | None:
        """Understand one message and act on it (see adapters.base.Core.handle)."""
        if await self._seen_before(incoming):
            log.info("duplicate event %s/%s ignored", incoming.platform, incoming.event_id)
            return None
        incoming = with_linked_images(incoming)
        request = self._understand(incoming)
        lang = request.language
        try:
            images = await check_images(incoming.images, self.settings.bot_max_image_bytes)
        except ImageRejected as e:
            await conversation.text(self.t(f"image.{e.kind}", lang, **e.values))
            return None
        model = self._model_of(request)
        if request.preference == "clear":
            await self.store.clear_preference(incoming.platform, incoming.user_id, request.task_type)
            if not request.prompt and not images:
                await conversation.text(self.t("pref.cleared", lang))
                return None
        remembered = False
        if request.preference == "save" and model is not None and request.model_id is not None:
            before = await self.store.get_preference(incoming.platform, incoming.user_id, request.task_type)
            remembered = before is None or before.model_key != model.key
            await self.store.set_preference(incoming.platform, incoming.user_id, request.task_type,
                                            model.key, request.model_id, model.name)
            if not request.prompt and not images:
                await conversation.text(self.t("notice.remembered", lang, model=model.name))
                return None
        if not images and not any(ch.isalnum() for ch in request.prompt or ""):
            # nothing to make a video of ("生成一段视频", "🙂"): ask instead of spending credits
            await conversation.text(self.t("chat.need_prompt", lang))
            return None
        if self._busy(incoming.platform, incoming.user_id):
            # each job spends the operator's credits: one person cannot queue up dozens at once
            await conversation.text(self.t("chat.too_many_jobs", lang, limit=self.settings.bot_max_jobs_per_user))
            return None
        pref = None
        if model is None:
            pref = await self.store.get_preference(incoming.platform, incoming.user_id, request.task_type)
        job = Job(
            id=uuid.uuid4().hex[:16], platform=incoming.platform, chat_id=incoming.chat_id,
            user_id=incoming.user_id, reply_to=incoming.reply_to, language=lang, task_type=request.task_type,
            prompt=self._prompt(request, incoming),
            request={
                "text": incoming.text, "model_key": model.key if model else None,
                "preferred_key": pref.model_key if pref else None, "duration": request.duration,
                "resolution": request.resolution, "aspect_ratio": request.aspect_ratio,
                "tier": self._tier(request, model), "remembered": remembered,
            },
        )
        await self.store.add_job(job)
        return self._start(job, conversation, lambda: self.orchestrator.run(job, conversation, images))

    async def rerun(
        self, job_id: str, *, user_id: str, model_id: str | None, conversation: Conversation
    ) -> RunningJob | None:
        """A button press: the same request again, with the same or another model."""
        old = await self.store.get_job(job_id)
        lang = old.language if old else "en"
        if old is None:
            await conversation.text(self.t("chat.job_not_found", lang))
            return None
        if old.user_id != user_id:
            await conversation.text(self.t("chat.not_your_job", lang))
            return None
        model = self._resolve_model(model_id, old.task_type) if model_id else self.catalog.get(old.model_key or "")
        request = dict(old.request)
        request.update(model_key=model.key if model else None, preferred_key=None, source=None, tier=None,
                       remembered=False)
        job = Job(
            id=uuid.uuid4().hex[:16], platform=old.platform, chat_id=old.chat_id, user_id=user_id,
            reply_to=old.reply_to, language=lang, task_type=old.task_type, prompt=old.prompt, request=request,
            image_urls=list(old.image_urls), target_state=dict(old.target_state),
        )
        if job.task_type != "text_to_video" and not job.image_urls:
            await conversation.text(self.t("error.interrupted", lang))
            return None
        if self._busy(old.platform, user_id):
            await conversation.text(self.t("chat.too_many_jobs", lang, limit=self.settings.bot_max_jobs_per_user))
            return None
        await self.store.add_job(job)
        return self._start(job, conversation, lambda: self.orchestrator.run(job, conversation, []))

    async def model_choices(self, task_type: str, language: str) -> list[ModelChoice]:
        """Models offered today for a task type, with live credits (empty if the list is unreachable)."""
        try:
            products = await self.client.products(task_type)
        except ImaError:
            return []
        out = []
        for o in offers_from(self.catalog, task_type, products):
            est_min, est_max = self.orchestrator.estimate(o.model)
            out.append(ModelChoice(o.product.model_id, o.name, task_type, o.min_points, o.max_points, est_min, est_max))
        return out

    async def set_preference(self, platform: str, user_id: str, task_type: str, model_id: str, language: str) -> str:
        model = self._resolve_model(model_id, task_type)
        if model is None or model.model_id(task_type) is None:
            names = ", ".join(m.name for m in self.catalog.for_task(task_type))
            return self.t("pref.unknown_model", language, model=model_id, models=names)
        await self.store.set_preference(platform, user_id, task_type, model.key, model.ids[task_type], model.name)
        return self.t("pref.saved", language, model=model.name, task=self.t(f"task.{task_type}", language))

    async def clear_preference(self, platform: str, user_id: str, task_type: str | None, language: str) -> str:
        removed = await self.store.clear_preference(platform, user_id, task_type)
        return self.t("pref.cleared" if removed else "pref.cleared_none", language)

    async def recent_jobs(self, platform: str, user_id: str, limit: int = 10) -> list[JobSummary]:
        jobs = await self.store.recent_jobs(platform, user_id, limit)
        return [
            JobSummary(j.id, "running" if j.status in ("creating", "delivering") else j.status,
                       j.model_name or "", j.prompt, j.credits, j.created_at, j.result_url)
            for j in jobs
        ]

    # -- lifecycle -------------------------------------------------------------------------------
    async def resume(self, conversation_for: Callable[[ReplyTarget], Conversation | None]) -> list[RunningJob]:
        """Pick up every unfinished job after a restart; each answers in its own chat."""
        resumed = []
        for job in await self.store.unfinished_jobs():
            if job.id in self._jobs:
                continue
            target = ReplyTarget(job.platform, job.chat_id, job.user_id, job.reply_to, job.language, job.target_state)
            conv = conversation_for(target)
            if conv is None:
                continue  # that platform is not connected in this run; leave the job for later
            resumed.append(self._start(job, conv, functools.partial(self.orchestrator.resume, job, conv)))
        return resumed

    async def wait_idle(self) -> None:
        """Wait until every running job has ended."""
        while self._jobs:
            await asyncio.gather(*(j.task for j in list(self._jobs.values())), return_exceptions=True)

    async def cancel_all(self) -> None:
        """Stop watching jobs (at shutdown); their rows stay as they are, to be resumed."""
        for j in list(self._jobs.values()):
            j.task.cancel()
        await asyncio.gather(*(j.task for j in list(self._jobs.values())), return_exceptions=True)

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
        running = RunningJob(job.id, task, (job.platform, job.user_id))
        self._jobs[job.id] = running
        task.add_done_callback(lambda _t: self._jobs.pop(job.id, None))
        return running

    async def _seen_before(self, incoming: Incoming) -> bool:
        """Mark every event id of the request; any one already seen makes it a redelivery."""
        ids = [i for i in (incoming.event_id, *incoming.extra_event_ids) if i]
        fresh = [await self.store.mark_seen(incoming.platform, i) for i in ids]
        return not all(fresh)

    def _busy(self, platform: str, user_id: str) -> bool:
        """True when this user already has as many jobs running as one person may."""
        mine = sum(1 for j in self._jobs.values() if j.owner == (platform, user_id))
        return mine >= self.settings.bot_max_jobs_per_user

    def _understand(self, incoming: Incoming) -> Request:
        request = parse(incoming.text, images=len(incoming.images))
        if not incoming.text.strip() and incoming.language:
            request = replace(request, language=i18n.normalize_language(incoming.language))
        changes: dict[str, object] = {k: incoming.overrides[k] for k in _OVERRIDES if incoming.overrides.get(k)}
        if "task_type" in changes and changes["task_type"] not in TASK_TYPES:
            changes.pop("task_type")
        if "model_id" in changes:
            task = str(changes.get("task_type", request.task_type))
            model = self._resolve_model(str(changes["model_id"]), task)
            changes["model_key"] = model.key if model else None
            changes["model_id"] = model.model_id(task) if model else None
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
        """A model from a catalog key, a model_id or a display name (buttons and /prefer send these)."""
        return (
            self.catalog.get(name_or_id)
            or self.catalog.by_id(name_or_id, task_type)
            or self.catalog.by_id(name_or_id)
            or self.catalog.by_name(name_or_id)
        )

    def _tier(self, request: Request, model: ModelInfo | None) -> str | None:
        """"budget" or "premium" when the message asked for the cheapest or the best rather
        than naming a model (the parser then names the tier's model without saving it)."""
        if model is None or request.preference == "save":
            return None
        if model.key == self.catalog.budget.get(request.task_type):
            return "budget"
        if model.key == self.catalog.premium.get(request.task_type):
            return "premium"
        return None

