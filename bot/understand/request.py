"""The structured form of one chat message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: the keys `python -m bot parse` prints, in order
CLI_KEYS: tuple[str, ...] = (
    "intent",
    "task_type",
    "model_id",
    "duration",
    "resolution",
    "aspect_ratio",
    "preference",
    "language",
    "prompt",
    "unknown_model",
    "excluded_models",
    "sound",
    "negative_prompt",
    "seed",
    "shot_type",
    "prompt_extend",
)


@dataclass(frozen=True)
class Request:
    """What a message asks for. Every field the message does not state is None.

    - task_type: one of bot.ima.types.TASK_TYPES (always set).
    - model_id: the model's id for task_type (None when no model is named).
    - duration: seconds as asked (not clamped); resolution: "540P" | "720P" | "768P" |
      "1080P" | "4K"; aspect_ratio: "16:9" | "9:16" | "1:1" | "4:3" | "3:4" | "21:9".
    - preference: "save" (a model was named), "clear" (the choice is handed back), or None.
    - language: "zh" or "en"; prompt: the description with model and parameter words removed.
    - model_key: the catalog key of the named model (Pixverse versions share one model_id).
    - intent: one of bot.understand.intent.INTENTS; only "video" may lead to a paid task.
    - unknown_model: the name of a video model the user asked for that is not offered
      ("Runway"), else None.
    - choice: which offered alternative an answer picks ("用第二个" -> 1), else None.
    - excluded_models: model ids ruled out for this job ("别用sora"); never saved.
    """

    task_type: str
    model_id: str | None = None
    duration: int | None = None
    resolution: str | None = None
    aspect_ratio: str | None = None
    preference: str | None = None
    language: str = "en"
    prompt: str | None = None
    model_key: str | None = None
    intent: str = "video"
    unknown_model: str | None = None
    choice: int | None = None
    #: pictures the wording asks for ("animate this" 1, "first and last frame" 2), else 0
    wants_images: int = 0
    #: models the user ruled out ("别用sora", "not Kling"): model ids, and catalog keys
    excluded_models: tuple[str, ...] = ()
    excluded_keys: tuple[str, ...] = ()
    #: what a "jobs" question is about: None (the jobs) or "usage" (credits spent)
    topic: str | None = None
    #: written in Traditional Chinese: replies use the zh-Hant catalog (`language` stays "zh")
    traditional: bool = False
    #: creative controls, None when not asked: sound on/off, what must not appear, a seed,
    #: "single" / "multi" shot, and whether the service may rewrite the prompt
    sound: bool | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    shot_type: str | None = None
    prompt_extend: bool | None = None
    #: a video request of nothing but a few words ("a cat", "hungry"): it waits for a yes
    #: before anything is spent (not a CLI key)
    unsure: bool = False

    def controls(self) -> dict[str, Any]:
        """The creative controls asked for, by name (only those set)."""
        values = {
            "sound": self.sound,
            "negative_prompt": self.negative_prompt,
            "seed": self.seed,
            "shot_type": self.shot_type,
            "prompt_extend": self.prompt_extend,
        }
        return {k: v for k, v in values.items() if v is not None}

    def as_dict(self) -> dict[str, Any]:
        """The CLI keys (no model_key or choice), in CLI order."""
        out = {k: getattr(self, k) for k in CLI_KEYS}
        out["excluded_models"] = list(self.excluded_models)
        return out
