"""Credit-rule matching and the create request body.

A product version has several priced parameter combinations (credit rules). The service
recomputes the rule from the parameters we send and rejects a mismatch (6009 / 6010), so the
rule we name must be the one whose attributes ALL equal the parameters we send.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.ima.errors import BadParameter, NoRuleMatch
from bot.ima.types import CreditRule, Product, TaskSpec
from bot.ima.values import norm, same

#: attributes that mark a rule as the default one; not parameters
_MARKERS: frozenset[tuple[str, str]] = frozenset({("default", "enabled")})
#: never part of a price, so never a reason to reject or change a rule
_UNPRICED: frozenset[str] = frozenset({"aspect_ratio"})
#: how many images each task type sends: (at least, at most)
_IMAGE_COUNT: dict[str, tuple[int, int | None]] = {
    "text_to_video": (0, 0),
    "image_to_video": (1, None),
    "first_last_frame_to_video": (2, 2),
    "reference_image_to_video": (1, None),
}
_PIXVERSE_VERSION = re.compile(r"\bV(\d+(?:\.\d+)?)\b", re.IGNORECASE)


def rule_attributes(rule: CreditRule) -> dict[str, Any]:
    """The rule's real parameter attributes (markers such as {"default": "enabled"} dropped)."""
    return {
        k: v
        for k, v in rule.attributes.items()
        if v is not None and (str(k).lower(), str(v).lower()) not in _MARKERS
    }


@dataclass(frozen=True)
class _Fit:
    """How well one rule fits some parameters."""

    index: int
    rule: CreditRule
    matches: int
    missing: tuple[str, ...]
    conflicts: tuple[str, ...]

    @property
    def full(self) -> bool:
        return not self.missing and not self.conflicts


