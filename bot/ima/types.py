"""Data shapes of the IMA Open API as the bot uses them."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from bot.ima.values import norm

TASK_TYPES: tuple[str, ...] = (
    "text_to_video",
    "image_to_video",
    "first_last_frame_to_video",
    "reference_image_to_video",
)
#: the longest prompt the service accepts (characters); longer ones are refused before anything is paid
MAX_PROMPT_CHARS = 5000


@dataclass(frozen=True)
class CreditRule:
    """One priced parameter combination of a product version."""

    attribute_id: int
    points: int
    attributes: dict[str, Any] = dc_field(default_factory=dict)
    #: what bot.ima.credit derives from the attributes once (a rule is matched at every plan)
    derived: dict[str, Any] = dc_field(default_factory=dict, init=False, compare=False, repr=False)


@dataclass(frozen=True)
class FormField:
    """One form_config entry: a parameter, its default value and the values it offers."""

    field: str
    value: Any = None
    options: tuple[Any, ...] = ()
    raw: dict[str, Any] = dc_field(default_factory=dict)


@dataclass(frozen=True)
class Product:
    """A type=3 leaf of the product tree: one model version in one category."""

    category: str
    id: str  # model_version
    model_id: str
    name: str  # model_name, e.g. "Pixverse V5.5"
    credit_rules: tuple[CreditRule, ...]
    form_config: tuple[FormField, ...] = ()
    raw: dict[str, Any] = dc_field(default_factory=dict)
    #: options() per parameter name: a product list is fetched once and planned against often
    _options: dict[str, tuple[Any, ...]] = dc_field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def defaults(self) -> dict[str, Any]:
        """form_config defaults (virtual fields already mapped to real ones)."""
        return {f.field: f.value for f in self.form_config if f.value is not None}

    def options(self, name: str) -> tuple[Any, ...]:
        """Values the product offers for a parameter, from form_config and its credit rules."""
        known = self._options.get(name)
        if known is None:
            known = self._options[name] = self._offered(name)
        return known

    def _offered(self, name: str) -> tuple[Any, ...]:
        values = [o for f in self.form_config if f.field == name for o in f.options]
        values += [r.attributes[name] for r in self.credit_rules if name in r.attributes]
        # form_config and rules spell values differently (5 / "5s", "720p" / "720P"): keep the
        # first spelling, compared the way the service compares them
        unique: dict[str, Any] = {}
        for v in values:
            unique.setdefault(norm(v), v)
        return tuple(unique.values())


@dataclass(frozen=True)
class TaskSpec:
    """Everything needed to create one task."""

    task_type: str
    product: Product
    rule: CreditRule
    prompt: str
    parameters: dict[str, Any]  # duration, resolution, aspect_ratio, ... already fitted
    image_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskResult:
    """A poll answer. `state` is "running", "done" or "failed"."""

    task_id: str
    state: str
    url: str | None = None
    cover: str | None = None
    duration_s: float | None = None
    error: str | None = None
