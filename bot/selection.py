"""Which model runs a job, and which two to suggest when one fails.

The catalog says what a model is called and how long it takes; the live product list says
whether it is offered for a task type today and what it costs. An `Offer` joins the two.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.catalog import Catalog, ModelInfo
from bot.fitting import RESOLUTION_LADDER, offered_durations
from bot.ima.types import Product
from bot.ima.values import same


@dataclass(frozen=True)
class Offer:
    """A catalog model offered as a product for one task type."""

    model: ModelInfo
    product: Product

    @property
    def key(self) -> str:
        return self.model.key

    @property
    def name(self) -> str:
        return self.model.name or self.product.name

    @property
    def min_points(self) -> int:
        return min((r.points for r in self.product.credit_rules), default=0)

    @property
    def max_points(self) -> int:
        return max((r.points for r in self.product.credit_rules), default=0)

    def can_do(self, duration: int | None, resolution: str | None) -> bool:
        """True when the product offers at least the asked duration and that resolution."""
        if duration is not None:
            durations = offered_durations(self.product)
            if durations and durations[-1] < duration:
                return False
        if resolution is not None:
            # a model with no resolution to choose cannot promise the one asked for
            if not any(same(r, resolution) for r in self.product.options("resolution")):
                return False
        return True


def offers_from(catalog: Catalog, task_type: str, products: Iterable[Product]) -> list[Offer]:
    """Join live product leaves to catalog models (unknown products still count, with defaults)."""
    out: list[Offer] = []
    seen: set[str] = set()
    for p in products:
        model = catalog.by_id(p.model_id, task_type, p.name) or catalog.by_name(p.name)
        if model is None:
            u = catalog.unknown
            model = ModelInfo(
                key=f"{p.model_id}:{p.name}",
                name=p.name,
                est_min=u.est_min,
                est_max=u.est_max,
                progress_every=u.progress_every,
                ids={task_type: p.model_id},
                version=p.name,
            )
        if model.key in seen:
            continue
        seen.add(model.key)
        out.append(Offer(model, p))
    return out


def find(offers: list[Offer], key: str | None) -> Offer | None:
    return next((o for o in offers if o.key == key), None) if key else None


def recommend(
    catalog: Catalog, task_type: str, offers: list[Offer], duration: int | None, resolution: str | None
) -> Offer | None:
    """The default model when it can do what was asked, else the first in the recommended
    order that can (4K → Veo 3.1, 15 s → Wan 2.6, ...), else the first offered."""
    order = [catalog.defaults[task_type], *catalog.recommend_order.get(task_type, ())]
    available = [o for k in dict.fromkeys(order) if (o := find(offers, k)) is not None]
    # more than anyone offers ("8K"): the model that comes closest, one rung down at a time
    for res in _from(resolution):
        for offer in available:
            if offer.can_do(duration, res):
                return offer
    return available[0] if available else (offers[0] if offers else None)


def _from(resolution: str | None) -> list[str | None]:
    """`resolution`, then every lower rung of the ladder (just [None] when none was asked)."""
    if resolution is None or resolution.upper() not in RESOLUTION_LADDER:
        return [resolution]
    at = RESOLUTION_LADDER.index(resolution.upper())
    return [resolution, *reversed(RESOLUTION_LADDER[:at])]


def alternatives(
    catalog: Catalog, task_type: str, offers: list[Offer], failed_key: str | None, kind: str, count: int = 2
) -> list[Offer]:
    """Two models to suggest after a failure: the reference's fallback table first (by failure
    kind, then by model), skipping what is not offered today, then the recommended order."""
    order = [
        *catalog.fallbacks_by_kind.get(kind, ()),
        *catalog.fallbacks.get(failed_key or "", ()),
        *catalog.fallbacks.get("any", ()),
        catalog.defaults[task_type],
        *catalog.recommend_order.get(task_type, ()),
    ]
    out: list[Offer] = []
    for key in dict.fromkeys(order):
        if key == failed_key:
            continue
        offer = find(offers, key)
        if offer is not None:
            out.append(offer)
        if len(out) == count:
            break
    return out


def cheapest(offers: list[Offer], exclude: str | None = None) -> Offer | None:
    pool = [o for o in offers if o.key != exclude and o.product.credit_rules]
    return min(pool, key=lambda o: o.min_points) if pool else None
