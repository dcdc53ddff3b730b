"""One job, start to finish: notice → create → progress → deliver | fail, with recovery.

The job row is saved before each step that costs or delivers, so `resume()` can pick a job
up after a restart: poll it if it was created, never re-create it if the create call may have
gone through, deliver it if it finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot import polling, views
from bot.alongside import alongside
from bot.backoff import backoff
from bot.budget import Budgets
from bot.catalog import Catalog, ModelInfo
from bot.chat import Conversation
from bot.config import Settings
from bot.first_answers import FirstAnswers
from bot.fitting import degrade, sound_field
from bot.i18n import t
from bot.ima import ImaClient
from bot.ima.credit import complete_from_rules, match_rule, other_rule, pixverse_model
from bot.ima.errors import (
    AttributeMismatch,
    BadParameter,
    CreateUncertain,
    CreditMismatch,
    ImaError,
    NetworkError,
    NoRuleMatch,
    RateLimited,
    ServerError,
    TaskFailed,
    Timeout,
    Transient,
    policy,
)
from bot.ima.types import CreditRule, Product, TaskResult, TaskSpec
from bot.ima.values import same
from bot.images import CheckedImage
from bot.planning import (
    JobFailed,
    Plan,
    PlanMemo,
    beyond_the_yes,
    needs_confirm,
    over_the_limit,
    plan,
    rule_for,
    without_excluded,
)
from bot.polling import RenderHistory
from bot.selection import Offer, alternatives, cheapest, find, offers_from
from bot.store import WAITING, Job, LeaseLost, OpenQuestion, Store

log = logging.getLogger(__name__)

#: credits above which an auto-picked model's notice names a cheaper one (the reference's rule)
PREMIUM_POINTS = 50
#: how long a question to the user (confirm N credits? retry with X?) can be answered
QUESTION_TTL_S = 600.0
#: a create that may have gone through: no retry button and no other model to press, since
#: either could pay a second time for a video that may still be made
_UNCERTAIN = "create_uncertain"
#: polling errors that are worth waiting out: the Transient group
_MAX_POLL_ERRORS = 15
#: what a job's run returns in a process that lost its lease: another process carries it on
HANDED_OVER = "handed_over"


async def _tell(sending: Awaitable[None], job: Job) -> None:
    """Send an update that the job does not depend on. A platform hiccup (a refused card patch,
    a reconnecting gateway) must not fail a task that is generating and already paid for."""
    try:
        await sending
    except asyncio.CancelledError:
        raise
    except Exception:
        log.warning("an update for job %s could not be shown", job.id, exc_info=True)


def _reason_key(kind: str, attempts: int) -> str:
    """The locale key that explains a failure. Its words must match what happened: "retried
    automatically" only after a retry, "may still be made" for an uncertain create."""
    if kind == _UNCERTAIN:
        return "create.uncertain"
    if kind == "server_error" and attempts <= 1:
        return "create.server_error_once"
    return f"error.{kind}"


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value)) if value is not None else None
    except ValueError:
        return None


def _asked(job: Job, product: Product) -> frozenset[str]:
    """The parameters (lower case) the user asked for themselves, as `product` spells them."""
    req = job.request
    names = {n for n in ("duration", "resolution", "aspect_ratio") if getattr(req, n) is not None}
    for name in req.controls:
        names.add((sound_field(product) or name) if name == "sound" else name)
    return frozenset(n.lower() for n in names)


def _completed(
    e: ImaError, job: Job, product: Product, params: dict[str, Any]
) -> tuple[dict[str, Any], CreditRule]:
    """After 6009: `params` completed from the credit rules, keeping what the user asked for;
    `e` again when only changing that would do (the user is told in plain words instead)."""
    asked = _asked(job, product)
    completed = complete_from_rules(product, params, asked)
    if _changed(params, completed) & asked:
        raise e
    return completed, match_rule(product, completed)


def _changed(before: dict[str, Any], after: dict[str, Any]) -> frozenset[str]:
    """The parameters (lower case) whose value differs between two parameter sets."""
    old = {str(k).lower(): v for k, v in before.items()}
    return frozenset(str(k).lower() for k, v in after.items() if not same(old.get(str(k).lower()), v))