def _lookup(params: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    # keys compared case-insensitively: (the caller's spelling, the value as the service compares it)
    return {str(k).lower(): (k, norm(v)) for k, v in params.items() if v is not None}


def _priced(rule: CreditRule) -> tuple[tuple[str, str, str], ...]:
    """(key in lower case, key as spelled, value as compared) of each attribute that sets the
    rule's price; worked out once per rule, since every plan matches rules."""
    known: tuple[tuple[str, str, str], ...] | None = rule.derived.get("priced")
    if known is None:
        known = rule.derived["priced"] = tuple(
            (str(k).lower(), k, norm(v))
            for k, v in rule_attributes(rule).items()
            if str(k).lower() not in _UNPRICED
        )
    return known


def _fit(index: int, rule: CreditRule, have: Mapping[str, tuple[str, str]]) -> _Fit:
    matches = 0
    missing: list[str] = []
    conflicts: list[str] = []
    for lower, key, want in _priced(rule):
        got = have.get(lower)
        if got is None:
            missing.append(key)
        elif got[1] == want:
            matches += 1
        else:
            conflicts.append(key)
    return _Fit(index, rule, matches, tuple(missing), tuple(conflicts))


def _fits(product: Product, params: Mapping[str, Any], exclude: frozenset[int] = frozenset()) -> list[_Fit]:
    # a rule without an attribute id cannot be sent (id 0 = "Invalid product attribute")
    have = _lookup(params)
    return [
        _fit(i, r, have)
        for i, r in enumerate(product.credit_rules)
        if r.attribute_id and r.attribute_id not in exclude
    ]


def match_rule(
    product: Product, params: Mapping[str, Any], exclude: frozenset[int] = frozenset()
) -> CreditRule:
    """The rule whose attributes all equal `params`; the most specific one when several do.

    Raises NoRuleMatch when no rule (outside `exclude`) matches fully: never guesses."""
    full = [f for f in _fits(product, params, exclude) if f.full]
    if not full:
        raise NoRuleMatch(f"no credit rule of {product.name} matches the requested parameters")
    # a rule with more attributes is more specific; on a tie the service's order decides
    return min(full, key=lambda f: (-f.matches, f.index)).rule


def _closest(fits: Iterable[_Fit]) -> _Fit | None:
    # fewest conflicting values, then most agreeing ones, then the cheapest
    return min(fits, key=lambda f: (len(f.conflicts), -f.matches, f.rule.points, f.index), default=None)


def complete_from_rules(
    product: Product, params: Mapping[str, Any], keep: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """`params` completed so that one rule matches fully (recovery from 6009).

    The rule chosen is the closest one: the fewest values to change, then the most that already
    agree, then the cheapest. Its missing attributes are added; if every rule disagrees on some
    value, that rule's value replaces it (the closest priced combination). Rules that leave the
    `keep` parameters (what the user asked for) as they are come first: asked for 4K, the bot
    changes a default quality to reach a 4K rule rather than drop to 720P."""
    out = dict(params)
    fits = _fits(product, params)
    kept = {k.lower() for k in keep}
    honouring = [f for f in fits if not any(str(c).lower() in kept for c in f.conflicts)]
    best = _closest(honouring or fits)
    if best is None:
        return out
    have = _lookup(out)
    attrs = rule_attributes(best.rule)
    for key in (*best.missing, *best.conflicts):
        spelled = have[str(key).lower()][0] if str(key).lower() in have else key
        out[spelled] = attrs[key]
    return out


def other_rule(product: Product, params: Mapping[str, Any], exclude: frozenset[int]) -> CreditRule | None:
    """The next best rule outside `exclude` (recovery from 6010), or None when none is left."""
    fits = _fits(product, params, exclude)
    full = [f for f in fits if f.full]
    if full:
        return min(full, key=lambda f: (-f.matches, f.index)).rule
    best = _closest(fits)
    return best.rule if best else None


def pixverse_model(product: Product) -> str | None:
    """The `model` value a Pixverse version needs, from its name: "Pixverse V5.5" → "v5.5".

    Some Pixverse versions do not list `model` in form_config although the service requires it
    (400017 "Invalid value for model"). None for other products or a name without a version."""
    if product.model_id.strip().lower() != "pixverse":
        return None
    m = _PIXVERSE_VERSION.search(product.name)
    return f"v{m.group(1)}" if m else None


def build_parameters(
    product: Product,
    rule: CreditRule,
    requested: Mapping[str, Any],
    prompt: str,
    image_urls: Iterable[str],
) -> dict[str, Any]:
    """The inner `parameters` of a create request.

    Layered as the service expects: the rule's attributes, then form_config defaults, then what
    was requested. A requested value equal to the rule's (e.g. "1080p" vs "1080P") is sent in
    the rule's spelling; `cast` mirrors the rule."""
    attrs = rule_attributes(rule)
    inner: dict[str, Any] = dict(attrs)
    inner.update(product.defaults())
    inner.update({k: v for k, v in requested.items() if v is not None})
    for key, value in attrs.items():
        if key in inner and same(inner[key], value):
            inner[key] = value
    if "model" not in inner and (model := pixverse_model(product)) is not None:
        inner["model"] = model
    inner["prompt"] = prompt
    inner["n"] = _as_int(inner.get("n"), 1)
    inner["input_images"] = list(image_urls)
    inner["cast"] = {"points": rule.points, "attribute_id": rule.attribute_id}
    return inner


def build_create_body(spec: TaskSpec) -> dict[str, Any]:
    """The JSON body of POST /open/v1/tasks/create for `spec`.

    Raises BadParameter when the images do not fit the task type (first+last needs exactly 2)
    or the rule has no attribute id: such a request would only be charged or rejected."""
    if not spec.rule.attribute_id:
        raise BadParameter("credit rule without attribute_id")
    images = _images_for(spec.task_type, spec.image_urls)
    inner = build_parameters(spec.product, spec.rule, spec.parameters, spec.prompt, images)
    return {
        "task_type": spec.task_type,
        "enable_multi_model": False,
        "src_img_url": list(images),
        "parameters": [
            {
                "attribute_id": spec.rule.attribute_id,
                "model_id": spec.product.model_id,
                "model_name": spec.product.name,
                "model_version": spec.product.id,
                "app": "ima",
                "platform": "web",
                "category": spec.task_type,
                "credit": spec.rule.points,
                "parameters": inner,
            }
        ],
    }


def _images_for(task_type: str, urls: tuple[str, ...]) -> tuple[str, ...]:
    low, high = _IMAGE_COUNT.get(task_type, (0, None))
    if high == 0:
        return ()  # text_to_video sends no images even if some were attached
    if len(urls) < low or (high is not None and len(urls) > high):
        expected = f"exactly {low}" if low == high else f"at least {low}"
        raise BadParameter(f"{task_type} needs {expected} image(s), got {len(urls)}")
    return urls


def _as_int(value: Any, default: int) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default
