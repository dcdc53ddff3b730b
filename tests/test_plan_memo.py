"""Plans kept by request shape (bot.planning.PlanMemo) are the plans `plan` makes: the same
model, parameters, price and adjustments, each with a seed of its own, and never shared."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from bot.catalog import load_catalog
from bot.ima.products import parse_product_list
from bot.planning import JobFailed, Plan, PlanMemo, plan, without_excluded
from bot.sandbox.data import product_tree
from bot.selection import Offer, offers_from
from bot.store import Job, JobRequest

CATALOG = load_catalog()


def _offers(task_type: str) -> list[Offer]:
    products = parse_product_list({"data": product_tree()[task_type]}, task_type)
    return offers_from(CATALOG, task_type, products)


def _job(task_type: str = "text_to_video", **request: Any) -> Job:
    return Job(
        id="j",
        platform="console",
        chat_id="c",
        user_id="u",
        language="en",
        task_type=task_type,
        prompt="a puppy",
        request=JobRequest(**request),
    )


def _without_seed(p: Plan) -> tuple[Any, ...]:
    params = {k: v for k, v in p.params.items() if k != "seed"}
    return (p.offer.key, params, p.rule.attribute_id, p.rule.points, p.adjustments, p.source, p.controls)


SHAPES: list[dict[str, Any]] = [
    {
        "model_key": model,
        "duration": duration,
        "resolution": resolution,
        "controls": controls,
        "excluded": excluded,
    }
    for model, duration, resolution, controls, excluded in itertools.product(
        (None, "wan-2.6", "kling-o1", "veo-3.1"),
        (None, 5, 10, 7),
        (None, "1080P", "4K"),
        ({}, {"sound": True}, {"seed": 42, "negative_prompt": "blur"}),
        ([], ["wan-2.6"]),
    )
]


@pytest.mark.parametrize("task_type", ["text_to_video", "image_to_video"])
def test_a_kept_plan_is_the_plan_made_afresh(task_type: str) -> None:
    memo = PlanMemo()
    all_offers = _offers(task_type)
    for shape in SHAPES:
        offers = without_excluded(_job(task_type, **shape), all_offers)
        fresh_job, first_job, kept_job = (_job(task_type, **shape) for _ in range(3))
        try:
            fresh = plan(CATALOG, fresh_job, offers)
        except JobFailed as e:
            with pytest.raises(JobFailed) as again:
                memo.plan(CATALOG, first_job, offers)
            assert again.value.kind == e.kind  # a failure is explained each time, never kept
            continue
        memo.plan(CATALOG, first_job, offers)
        kept = memo.plan(CATALOG, kept_job, offers)
        assert _without_seed(kept) == _without_seed(fresh), shape
        assert ("seed" in kept.params) == ("seed" in fresh.params)
        assert (kept_job.request.source, kept_job.request.recommended_key) == (
            fresh_job.request.source,
            fresh_job.request.recommended_key,
        )


def test_each_kept_plan_gets_a_seed_of_its_own() -> None:
    memo = PlanMemo()
    offers = _offers("text_to_video")
    seeds = {memo.plan(CATALOG, _job(model_key="wan-2.6"), offers).params["seed"] for _ in range(20)}
    assert len(seeds) > 15


def test_a_seed_asked_for_is_kept_as_asked() -> None:
    memo = PlanMemo()
    offers = _offers("text_to_video")
    for _ in range(2):
        assert memo.plan(CATALOG, _job(model_key="wan-2.6", controls={"seed": 7}), offers).params["seed"] == 7


def test_changing_one_plan_changes_no_other() -> None:
    memo = PlanMemo()
    offers = _offers("text_to_video")
    first = memo.plan(CATALOG, _job(), offers)
    first.params["duration"] = 999
    first.adjustments.clear()
    first.controls["sound"] = True
    second = memo.plan(CATALOG, _job(), offers)
    assert second.params["duration"] != 999
    assert "sound" not in second.controls