def _other_settings(lang: str, params: dict[str, Any], changed: frozenset[str], attempt: int) -> str:
    """The line saying another credit rule is tried: its duration / resolution / ratio when
    those changed (other parameters mean nothing to most people)."""
    shown = [
        _shown(str(k), v)
        for k, v in params.items()
        if str(k).lower() in changed and str(k).lower() in ("duration", "resolution", "aspect_ratio")
    ]
    if not shown:
        return t("progress.retrying", lang, attempt=attempt)
    return t("progress.other_settings", lang, what=", ".join(shown), attempt=attempt)


def _shown(name: str, value: Any) -> str:
    """A parameter's value as a message shows it: "5s" for a duration, else as it is."""
    return f"{value}s" if name.lower() == "duration" else str(value)


def _same_items(a: list[Product], b: list[Product]) -> bool:
    """The very same products (a copy of the cached list, not a refreshed one)."""
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def _kind_of(e: ImaError) -> str:
    """The failure kind to explain; a task that failed without a reason gets the reference's
    gentler "didn't work this time" wording."""
    if isinstance(e, TaskFailed) and not e.detail:
        return "status_failed"
    return e.kind


@dataclass
class _Attempt:
    """What the next create sends, and what the failed ones taught."""

    product: Product
    params: dict[str, Any]
    rule: CreditRule
    tried_rules: set[int] = field(default_factory=set)
    server_errors: int = 0  # IMA 500s in a row at the current settings
    shown_points: int = 0  # the price the notice said: no attempt may cost more


@dataclass(frozen=True)
class Prepared:
    """A new job planned before its row was first written (the row holds the plan already)."""

    products: list[Product]  # the product list it was planned against
    offers: list[Offer]
    plan: Plan
    #: the credits reserved with the row (the job starts without a question and no budget
    #: limit could refuse them); None: reserved as the job runs
    booked: int | None = None


@dataclass
class _Context:
    """What a failing job knows so far, for choosing its alternatives."""

    offers: list[Offer] = field(default_factory=list)
    plan: Plan | None = None


