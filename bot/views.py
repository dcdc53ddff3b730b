"""Build the neutral views of bot/chat.py: the only place user-facing text is assembled."""

from __future__ import annotations

from typing import Any

from bot.chat import Alternative, FailureView, NoticeView, ProgressView, VideoView
from bot.fitting import Adjustment
from bot.i18n import has, t
from bot.progress import overdue, percent
from bot.selection import Offer


def _minutes(seconds: float) -> str:
    value = seconds / 60
    return f"{value:.1f}".rstrip("0").rstrip(".") if value < 10 else str(round(value))


def notice(
    job_id: str,
    lang: str,
    *,
    model_name: str,
    credits: int,
    est_min: int,
    est_max: int,
    adjustments: list[Adjustment],
    extra_lines: list[str],
    confirm_above: int | None = None,
    controls: dict[str, Any] | None = None,
    unsure: bool = False,
) -> NoticeView:
    """The pre-generation notice. With `confirm_above` (the threshold it exceeds), or `unsure`
    (a few words that may not have meant a video), it asks for an OK and offers Confirm / No
    thanks; otherwise it offers Cancel."""
    # minutes help only once the wait is long enough to be counted in them
    key = "notice.body" if est_max >= 60 else "notice.body_seconds"
    body = t(
        key,
        lang,
        model=model_name,
        est_min=est_min,
        est_max=est_max,
        min_minutes=_minutes(est_min),
        max_minutes=_minutes(est_max),
        credits=credits,
    )
    lines = [
        body,
        *control_lines(controls or {}, lang),
        *(t(f"fit.{a.key}", lang, model=model_name, asked=a.asked, value=a.value) for a in adjustments),
    ]
    lines.extend(extra_lines)
    if confirm_above is not None or unsure:
        # nothing starts yet: the notice's first line ("starting…") becomes the question's title
        title = t("confirm.title_unsure" if confirm_above is None else "confirm.title", lang)
        lines[0] = "\n".join([title, *body.split("\n")[1:]])
        if confirm_above is None:
            lines.append(t("confirm.ask_unsure", lang, credits=credits))
        else:
            lines.append(t("confirm.ask", lang, credits=credits, limit=confirm_above))
        return NoticeView(
            job_id=job_id,
            title=title,
            text="\n".join(lines),
            model_name=model_name,
            credits=credits,
            est_min_s=est_min,
            est_max_s=est_max,
            confirm_label=t("confirm.button", lang, credits=credits),
            decline_label=t("confirm.decline_button", lang),
        )
    lines.append(t("notice.footer", lang))
    return NoticeView(
        job_id=job_id,
        title=t("notice.title", lang),
        text="\n".join(lines),
        model_name=model_name,
        credits=credits,
        est_min_s=est_min,
        est_max_s=est_max,
        cancel_label=t("cancel.button", lang),
    )


def control_lines(controls: dict[str, Any], lang: str) -> list[str]:
    """One line per creative control that will be used ("🔇 silent", "🎲 seed 42")."""
    lines = []
    if "sound" in controls:
        lines.append(t("controls.sound_on" if controls["sound"] else "controls.sound_off", lang))
    if "shot_type" in controls:
        lines.append(t(f"controls.shot_{controls['shot_type']}", lang))
    if "negative_prompt" in controls:
        lines.append(t("controls.negative", lang, words=controls["negative_prompt"]))
    if "seed" in controls:
        lines.append(t("controls.seed", lang, seed=controls["seed"]))
    if "prompt_extend" in controls:
        lines.append(t("controls.extend_on" if controls["prompt_extend"] else "controls.extend_off", lang))
    return lines


def progress(job_id: str, lang: str, elapsed_s: float, est_max_s: int) -> ProgressView:
    p = percent(elapsed_s, est_max_s)
    late = overdue(elapsed_s, est_max_s)
    text = t(
        "progress.overdue" if late else "progress.line",
        lang,
        percent=p,
        elapsed=int(elapsed_s),
        est_max=est_max_s,
    )
    return ProgressView(
        job_id=job_id,
        percent=p,
        elapsed_s=int(elapsed_s),
        est_max_s=est_max_s,
        text=text,
        overdue=late,
        cancel_label=t("cancel.button", lang),
    )


def video(
    job_id: str,
    lang: str,
    *,
    url: str,
    cover: str | None,
    model_name: str,
    est_min: int,
    est_max: int,
    actual_s: float,
    credits: int,
    prompt: str,
    duration_s: float | None,
    hint: Offer | None,
    another: Offer | None = None,
    requester: str | None = None,
    seed: int | None = None,
) -> VideoView:
    caption = t(
        "video.caption",
        lang,
        model=model_name,
        est_min=est_min,
        est_max=est_max,
        actual=round(actual_s),
        credits=credits,
    )
    if prompt:
        caption += "\n\n" + t("video.caption_prompt", lang, prompt=prompt)
    if hint is not None:
        caption += "\n\n" + t("video.mismatch_hint", lang, model=hint.name, credits=hint.min_points)
    others = (
        (Alternative(another.product.model_id, another.name, t("again.other", lang, model=another.name)),)
        if another
        else ()
    )
    return VideoView(
        job_id=job_id,
        url=url,
        cover_url=cover,
        caption=caption,
        link_text=t("video.link", lang, url=url),
        model_name=model_name,
        duration_s=duration_s,
        again_label=t("again.button", lang),
        alternatives=others,
        same_seed_label=t("again.same_seed", lang, seed=seed) if seed is not None else None,
        requester=requester,
    )


def trait(key: str, lang: str) -> str:
    return t(f"trait.{key}", lang) if has(f"trait.{key}", lang) else t("trait.unknown", lang)


def failure(
    job_id: str, lang: str, *, kind: str, reason: str, alternatives: list[Offer], can_retry: bool
) -> FailureView:
    lines = [t("failure.body", lang, reason=reason)]
    alts: list[Alternative] = []
    if alternatives:
        lines.append(t("failure.suggest", lang))
        for o in alternatives:
            priced = bool(o.product.credit_rules)
            key = "failure.alternative" if priced else "failure.alternative_no_price"
            lines.append(t(key, lang, model=o.name, trait=trait(o.key, lang), credits=o.min_points))
            label_key = "failure.button" if priced else "failure.button_no_price"
            alts.append(
                Alternative(
                    o.product.model_id, o.name, t(label_key, lang, model=o.name, credits=o.min_points)
                )
            )
        lines.append(t("failure.ask", lang))
    return FailureView(
        job_id=job_id,
        title=t("failure.title", lang),
        text="\n".join(lines),
        kind=kind,
        alternatives=tuple(alts),
        retry_label=t("failure.retry", lang) if can_retry else None,
    )
