"""Checking a POST /open/v1/tasks/create body the way the real service does.

Order: shape (400) → model and version (400) → attribute id ("Invalid product attribute") →
hidden required fields (Pixverse `model`, 400017) → rule matching (6009 / 6010) → credit
(6006) → moderation (content policy). Balance (4008) is checked by the caller, which owns it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from bot.ima.types import MAX_PROMPT_CHARS
from bot.sandbox.data import Leaf, find_leaf, rules
from bot.sandbox.errors import ApiError
from bot.sandbox.matching import equal, matches, matching_rules

TASK_TYPES = ("text_to_video", "image_to_video", "first_last_frame_to_video", "reference_image_to_video")
#: images each task type takes: (at least, at most)
IMAGE_COUNT: dict[str, tuple[int, int | None]] = {
    "text_to_video": (0, 0),
    "image_to_video": (1, None),
    "first_last_frame_to_video": (2, 2),
    "reference_image_to_video": (1, None),
}


@dataclass(frozen=True)
class CreateRequest:
    """A create body that passed every check."""

    task_type: str
    leaf: Leaf
    rule: dict[str, Any]
    prompt: str
    parameters: dict[str, Any]  # the inner parameters as sent
    images: tuple[str, ...]
    n: int

    @property
    def attribute_id(self) -> int:
        return int(self.rule["attribute_id"])

    @property
    def credit(self) -> int:
        return int(self.rule["points"])


def validate_create(body: Any) -> CreateRequest:
    """The checked request, or ApiError naming the first problem found."""
    task_type, item, inner = _shape(body)
    prompt = inner.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ApiError("bad_request", "parameters[].parameters.prompt is required")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ApiError("bad_request", f"prompt longer than {MAX_PROMPT_CHARS} characters")
    cast = inner.get("cast")
    if not isinstance(cast, Mapping):
        raise ApiError("bad_request", "parameters[].parameters.cast is required")
    n = _int(inner.get("n", 1))
    if n is None or not 1 <= n <= 4:
        raise ApiError("bad_request", "n must be between 1 and 4")
    images = _images(task_type, body.get("src_img_url"), inner.get("input_images"))

    leaf = _leaf(task_type, item)
    rule = _rule(leaf, item.get("attribute_id"))
    _required_fields(leaf, inner)
    _options(leaf, inner)
    _match(leaf, rule, inner)
    _credit(rule, item.get("credit"), cast)
    _moderate(leaf, prompt)
    return CreateRequest(task_type, leaf, rule, prompt, dict(inner), images, n)


def _shape(body: Any) -> tuple[str, Mapping[str, Any], Mapping[str, Any]]:
    """(task_type, parameters[0], parameters[0].parameters) of a well-shaped create body."""
    if not isinstance(body, Mapping):
        raise ApiError("bad_request", "request body must be a JSON object")
    if "prompt" in body:
        raise ApiError("bad_request", "prompt must be inside parameters[].parameters, not at the top level")
    task_type = body.get("task_type")
    if task_type not in TASK_TYPES:
        raise ApiError("bad_request", f"invalid task_type: {task_type!r}")
    items = body.get("parameters")
    if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], Mapping):
        raise ApiError("bad_request", "parameters must be a list with exactly one object")
    item: Mapping[str, Any] = items[0]
    if "prompt" in item:
        raise ApiError("bad_request", "prompt must be inside parameters[].parameters, not in parameters[]")
    inner = item.get("parameters")
    if not isinstance(inner, Mapping):
        raise ApiError("bad_request", "parameters[].parameters must be an object")
    category = item.get("category", task_type)
    if category != task_type:
        raise ApiError("bad_request", f"category {category!r} does not match task_type {task_type!r}")
    return str(task_type), item, inner


def _images(task_type: str, src: Any, inner: Any) -> tuple[str, ...]:
    src = [] if src is None else src
    inner = [] if inner is None else inner
    if not isinstance(src, list) or not isinstance(inner, list):
        raise ApiError("bad_request", "src_img_url and input_images must be lists")
    if [str(x) for x in src] != [str(x) for x in inner]:
        raise ApiError("bad_request", "src_img_url and input_images must contain the same images")
    for url in src:
        if not isinstance(url, str) or not re.match(r"^https?://\S+$", url):
            raise ApiError("bad_request", "every image must be an http(s) URL")
    low, high = IMAGE_COUNT[task_type]
    if len(src) < low or (high is not None and len(src) > high):
        want = f"exactly {low}" if low == high else f"at least {low}"
        if task_type == "first_last_frame_to_video":
            want = "exactly 2 (first and last frame)"
        raise ApiError("bad_request", f"{task_type} needs {want} image(s), got {len(src)}")
    return tuple(src)


def _leaf(task_type: str, item: Mapping[str, Any]) -> Leaf:
    model_id, version = item.get("model_id"), item.get("model_version")
    if not model_id or not version:
        raise ApiError("bad_request", "model_id and model_version are required")
    leaf = find_leaf(task_type, str(model_id), str(version))
    if leaf is None:
        raise ApiError("bad_request", f"unknown model {model_id!r} version {version!r} for {task_type}")
    return leaf


def _rule(leaf: Leaf, raw: Any) -> dict[str, Any]:
    attribute_id = _int(raw)
    if not attribute_id:
        raise ApiError("invalid_attribute")
    rule = leaf.rule(attribute_id)
    if rule is None:
        raise ApiError("invalid_attribute", f"attribute_id {attribute_id} is not a rule of {leaf.name}")
    return rule


def _required_fields(leaf: Leaf, inner: Mapping[str, Any]) -> None:
    spec = rules()["required_fields"].get(leaf.model_id)
    if spec is None:
        return
    value = inner.get(spec["field"])
    if value is None or not any(equal(value, v) for v in spec["values"]):
        raise ApiError(spec["error"])


def _options(leaf: Leaf, inner: Mapping[str, Any]) -> None:
    # priced fields are judged by the rules (6009); the others must be among their options
    priced = {str(k).lower() for r in leaf.rules for k in (r.get("attributes") or {})}
    for f in leaf.fields:
        name = f["field"]
        offered = [o.get("value") for o in f.get("options") or [] if isinstance(o, Mapping)]
        if name.lower() in priced or not offered or inner.get(name) is None:
            continue
        if not any(equal(inner[name], v) for v in offered):
            raise ApiError("bad_request", f"Invalid value for {name}")


def _match(leaf: Leaf, rule: dict[str, Any], inner: Mapping[str, Any]) -> None:
    if matches(rule, inner):
        return
    if matching_rules(leaf.rules, inner):
        raise ApiError("attribute_mismatch")
    raise ApiError("no_rule_match")


def _credit(rule: dict[str, Any], credit: Any, cast: Mapping[str, Any]) -> None:
    points = int(rule["points"])
    if _int(credit) != points or _int(cast.get("points")) != points:
        raise ApiError("credit_mismatch")
    if _int(cast.get("attribute_id")) != int(rule["attribute_id"]):
        raise ApiError("attribute_mismatch")


@cache
def _policy_pattern() -> re.Pattern[str]:
    spec = rules()["content_policy"]
    en = [r"\b" + re.escape(w).replace(r"\ ", r"\s+") + r"\b" for w in spec["words_en"]]
    zh = [re.escape(w) for w in spec["words_zh"]]
    return re.compile("|".join(en + zh), re.IGNORECASE)


def _moderate(leaf: Leaf, prompt: str) -> None:
    if leaf.model_id not in rules()["content_policy"]["models"]:
        return
    hit = _policy_pattern().search(prompt)
    if hit:
        raise ApiError("content_policy", "the prompt depicts people or protected characters")


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return int(f) if f.is_integer() else None
