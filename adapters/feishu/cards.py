"""Interactive cards built from the core's views (message card JSON 1.0).

Words come translated in the views or from `bot.i18n`; this module only lays them out. Text goes
in `plain_text` so a prompt can never inject card markdown.

Every button that acts on a job carries, in its `value` (echoed back verbatim in the
`card.action.trigger` callback), what the press needs: the action (a same-seed rerun is an action
of its own), the job id, the model (for a rerun), the language, and who asked (`owner`, an open_id)
and where (`chat_type`), so the adapter can tell a press by the requester from one by someone else
and knows whether to @-mention on completion, also after a restart.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from typing import Any

from adapters.base import Alternative, FailureView, NoticeView, ProgressView, VideoView
from adapters.feishu.api import dumps
from bot.text import ELLIPSIS, clip

#: one text block at most (a prompt can be 8,000 characters); longer ones end in an ellipsis
MAX_TEXT = 6000
#: Feishu: "卡片及富文本消息请求体最大不能超过30KB", text messages 150 KB (im-v1 message create,
#: reply and patch docs; error 230025 "The length of the message content reaches its limit")
MAX_CARD_BODY = 30 * 1024
MAX_TEXT_BODY = 150 * 1024
#: the rest of a request body besides the content (receive_id, msg_type, uuid, keys)
_BODY_ROOM = 400


def body_size(content: dict[str, Any]) -> int:
    """Bytes the content takes in a request body: its JSON, quoted again as a JSON string."""
    return len(json.dumps(dumps(content), ensure_ascii=False).encode("utf-8")) + _BODY_ROOM


def fit_text(text: str, limit: int = MAX_TEXT_BODY) -> str:
    """A text message's text, cut (with an ellipsis) until its request body fits `limit` bytes."""
    while text and body_size({"text": text}) > limit:
        text = _shorter(text, body_size({"text": text}) - limit)
    return text


def _shorter(text: str, excess: int) -> str:
    """`text` about `excess` bytes shorter (by its average bytes per character), with an ellipsis."""
    per_char = max(1.0, body_size({"t": text}) / max(1, len(text)))
    keep = len(text.removesuffix(ELLIPSIS)) - math.ceil(excess / per_char) - 1
    return text[: max(0, keep)] + ELLIPSIS


#: button actions (value["action"]); each maps to one core method in the adapter
RERUN = "rerun"  # failure card: another model or the same again -> core.rerun
AGAIN = "again"  # video card: "Again" / "Try <model>" -> core.rerun
SAME_SEED = "same_seed"  # video card: "Same seed" -> core.rerun(same_seed=True)
CONFIRM = "confirm"  # notice waiting for an OK -> core.confirm
DECLINE = "decline"  # notice waiting for an OK -> core.decline
CANCEL = "cancel"  # notice / progress while the job runs -> core.cancel
ACTIONS = frozenset({RERUN, AGAIN, SAME_SEED, CONFIRM, DECLINE, CANCEL})
#: the actions that run a job again (the core allows one of them per earlier job)
RERUNS = frozenset({RERUN, AGAIN, SAME_SEED})

#: the buttons one press uses up (the card drops them): a pair is answered by either of its buttons
USED_BY = {
    RERUN: RERUNS,
    AGAIN: RERUNS,
    SAME_SEED: RERUNS,
    CONFIRM: frozenset({CONFIRM, DECLINE}),
    DECLINE: frozenset({CONFIRM, DECLINE}),
    CANCEL: frozenset({CANCEL}),
}


@dataclass(frozen=True)
class Owner:
    """Who a job's buttons belong to, and the kind of chat they are in."""

    language: str
    user_id: str | None = None
    chat_type: str | None = None  # "p2p" | "group"


def _text(content: str) -> dict[str, Any]:
    return {"tag": "div", "text": {"tag": "plain_text", "content": clip(content, MAX_TEXT)}}


def fit(card_json: dict[str, Any], limit: int = MAX_CARD_BODY) -> dict[str, Any]:
    """`card_json` whose request body fits `limit` bytes: its longest text blocks are cut, with
    an ellipsis, until it does (the buttons and the header stay whole)."""
    if body_size(card_json) <= limit:
        return card_json
    out = copy.deepcopy(card_json)
    texts = [el["text"] for el in out.get("elements", []) if el.get("tag") == "div" and "text" in el]
    while texts and (excess := body_size(out) - limit) > 0:
        longest = max(texts, key=lambda t: len(t.get("content", "")))
        if not longest.get("content"):
            break
        longest["content"] = _shorter(longest["content"], excess)
    return out


