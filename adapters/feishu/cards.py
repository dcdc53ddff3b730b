"""Interactive cards built from the core's views (message card JSON 1.0).

Words come translated in the views or from `bot.i18n`; this module only lays them out. Text goes
in `plain_text` so a prompt can never inject card markdown.
"""

from __future__ import annotations

from typing import Any

from adapters.base import Alternative, FailureView

#: Feishu rejects card JSON over 30 KB; keep every text block far below that
MAX_TEXT = 6000
RERUN = "rerun"


def _text(content: str) -> dict[str, Any]:
    return {"tag": "div", "text": {"tag": "plain_text", "content": content[:MAX_TEXT]}}


def card(
    title: str, blocks: list[str], *, template: str = "blue", actions: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A card with a header, plain-text blocks separated by rules, and an optional row of buttons.

    `update_multi` is set on every card: Feishu patches a card only when both versions share it.
    """
    elements: list[dict[str, Any]] = []
    for i, block in enumerate(b for b in blocks if b):
        if i:
            elements.append({"tag": "hr"})
        elements.append(_text(block))
    if actions:
        elements.append({"tag": "action", "actions": actions})
    return {
        "config": {"update_multi": True, "wide_screen_mode": True},
        "header": {"template": template, "title": {"tag": "plain_text", "content": title[:200]}},
        "elements": elements,
    }


def rerun_button(label: str, *, job_id: str, model_id: str, model_name: str, language: str,
                 primary: bool) -> dict[str, Any]:
    """A button whose press reruns `job_id` with `model_id` ("" = the same model)."""
    return {
        "tag": "button",
        "text": {"tag": "plain_text", "content": label[:100]},
        "type": "primary" if primary else "default",
        "value": {"action": RERUN, "job_id": job_id, "model_id": model_id, "model_name": model_name,
                  "lang": language},
    }


def link_button(label: str, url: str) -> dict[str, Any]:
    """A button that opens `url`."""
    return {"tag": "button", "text": {"tag": "plain_text", "content": label[:100]}, "type": "primary", "url": url}


def failure_card(view: FailureView, language: str) -> dict[str, Any]:
    """The failure, translated, with a button per suggested model and a retry button when it helps."""
    buttons = [_alternative_button(view.job_id, alt, language, primary=i == 0)
               for i, alt in enumerate(view.alternatives)]
    if view.retry_label:
        buttons.append(rerun_button(view.retry_label, job_id=view.job_id, model_id="", model_name="",
                                    language=language, primary=not buttons))
    return card(view.title, [view.text], template="red", actions=buttons)


def _alternative_button(job_id: str, alt: Alternative, language: str, *, primary: bool) -> dict[str, Any]:
    return rerun_button(alt.label, job_id=job_id, model_id=alt.model_id, model_name=alt.model_name,
                        language=language, primary=primary)