class Orchestrator:
    """Runs jobs. Stateless between jobs: everything durable is in the store."""

    def __init__(
        self,
        *,
        client: ImaClient,
        store: Store,
        catalog: Catalog,
        settings: Settings,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.store = store
        self.catalog = catalog
        self.settings = settings
        self.budgets = Budgets(store, settings)
        #: answers people wait for go before the calls that spend (bot.first_answers)
        self.answers = FirstAnswers()
        #: per task type: the product list last joined to the catalog, the offers it made, and
        #: the plans made from them (bot.planning.PlanMemo)
        self._joined: dict[str, tuple[list[Product], list[Offer], PlanMemo]] = {}
        #: how long tasks took, per kind: when to poll (bot.polling); False: the fixed timer
        self.render_history = RenderHistory()
        self.learn_polls = True
        self.scale = settings.time_scale
        self._sleep = sleep
        self._clock = clock

    # -- timing, scaled with the sandbox so a fast run shows the same conversation --------------
    def estimate(self, model: ModelInfo) -> tuple[int, int]:
        """The model's estimated seconds (min, max), scaled like the sandbox's times."""
        return max(1, round(model.est_min * self.scale)), max(1, round(model.est_max * self.scale))

    def _every(self, model: ModelInfo) -> float:
        return max(0.05, model.progress_every * self.scale)

    # -- entry points --------------------------------------------------------------------------
    async def prepare(self, job: Job) -> Prepared | None:
        """Plan a new job before its row is first written, so the row is written once, whole,
        with its credits reserved when nothing can refuse them (in a burst, two writes fewer
        before each notice). Only from a product list at hand: None when it would have to be
        fetched or the job cannot be planned, and the job then plans, retries and explains as
        it runs."""
        products = self.client.products_at_hand(job.task_type)
        if products is None:
            return None
        offers = without_excluded(job, self._joined_offers(job.task_type, products))
        try:
            chosen = self._plan(job, offers)
        except Exception:  # the job plans again as it runs, where any failure is explained
            return None
        for name, value in self._planned(job, chosen).items():
            setattr(job, name, value)
        asks = needs_confirm(job, chosen, self.settings.bot_confirm_above_credits)
        booked = None if asks or await self.budgets.may_refuse(job) else chosen.rule.points
        return Prepared(products, offers, chosen, booked)

    def _still_current(self, prepared: Prepared, task_type: str) -> bool:
        """Whether the product list a job was planned against is still the one in use."""
        products = self.client.products_at_hand(task_type)
        return products is not None and _same_items(prepared.products, products)

    async def run(
        self, job: Job, conv: Conversation, images: list[CheckedImage], prepared: Prepared | None = None
    ) -> str:
        """Run a new job to its end; returns its final status. Never raises for user errors.
        `prepared`: the plan its row was written with (`prepare`)."""
        ctx = _Context()

        async def steps() -> str:
            with self.answers.owing():  # the notice is owed until it is sent
                saved = prepared is not None and self._still_current(prepared, job.task_type)
                if prepared is not None and saved:
                    ctx.offers, ctx.plan = prepared.offers, prepared.plan
                else:  # not planned yet, or the product list changed while it waited for a slot
                    ctx.offers = without_excluded(job, await self._offers(job.task_type))
                    ctx.plan = self._plan(job, ctx.offers)
                if needs_confirm(job, ctx.plan, self.settings.bot_confirm_above_credits):
                    if prepared is None or prepared.booked is not None:
                        # booked earlier (at intake, or before a restart): a job waiting for a
                        # yes holds nothing; the yes reserves again (ON CONFLICT → 'reserved')
                        await self.budgets.release(job)
                    await self._announce(job, conv, ctx.plan, ctx.offers, confirm=True)
                    return WAITING
                if beyond_the_yes(job, ctx.plan):
                    raise JobFailed(
                        "price_rose", model=ctx.plan.offer.name, was=job.credits, now=ctx.plan.rule.points
                    )
                if await self.budgets.may_refuse(job):
                    # a refusal must come instead of the notice, not after it
                    await self._within_budget(job, ctx.plan)
                    await self._announce(job, conv, ctx.plan, ctx.offers, saved=saved)
                elif saved and prepared is not None and prepared.booked is not None:
                    # nothing can refuse, and the credits were reserved with the row
                    await self._announce(job, conv, ctx.plan, ctx.offers, saved=saved)
                else:  # nothing can refuse: the credits are booked while the notice goes out
                    await alongside(
                        self._within_budget(job, ctx.plan),
                        self._announce(job, conv, ctx.plan, ctx.offers, saved=saved),
                    )
            await self.answers.turn()
            await self._upload(job, images)
            task_id = await self._create(job, conv, ctx.plan)
            result = await self._poll(job, conv, task_id)
            await self._deliver(job, conv, result, ctx.offers)
            return "delivered"

        return await self._in_plain_words(job, conv, ctx, steps)

    async def resume(self, job: Job, conv: Conversation) -> str:
        """Continue a job found unfinished at start-up."""
        if job.status == "accepted":
            # no create of it ever went on the wire ("creating" is saved at that moment): run it
            # as a queued job, with the pictures kept since intake when they were not uploaded yet
            images = [] if job.image_urls else await self._kept_images(job)
            if job.task_type == "text_to_video" or job.image_urls or images:
                return await self.run(job, conv, images)

        async def steps() -> str:
            if job.status == "accepted":
                raise JobFailed("interrupted")  # accepted before pictures were kept with their job
            if job.status == "creating":
                # the create request left this machine: re-sending could charge twice
                raise JobFailed("create_uncertain")
            if job.status == "running":
                await _tell(conv.text(t("progress.resumed", job.language)), job)
                result = await self._poll(job, conv, job.task_ids[-1])
            elif job.status == "delivering" and job.result_url:
                result = TaskResult(
                    job.task_ids[-1] if job.task_ids else "", "done", job.result_url, job.cover_url
                )
            else:
                raise JobFailed("unknown")
            await self._deliver(job, conv, result, [])
            return "delivered"

        return await self._in_plain_words(job, conv, _Context(), steps)

    async def _kept_images(self, job: Job) -> list[CheckedImage]:
        """The pictures stored with a job at intake, as the checked images `run` takes."""
        return [CheckedImage(i.data, i.content_type, i.url) for i in await self.store.job_images(job.id)]

    async def _in_plain_words(
        self, job: Job, conv: Conversation, ctx: _Context, steps: Callable[[], Awaitable[str]]
    ) -> str:
        """Run `steps`; whatever goes wrong ends as a translated failure with alternatives."""
        try:
            return await steps()
        except LeaseLost:
            log.warning("job %s is another process's now; leaving it to it", job.id)
            return HANDED_OVER
        except JobFailed as e:
            failure = e
        except ImaError as e:
            failure = JobFailed(_kind_of(e))
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must still end in a message, not silence
            log.exception("job %s crashed", job.id)
            failure = JobFailed("unknown")
        return await self._fail(job, conv, failure, ctx.offers, ctx.plan)

    # -- steps ---------------------------------------------------------------------------------
    async def _offers(self, task_type: str) -> list[Offer]:
        """Today's offers for a task type; a busy or flaky product list is asked again, up to
        ima_max_retries times (0: asked once)."""
        retries = 0
        while True:
            try:
                products = await self.client.products(task_type)
            except (RateLimited, ServerError, NetworkError, Timeout):
                if retries >= self.settings.ima_max_retries:
                    raise
                retries += 1
                await self._sleep(self._backoff(retries))
                continue
            return self._joined_offers(task_type, products)

    def _joined_offers(self, task_type: str, products: list[Product]) -> list[Offer]:
        """The offers of a product list: joined to the catalog once per list (every message
        asks; the list changes at a refresh)."""
        known = self._joined.get(task_type)
        if known is None or not _same_items(known[0], products):
            offers = offers_from(self.catalog, task_type, products)
            known = self._joined[task_type] = (products, offers, PlanMemo())
        return list(known[1])

    def _plan(self, job: Job, offers: list[Offer]) -> Plan:
        """`plan` for offers `_joined_offers` has just made (no await between): the plans
        made from the same product list are reused by requests of the same shape."""
        known = self._joined.get(job.task_type)
        if known is None:  # pragma: no cover - _joined_offers always came first
            return plan(self.catalog, job, offers)
        return known[2].plan(self.catalog, job, offers)

    async def _within_budget(self, job: Job, plan: Plan) -> None:
        """Reserve the job's credits from the daily budgets, or end it before anything is sent."""
        refusal = await self.budgets.reserve(job, plan.rule.points)
        if refusal is not None:
            raise JobFailed(
                "over_budget",
                left=refusal.left,
                limit=refusal.limit,
                resets=refusal.resets,
                scope=t(f"budget.scope_{refusal.scope}", job.language),
                credits=plan.rule.points,
            )

    def _planned(self, job: Job, plan: Plan) -> dict[str, Any]:
        """The job's fields that record its plan."""
        est_min, est_max = self.estimate(plan.offer.model)
        return {
            "model_key": plan.offer.model.key,
            "model_id": plan.offer.product.model_id,
            "model_name": plan.offer.name,
            "model_version": plan.offer.product.id,
            "params": plan.params,
            "credits": plan.rule.points,
            "est_min": est_min,
            "est_max": est_max,
            "request": job.request,
        }

    def _over_the_limit(self, plan: Plan) -> int | None:
        """BOT_CONFIRM_ABOVE_CREDITS when the plan costs more than it, else None."""
        limit = self.settings.bot_confirm_above_credits
        return limit if over_the_limit(plan, limit) else None

    async def _announce(
        self,
        job: Job,
        conv: Conversation,
        plan: Plan,
        offers: list[Offer],
        *,
        confirm: bool = False,
        saved: bool = False,
    ) -> None:
        """The pre-generation notice; with `confirm`, the job is priced and parked until the
        requester says yes (a stored question that survives restarts and expires unpaid).
        `saved`: the row holds the plan already (`prepare`)."""
        model = plan.offer.model
        est_min, est_max = self.estimate(model)
        lang = job.language
        extra: list[str] = []
        credits = plan.rule.points
        if plan.source == "preference":
            extra.append(t("notice.preference", lang, model=plan.offer.name))
        if job.request.remembered:
            extra.append(t("notice.remembered", lang, model=plan.offer.name))
        tier = job.request.tier
        if tier == "budget":
            extra.append(t("notice.budget_named", lang, model=plan.offer.name, credits=credits))
        elif tier == "premium":
            # asked for the best: say it is the premium choice, no cheaper nudge
            extra.append(t("notice.premium_named", lang, model=plan.offer.name, credits=credits))
        elif credits > PREMIUM_POINTS:
            # over 50 credits and not asked for the best: name a cheaper way to get a video
            cheaper = cheapest(offers, exclude=plan.offer.key)
            if cheaper is not None and cheaper.min_points < credits:
                extra.append(t("notice.cheaper", lang, model=cheaper.name, credits=cheaper.min_points))
        view = views.notice(
            job.id,
            lang,
            model_name=plan.offer.name,
            credits=credits,
            est_min=est_min,
            est_max=est_max,
            adjustments=plan.adjustments,
            extra_lines=extra,
            controls=plan.controls,
            confirm_above=self._over_the_limit(plan) if confirm else None,
            unsure=confirm and job.request.unsure,
        )
        if confirm:
            # the question is stored before it is asked: a quick "yes" must find it; the job
            # keeps its deadline too, so a Confirm pressed after it finds the question expired
            now = self._clock()
            job.request.answer_by = now + QUESTION_TTL_S
            await self.store.save_job(job, **self._planned(job, plan), status=WAITING)
            await self.store.ask(
                OpenQuestion(
                    job.platform, job.chat_id, job.user_id, "confirm", job.id, (), now, job.request.answer_by
                )
            )
            await _tell(conv.notice(view), job)
        elif saved:
            await _tell(conv.notice(view), job)
        else:
            # nothing is paid yet: the notice goes out while the row is saved
            await alongside(
                self.store.save_job(job, **self._planned(job, plan)), _tell(conv.notice(view), job)
            )
        await self._remember_target(job, conv)

    async def _remember_target(self, job: Job, conv: Conversation) -> None:
        """Keep the adapter's handle on this job's message (a card id, a message id) so a
        resumed job edits the same message instead of posting a new one."""
        state = getattr(conv, "target_state", None)
        if isinstance(state, dict) and state != job.target_state:
            await self.store.save_job(job, target_state={str(k): str(v) for k, v in state.items()})

    async def _upload(self, job: Job, images: list[CheckedImage]) -> None:
        if not images or job.image_urls:
            return
        urls: list[str] = []
        for img in images:
            if img.url is not None:
                urls.append(img.url)
            else:
                assert img.data is not None
                urls.append(await self.client.upload_image(img.data, img.content_type))
        await self.store.save_job(job, image_urls=urls)
        # the URLs are what a restart needs from now on; the bytes kept since intake can go
        await self.store.drop_job_images(job.id)

    async def _create(self, job: Job, conv: Conversation, plan: Plan) -> str:
        """Create the task, recovering from what can be recovered (up to ima_max_retries).

        The row says "creating" only from the moment a request is on the wire; while it waits
        for a connection it stays "accepted", so a restart runs it again rather than fearing a
        charge that cannot have happened. An uncertain create ends the job as "uncertain":
        never sent again, not by a retry, a button or a restart."""
        state = _Attempt(plan.offer.product, dict(plan.params), plan.rule, shown_points=plan.rule.points)
        attempt = 0
        while True:
            spec = TaskSpec(
                job.task_type, state.product, state.rule, job.prompt, state.params, tuple(job.image_urls)
            )
            sending = functools.partial(self._sending, job, dict(state.params), state.rule.points)
            try:
                task_id = await self.client.create(spec, on_sending=sending)
            except CreateUncertain:
                raise  # the row stays "creating" until the user is told: a restart tells them too
            except ImaError as e:
                if job.status == "creating":  # IMA said no: nothing was created
                    await self.store.save_job(job, status="accepted")
                if not e.retryable or attempt >= self.settings.ima_max_retries:
                    raise
                attempt += 1
                await self._recover(e, job, conv, state, attempt)
                if state.rule.points > state.shown_points:
                    # the notice, the confirm threshold and the budget all saw the planned price:
                    # a recovery may not spend more without a new yes (nothing was created yet)
                    raise JobFailed(
                        "price_rose", model=plan.offer.name, was=state.shown_points, now=state.rule.points
                    ) from e
                continue
            await self.store.save_job(
                job, status="running", task_ids=[*job.task_ids, task_id], started_at=self._clock()
            )
            return task_id

    async def _sending(self, job: Job, params: dict[str, Any], points: int) -> None:
        """The create request is about to go on the wire: from now on it may be charged. Marked
        only while this process holds the job's lease (one statement checks and marks), so two
        processes never both pay for it."""
        attempts = job.attempts
        marking = asyncio.ensure_future(
            self.store.save_leased(
                job, status="creating", attempts=attempts + 1, params=params, credits=points
            )
        )
        try:
            marked = await asyncio.shield(marking)
        except asyncio.CancelledError:
            # stopped (shutdown) before the request left: the mark is still written, so it is
            # taken back after it. Left "creating", a restart would tell the user it may have
            # been charged and never run it, though nothing was sent.
            await asyncio.shield(self._unmark(job, marking, attempts))
            raise
        if not marked:
            raise LeaseLost(job.id)

    async def _unmark(self, job: Job, marking: asyncio.Future[bool], attempts: int) -> None:
        """Back to "accepted" once the "creating" mark has landed (it was never sent)."""
        with contextlib.suppress(Exception):  # the database is going away too: the safe side stays
            if await marking:
                await self.store.save_leased(job, status="accepted", attempts=attempts)

    def _backoff(self, attempt: int) -> float:
        return backoff(attempt, 1.0, 30.0) * self.scale

    async def _recover(
        self, e: ImaError, job: Job, conv: Conversation, state: _Attempt, attempt: int
    ) -> None:
        """The reflection step: change what the error says is wrong, or wait and try again."""
        lang = job.language
        if isinstance(e, ServerError):
            await self._after_server_error(e, job, conv, state, attempt)
            return
        state.server_errors = 0
        product, params, rule = state.product, state.params, state.rule
        if isinstance(e, NoRuleMatch):
            params, rule = _completed(e, job, product, params)
        elif isinstance(e, AttributeMismatch):
            product, params, rule = await self._after_attribute_mismatch(e, job, conv, state, attempt)
        elif isinstance(e, BadParameter) and str(e.code) == "400017" and "model" not in params:
            inferred = pixverse_model(product)
            if inferred is None:
                raise e
            params = {**params, "model": inferred}
        elif isinstance(e, CreditMismatch):
            # prices changed under us: refetch the product list and price again
            fresh = await self._fresh_product(job.task_type, product)
            if fresh is None:
                raise e
            product = fresh
            params, rule = rule_for(product, params)
        elif isinstance(e, (RateLimited, NetworkError)) or e.kind == "model_unavailable":
            await _tell(conv.text(t("progress.retrying", lang, attempt=attempt)), job)
            await self._sleep(self._backoff(attempt))
        else:
            raise e
        state.product, state.params, state.rule = product, params, rule

    async def _after_attribute_mismatch(
        self, e: ImaError, job: Job, conv: Conversation, state: _Attempt, attempt: int
    ) -> tuple[Product, dict[str, Any], CreditRule]:
        """Usually a stale attribute id: price again from a fresh product list; if the same rule
        comes back a second time, move to another rule and align the parameters to it (never
        one that changes what the user asked for; a change to a default is said)."""
        state.tried_rules.add(state.rule.attribute_id)
        product = await self._fresh_product(job.task_type, state.product) or state.product
        params, candidate = rule_for(product, state.params)
        if candidate.attribute_id in state.tried_rules and attempt > 1:
            nxt = other_rule(product, params, frozenset(state.tried_rules))
            if nxt is None:
                raise e
            moved = {**params, **nxt.attributes}
            changed = _changed(params, moved)
            if changed & _asked(job, product):
                raise e  # another rule would change what the user asked for: say so instead
            if changed and nxt.points <= state.shown_points:  # a dearer one stops the job (_create)
                await _tell(conv.text(_other_settings(job.language, moved, changed, attempt)), job)
            candidate, params = nxt, moved
        return product, params, candidate

    async def _after_server_error(
        self, e: ServerError, job: Job, conv: Conversation, state: _Attempt, attempt: int
    ) -> None:
        """IMA's own 500 (nothing was created). A lone one usually passes: the same request
        again after a pause. Only when a same-settings retry failed too does the reference's
        degradation apply (resolution one step down, else duration), and the user hears of it,
        plainly when it lowers something they asked for themselves."""
        lang = job.language
        state.server_errors += 1
        step = degrade(state.product, state.params) if state.server_errors >= 2 else None
        if step is None:
            await _tell(conv.text(t("progress.retrying", lang, attempt=attempt)), job)
            await self._sleep(self._backoff(attempt))
            return
        name, value = step
        before = state.params.get(name)
        state.params, state.rule = rule_for(state.product, {**state.params, name: value})
        state.server_errors = 0
        shown = _shown(name, value)
        if getattr(job.request, name, None) is not None:  # the user's own choice (duration / resolution)
            asked = _shown(name, before)
            await _tell(conv.text(t("create.lowered", lang, asked=asked, value=shown, attempt=attempt)), job)
        else:
            await _tell(conv.text(t("progress.degraded", lang, what=shown, attempt=attempt)), job)

    async def _fresh_product(self, task_type: str, product: Product) -> Product | None:
        self.client.invalidate(task_type)
        return await self.client.find_product(task_type, product.model_id, product.name)

    async def _poll(self, job: Job, conv: Conversation, task_id: str) -> TaskResult:
        """Poll until done, sending progress at the model's cadence; raises on failure or timeout."""
        model = self.catalog.get(job.model_key or "") or self.catalog.unknown
        est_max = job.est_max or self.estimate(model)[1]
        every = self._every(model)
        poll_every = max(0.05, self.settings.ima_poll_interval_s * self.scale)
        started = job.started_at or self._clock()
        deadline = started + self.settings.ima_job_timeout_s * self.scale
        kind = RenderHistory.kind(job.model_key, job.task_type, job.params)
        # the unrounded estimate: the told one is whole seconds, which at a small time scale would
        # hold every first poll back to 1 s
        est_lo, est_hi = (
            (model.est_min * self.scale, model.est_max * self.scale)
            if model is not self.catalog.unknown
            else (job.est_min or est_max / 2, est_max)
        )
        lo, hi = polling.window(self.render_history.of(kind), est_lo, est_hi)

        def after(now: float) -> float:
            """When to ask next: learned from such tasks, or the fixed timer."""
            if not self.learn_polls:
                return now + poll_every
            # strictly later than now: started + (now - started) can round back to now
            return max(started + polling.next_poll(now - started, lo, hi, self.scale), now + 1e-3)

        next_poll = after(self._clock())
        asked_at: float | None = None
        next_progress = started + every  # a job resumed long after its start reports at once
        errors = 0
        while True:
            now = self._clock()
            if now >= deadline:
                # the task exists and may still finish (and be charged): not an ordinary timeout
                raise JobFailed("render_timeout")
            await self._sleep(max(0.0, min(next_poll, next_progress, deadline) - now))
            now = self._clock()
            if now >= next_progress:
                await _tell(conv.progress(views.progress(job.id, job.language, now - started, est_max)), job)
                await self._remember_target(job, conv)
                next_progress += every * (1 + int((now - next_progress) // every))
            if now < next_poll:
                continue
            next_poll = after(now)
            previous, asked_at = asked_at, now
            result, errors = await self._detail(task_id, errors)
            if result is None:
                continue
            if result.state == "done":
                # it finished between the last two polls: the middle is the best guess (done at the
                # first poll says only "by now")
                finished = now if previous is None else (previous + now) / 2
                self.render_history.record(kind, finished - started)
                return result
            if result.state == "failed":
                raise TaskFailed(result.error or "")

    async def _detail(self, task_id: str, errors: int) -> tuple[TaskResult | None, int]:
        """One detail call: (the result, 0), or (None, errors + 1) for a passing error worth
        waiting out; raises once there have been too many of them in a row."""
        try:
            return await self.client.detail(task_id), 0
        except Transient:
            if errors + 1 > _MAX_POLL_ERRORS:
                raise
            return None, errors + 1

    async def _deliver(self, job: Job, conv: Conversation, result: TaskResult, offers: list[Offer]) -> None:
        url = result.url or job.result_url or ""
        now = self._clock()
        # marked in the statement that checks the lease: of two processes, one delivers
        if not await self.store.save_leased(job, status="delivering", result_url=url, cover_url=result.cover):
            raise LeaseLost(job.id)
        hint = None
        rec_key = job.request.recommended_key
        if job.request.source == "preference" and rec_key and rec_key != job.model_key:
            hint = find(offers, rec_key) or find(await self._offers_quietly(job.task_type), rec_key)
        est_min = job.est_min or 0
        est_max = job.est_max or 0
        offers = offers or without_excluded(job, await self._offers_quietly(job.task_type))
        others = alternatives(self.catalog, job.task_type, offers, job.model_key, "task_failed")
        view = views.video(
            job.id,
            job.language,
            url=url,
            cover=result.cover,
            model_name=job.model_name or "",
            est_min=est_min,
            est_max=est_max,
            actual_s=now - (job.started_at or now),
            credits=job.credits or 0,
            prompt=job.prompt,
            duration_s=result.duration_s,
            hint=hint,
            another=others[0] if others else None,
            requester=job.user_id,
            seed=_int_or_none(job.params.get("seed")),
        )
        try:
            await conv.video(view)
        except Exception:
            # the video exists and was paid for: if the rich message fails, the link still goes out
            log.exception("showing the video of job %s failed; sending the link", job.id)
            await conv.text(f"{view.caption}\n\n{view.link_text}")
        await self.store.save_job(job, status="delivered", finished_at=self._clock())
        await self.budgets.settle(job)

    async def _offers_quietly(self, task_type: str) -> list[Offer]:
        try:
            return await self._offers(task_type)
        except ImaError:
            return []

    async def _fail(
        self, job: Job, conv: Conversation, e: JobFailed, offers: list[Offer], plan: Plan | None
    ) -> str:
        """Say why the job ended and save it so; returns its final status."""
        if self.store.shared and not await self.store.save_leased(job):
            return HANDED_OVER  # another process holds the job now: it speaks for it
        lang = job.language
        model_name = e.model or (plan.offer.name if plan else job.model_name) or ""
        failed_key = plan.offer.key if plan else job.model_key
        uncertain = e.kind == _UNCERTAIN
        if not policy(e.kind).charged:
            await self.budgets.release(job)  # failed work costs the user nothing
        if not offers and not uncertain:
            offers = without_excluded(
                job, await self._offers_quietly(job.task_type) or self._catalog_offers(job.task_type)
            )
        alts = (
            []
            if not policy(e.kind).alternatives
            else alternatives(self.catalog, job.task_type, offers, failed_key, e.kind)
        )
        reason = t(
            _reason_key(e.kind, job.attempts),
            lang,
            model=model_name,
            **{k: v for k, v in e.values.items() if k != "model"},
        )
        view = views.failure(
            job.id, lang, kind=e.kind, reason=reason, alternatives=alts, can_retry=policy(e.kind).button
        )
        # said first, saved after: a crash in between says it again after the restart, where
        # saving first would end the job without a word (as a delivery, at least once)
        try:
            await conv.failure(view)
        except Exception:  # the platform may be down too; the job row will say why
            log.exception("could not deliver failure of job %s", job.id)
        # an uncertain job keeps a status of its own: not resumed, not retried, listed as such
        status = "uncertain" if uncertain else "failed"
        await self.store.save_job(job, status=status, error_kind=e.kind, finished_at=self._clock())
        if view.alternatives or view.retry_label:
            # "好的" / "yes" / "用第二个" typed in reply answers this, like the buttons do
            now = self._clock()
            await self.store.ask(
                OpenQuestion(
                    job.platform,
                    job.chat_id,
                    job.user_id,
                    "retry",
                    job.id,
                    tuple(a.model_id for a in view.alternatives),
                    now,
                    now + QUESTION_TTL_S,
                )
            )
        return status

    def _catalog_offers(self, task_type: str) -> list[Offer]:
        """Offers without prices, for when the product list itself cannot be read (bad key)."""
        return [
            Offer(m, Product(task_type, m.key, m.ids[task_type], m.version or m.name, ()))
            for m in self.catalog.for_task(task_type)
        ]
