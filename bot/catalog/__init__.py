"""Model facts as data: bot/catalog/models.toml, loaded once."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from bot.ima.types import TASK_TYPES

CATALOG_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ModelInfo:
    """What the bot knows of a model before asking the product list."""

    key: str
    name: str
    est_min: int
    est_max: int
    progress_every: int
    ids: dict[str, str] = field(default_factory=dict)  # task_type -> model_id
    version: str | None = None  # product leaf name when several versions share a model_id

    def model_id(self, task_type: str) -> str | None:
        return self.ids.get(task_type)

    def supports(self, task_type: str) -> bool:
        return task_type in self.ids


@dataclass(frozen=True, eq=False)  # hashed by identity: it is cached per instance
class Catalog:
    models: tuple[ModelInfo, ...]
    unknown: ModelInfo
    defaults: dict[str, str]
    budget: dict[str, str]
    premium: dict[str, str]
    recommend_order: dict[str, tuple[str, ...]]
    fallbacks: dict[str, tuple[str, ...]]
    fallbacks_by_kind: dict[str, tuple[str, ...]]
    default_prompts: dict[str, str] = field(default_factory=dict)

    def get(self, key: str) -> ModelInfo | None:
        return _index(self).get(key)

    def by_id(self, model_id: str, task_type: str | None = None, name: str | None = None) -> ModelInfo | None:
        """The catalog model for a model_id (and, for shared ids like pixverse, a version name)."""
        hits = _ids(self).get((task_type, model_id.lower()), ())
        if name is not None:
            named = [m for m in hits if (m.version or m.name).lower() == name.lower()]
            if named:
                return named[0]
            by_name = self.by_name(name)
            if by_name is not None:
                return by_name
        return hits[0] if hits else None

    def by_name(self, name: str) -> ModelInfo | None:
        low = name.strip().lower()
        for m in self.models:
            if m.name.lower() == low or (m.version or "").lower() == low:
                return m
        return None

    def for_task(self, task_type: str) -> list[ModelInfo]:
        return [m for m in self.models if m.supports(task_type)]


@cache
def _index(catalog: Catalog) -> dict[str, ModelInfo]:
    return {m.key: m for m in catalog.models}


@cache
def _ids(catalog: Catalog) -> dict[tuple[str | None, str], tuple[ModelInfo, ...]]:
    """(task type or None for any, lower-case model_id) -> the models with it, in catalog order
    (every product of every list is looked up here: a scan per lookup was a tenth of a burst)."""
    found: dict[tuple[str | None, str], list[ModelInfo]] = {}
    for m in catalog.models:
        for task_type, model_id in m.ids.items():
            for key in ((task_type, model_id.lower()), (None, model_id.lower())):
                if m not in found.setdefault(key, []):
                    found[key].append(m)
    return {k: tuple(v) for k, v in found.items()}


@cache
def load_catalog(path: Path = CATALOG_DIR / "models.toml") -> Catalog:
    """Load and check the model catalog (cached: it is read once per process)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    models = tuple(
        ModelInfo(
            key=m["key"],
            name=m["name"],
            est_min=int(m["est"][0]),
            est_max=int(m["est"][1]),
            progress_every=int(m["progress_every"]),
            ids=dict(m.get("ids", {})),
            version=m.get("version"),
        )
        for m in data["model"]
    )
    u = data["unknown_model"]
    unknown = ModelInfo("unknown", "", int(u["est"][0]), int(u["est"][1]), int(u["progress_every"]))
    keys = {m.key for m in models}

    def table(name: str) -> dict[str, str]:
        t = {k: str(v) for k, v in data[name].items()}
        bad = [v for v in t.values() if v not in keys]
        if bad or set(t) != set(TASK_TYPES):
            raise ValueError(f"catalog [{name}] must name a known model for every task type: {bad}")
        return t

    def lists(name: str) -> dict[str, tuple[str, ...]]:
        t = {k: tuple(v) for k, v in data[name].items()}
        bad = [x for v in t.values() for x in v if x not in keys]
        if bad:
            raise ValueError(f"catalog [{name}] names unknown models: {bad}")
        return t

    return Catalog(
        models=models,
        unknown=unknown,
        defaults=table("defaults"),
        budget=table("budget"),
        premium=table("premium"),
        recommend_order=lists("recommend_order"),
        fallbacks=lists("fallbacks"),
        fallbacks_by_kind=lists("fallbacks_by_kind"),
        default_prompts={k: str(v) for k, v in data.get("default_prompts", {}).items()},
    )
