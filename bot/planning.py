"""Planning a job: which model, which parameters, which price — pure where possible.

The orchestrator runs a job's states (notice, create, poll, deliver); this module decides what
the job will be: the model (named > preference > recommendation, minus the models the user
ruled out), the parameters fitted to it (bot.fitting), the creative controls it offers and the
credit rule that prices the result (bot.ima.credit).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

from bot.catalog import Catalog
from bot.fitting import Adjustment, fit_controls, fit_request, settable, sound_field
from bot.i18n import t
from bot.ima.credit import complete_from_rules, match_rule
from bot.ima.errors import NoRuleMatch
from bot.ima.types import CreditRule, Product
from bot.selection import Offer, find, recommend
from bot.store import Job


class JobFailed(Exception):
    """Ends a job with the translated failure for `kind` (error.<kind> in locales)."""

    def __init__(self, kind: str, *, model: str = "", offer: Offer | None = None, **values: object) -> None:
        super().__init__(kind)
        self.kind = kind
        self.model = model
        self.offer = offer
        self.values = values


@dataclass
class Plan:
    """The model, parameters and credit rule a job will be created with, and what was changed."""

    offer: Offer
    params: dict[str, Any]
    rule: CreditRule
    adjustments: list[Adjustment]
    source: str  # named | preference | recommended
    controls: dict[str, Any] = field(default_factory=dict)  # creative controls set, as asked


def without_excluded(job: Job, offers: list[Offer]) -> list[Offer]:
    """Today's offers minus the models the user ruled out ("别用sora"): never recommended,
    never suggested after a failure, never named as the cheaper choice."""
    excluded = set(job.request.excluded)
    return [o for o in offers if o.key not in excluded] if excluded else offers


def over_the_limit(plan: Plan, limit: int) -> bool:
    """Whether the plan costs more than BOT_CONFIRM_ABOVE_CREDITS (`limit`; 0: no limit)."""
    return bool(limit) and plan.rule.points > limit


def needs_confirm(job: Job, plan: Plan, limit: int) -> bool:
    """A job waits for its requester's OK over BOT_CONFIRM_ABOVE_CREDITS (`limit`; 0: never),
    and when its request was only a few words that may not have meant a video at all."""
    return (over_the_limit(plan, limit) or job.request.unsure) and not job.request.confirmed


def beyond_the_yes(job: Job, plan: Plan) -> bool:
    """Whether a job its requester said yes to would now cost more than the price they said yes
    to (the product list changed while the question waited): a yes covers its own price only."""
    return job.request.confirmed and job.credits is not None and plan.rule.points > job.credits


def plan(catalog: Catalog, job: Job, offers: list[Offer]) -> Plan:
    """Choose the model (named > preference > recommendation), fit what was asked to it, add the
    creative controls it offers and price the result from its credit rule. No I/O: the offers
    come from the live product list the caller fetched. Records the source on the request."""
    req = job.request
    task = job.task_type
    rec = recommend(catalog, task, offers, req.duration, req.resolution)
    named_key = req.model_key
    pref_key = req.preferred_key
    if named_key:
        offer = find(offers, named_key)
        if offer is None:
            model = catalog.get(named_key)
            raise JobFailed(
                "unsupported_task",
                model=model.name if model else named_key,
                task=t(f"task.{task}", job.language),
            )
        source = "named"
    elif pref_key and (pref := find(offers, pref_key)) is not None:
        offer, source = pref, "preference"
    elif rec is not None:
        offer, source = rec, "recommended"
    else:
        raise JobFailed("model_unavailable")
    fitted = fit_request(offer.product, req.duration, req.resolution, req.aspect_ratio)
    sound_elsewhere = next((o.name for o in offers if sound_field(o.product)), None)
    chosen = fit_controls(offer.product, dict(req.controls), sound_elsewhere)
    fitted.adjustments += chosen.adjustments
    params = {**offer.product.defaults(), **fitted.params, **chosen.params}
    params, rule = rule_for(offer.product, params, frozenset(fitted.params) | frozenset(chosen.params))
    req.source = source
    req.recommended_key = rec.key if rec else None
    return _with_seed(job, Plan(offer, params, rule, fitted.adjustments, source, chosen.applied))


def _with_seed(job: Job, made: Plan) -> Plan:
    """`made` with a seed of our choosing when none was asked for and the model takes one: kept
    with the job, so "again, same seed" can reproduce it. (No credit rule prices a seed.)"""
    if "seed" not in job.request.controls and settable(made.offer.product, "seed"):
        made.params["seed"] = random.randrange(1, 2**31)
    return made


#: plans kept per product list at most (one per distinct request shape)
PLANS_KEPT = 1024


class PlanMemo:
    """`plan` for one product list, with what it worked out kept by the request's shape (its
    model, preference, settings, controls and exclusions; never its words). Most requests ask
    for nothing in particular, and every one of a burst would otherwise repeat the same
    recommendation, fitting and rule matching. Each caller gets its own copy, with its own seed."""

    def __init__(self) -> None:
        self._plans: dict[tuple[Any, ...], tuple[Plan, str | None]] = {}

    def plan(self, catalog: Catalog, job: Job, offers: list[Offer]) -> Plan:
        """The same Plan `plan(catalog, job, offers)` makes (a failure is never kept)."""
        req = job.request
        key = _shape(job)
        known = self._plans.get(key) if key is not None else None
        if known is None:
            made = plan(catalog, job, offers)
            if key is not None:
                if len(self._plans) >= PLANS_KEPT:
                    self._plans.clear()  # a bound on memory: the shapes in use come back at once
                seedless = dict(made.params)
                if "seed" not in req.controls:
                    seedless.pop("seed", None)
                self._plans[key] = (_copy(made, seedless), req.recommended_key)
            return made
        kept, recommended = known
        req.source, req.recommended_key = kept.source, recommended
        return _with_seed(job, _copy(kept, kept.params))


def _copy(p: Plan, params: dict[str, Any]) -> Plan:
    """`p` with `params` and its own copies of what a caller may change."""
    return replace(p, params=dict(params), adjustments=list(p.adjustments), controls=dict(p.controls))


def _shape(job: Job) -> tuple[Any, ...] | None:
    """Everything of a job `plan` reads, as a key; None when some part cannot be a key."""
    req = job.request
    key = (
        job.task_type,
        req.model_key,
        req.preferred_key,
        req.duration,
        req.resolution,
        req.aspect_ratio,
        tuple(sorted(req.controls.items())),
        tuple(sorted(req.excluded)),
    )
    try:
        hash(key)
    except TypeError:
        return None
    return key


def rule_for(
    product: Product, params: dict[str, Any], keep: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], CreditRule]:
    """The credit rule for `params`; when none matches, the nearest priced combination that
    keeps what the user asked for (`keep`) and changes defaults instead."""
    try:
        return params, match_rule(product, params)
    except NoRuleMatch:
        completed = complete_from_rules(product, params, keep)
        return completed, match_rule(product, completed)