def card(
    title: str, blocks: list[str], *, template: str = "blue", actions: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A card with a header, plain-text blocks separated by rules, and an optional row of buttons,
    cut to fit Feishu's 30 KB.

    `update_multi` is set on every card: Feishu patches a card only when both versions share it.
    """
    elements: list[dict[str, Any]] = []
    for i, block in enumerate(b for b in blocks if b):
        if i:
            elements.append({"tag": "hr"})
        elements.append(_text(block))
    if actions:
        elements.append({"tag": "action", "actions": actions})
    return fit(
        {
            "config": {"update_multi": True, "wide_screen_mode": True},
            "header": {"template": template, "title": {"tag": "plain_text", "content": clip(title, 200)}},
            "elements": elements,
        }
    )


def action_button(
    label: str,
    action: str,
    *,
    job_id: str,
    owner: Owner,
    model_id: str = "",
    model_name: str = "",
    style: str = "default",
) -> dict[str, Any]:
    """A button whose press Feishu reports back with this value."""
    value: dict[str, str] = {
        "action": action,
        "job_id": job_id,
        "model_id": model_id,
        "model_name": model_name,
        "lang": owner.language,
    }
    if owner.user_id:
        value["owner"] = owner.user_id
    if owner.chat_type:
        value["chat_type"] = owner.chat_type
    return {
        "tag": "button",
        "text": {"tag": "plain_text", "content": clip(label, 100)},
        "type": style,
        "value": value,
    }


def rerun_button(
    label: str,
    *,
    job_id: str,
    model_id: str,
    model_name: str,
    language: str,
    primary: bool,
    owner: Owner | None = None,
) -> dict[str, Any]:
    """A failure card's button: rerun `job_id` with `model_id` ("" = the same model)."""
    return action_button(
        label,
        RERUN,
        job_id=job_id,
        owner=owner or Owner(language),
        model_id=model_id,
        model_name=model_name,
        style="primary" if primary else "default",
    )


def link_button(label: str, url: str) -> dict[str, Any]:
    """A button that opens `url`."""
    return {
        "tag": "button",
        "text": {"tag": "plain_text", "content": clip(label, 100)},
        "type": "primary",
        "url": url,
    }


def notice_buttons(view: NoticeView, owner: Owner) -> list[dict[str, Any]]:
    """Confirm / No thanks while the job waits for an OK; otherwise Cancel."""
    if view.confirm_label:
        out = [action_button(view.confirm_label, CONFIRM, job_id=view.job_id, owner=owner, style="primary")]
        if view.decline_label:
            out.append(action_button(view.decline_label, DECLINE, job_id=view.job_id, owner=owner))
        return out
    return cancel_buttons(view.job_id, view.cancel_label, owner)


def progress_buttons(view: ProgressView, owner: Owner) -> list[dict[str, Any]]:
    return cancel_buttons(view.job_id, view.cancel_label, owner)


def cancel_buttons(job_id: str, label: str | None, owner: Owner) -> list[dict[str, Any]]:
    return [action_button(label, CANCEL, job_id=job_id, owner=owner, style="danger")] if label else []


def video_buttons(view: VideoView, owner: Owner) -> list[dict[str, Any]]:
    """ "Again" (same model), "Same seed" (when the task's seed is known) and one "Try <model>" per alternative."""
    out = []
    if view.again_label:
        out.append(action_button(view.again_label, AGAIN, job_id=view.job_id, owner=owner, style="primary"))
    if view.same_seed_label:
        out.append(action_button(view.same_seed_label, SAME_SEED, job_id=view.job_id, owner=owner))
    for alt in view.alternatives:
        out.append(
            action_button(
                alt.label,
                AGAIN,
                job_id=view.job_id,
                owner=owner,
                model_id=alt.model_id,
                model_name=alt.model_name,
            )
        )
    return out


def failure_card(view: FailureView, language: str, owner: Owner | None = None) -> dict[str, Any]:
    """The failure, translated, with a button per suggested model and a retry button when it helps."""
    owner = owner or Owner(language)
    buttons = [
        _alternative_button(view.job_id, alt, owner, primary=i == 0)
        for i, alt in enumerate(view.alternatives)
    ]
    if view.retry_label:
        buttons.append(
            rerun_button(
                view.retry_label,
                job_id=view.job_id,
                model_id="",
                model_name="",
                language=owner.language,
                primary=not buttons,
                owner=owner,
            )
        )
    return card(view.title, [view.text], template="red", actions=buttons)


def _alternative_button(job_id: str, alt: Alternative, owner: Owner, *, primary: bool) -> dict[str, Any]:
    return rerun_button(
        alt.label,
        job_id=job_id,
        model_id=alt.model_id,
        model_name=alt.model_name,
        language=owner.language,
        primary=primary,
        owner=owner,
    )


def without_buttons(card_json: dict[str, Any], job_id: str, actions: frozenset[str]) -> dict[str, Any] | None:
    """`card_json` without the buttons of `job_id` whose action is in `actions` (link buttons and
    other jobs' buttons stay); None when it has none of them (nothing to patch)."""
    out = copy.deepcopy(card_json)
    removed = False
    elements: list[dict[str, Any]] = []
    for el in out.get("elements", []):
        if el.get("tag") == "action":
            kept = [b for b in el.get("actions", []) if not _is_used(b, job_id, actions)]
            removed = removed or len(kept) < len(el.get("actions", []))
            if not kept:
                continue
            el["actions"] = kept
        elements.append(el)
    if not removed:
        return None
    out["elements"] = elements
    return out


def _is_used(button: dict[str, Any], job_id: str, actions: frozenset[str]) -> bool:
    value = button.get("value")
    return isinstance(value, dict) and value.get("job_id") == job_id and value.get("action") in actions
