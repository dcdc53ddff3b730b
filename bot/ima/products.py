"""The product list: parsing the V2 tree into Products, and a per-category cache.

Real product lists vary (ids as numbers or strings, options under several names, virtual
form fields), so parsing is liberal; what is sent later is built strictly from the result.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bot.ima.types import CreditRule, FormField, Product
from bot.ima.values import same

log = logging.getLogger(__name__)

#: where a form field may list the values it offers
_OPTION_KEYS = ("options", "value_list", "values", "enum", "option_list", "choices", "items")
#: where a product list may keep its top-level nodes when `data` is an object
_LIST_KEYS = ("list", "items", "children", "data", "products", "nodes")


# -- parsing ------------------------------------------------------------------------------------
def parse_product_list(data: Any, category: str) -> list[Product]:
    """Every type=3 leaf of the product tree, wherever it sits, as a Product."""
    out: list[Product] = []
    for node in _walk(_top_nodes(data)):
        if str(node.get("type", "")).strip() != "3":
            continue
        product = parse_leaf(node, category)
        if product is not None:
            out.append(product)
    return out


def _top_nodes(data: Any) -> list[Any]:
    if isinstance(data, list):
        return data
    if isinstance(data, Mapping):
        for key in _LIST_KEYS:
            if isinstance(data.get(key), list):
                return list(data[key])
        return [data]
    return []


def _walk(nodes: list[Any]) -> Iterator[Mapping[str, Any]]:
    stack = list(reversed(nodes))
    while stack:  # iterative: a deep tree cannot exhaust the recursion limit
        node = stack.pop()
        if not isinstance(node, Mapping):
            continue
        yield node
        children = node.get("children")
        if isinstance(children, list):
            stack.extend(reversed(children))


def parse_leaf(node: Mapping[str, Any], category: str) -> Product | None:
    """One version leaf as a Product; None when it lacks what a create request needs."""
    version = _first(node, "id", "model_version", "key")
    model_id = _first(node, "model_id", "modelCodeId", "model_code")
    if version is None or model_id is None:
        log.debug("product leaf without id/model_id skipped")
        return None
    name = _first(node, "name", "model_name", "title") or str(model_id)
    rules = tuple(r for r in (parse_rule(x) for x in node.get("credit_rules") or []) if r is not None)
    fields = tuple(f for f in (parse_field(x) for x in node.get("form_config") or []) if f is not None)
    raw = {k: v for k, v in node.items() if k != "children"}
    return Product(category, str(version), str(model_id), str(name), rules, fields, raw)


def parse_rule(raw: Any) -> CreditRule | None:
    """A credit rule; None when it has no usable attribute id (0 is never sent)."""
    if not isinstance(raw, Mapping):
        return None
    attribute_id = _int(raw.get("attribute_id"))
    if not attribute_id:
        return None
    points = _int(raw.get("points", raw.get("credit"))) or 0
    return CreditRule(attribute_id, points, _attributes(raw.get("attributes")))


def _attributes(raw: Any) -> dict[str, Any]:
    if isinstance(raw, Mapping):
        return {str(k): v for k, v in raw.items()}
    if isinstance(raw, list):  # [{"key": "duration", "value": 5}, ...]
        out: dict[str, Any] = {}
        for item in raw:
            if isinstance(item, Mapping):
                key = item.get("key", item.get("field", item.get("name")))
                if key is not None:
                    out[str(key)] = item.get("value")
        return out
    return {}


def parse_field(raw: Any) -> FormField | None:
    """A form_config entry, with a virtual field's value mapped to the real one."""
    if not isinstance(raw, Mapping):
        return None
    name = _first(raw, "field", "key", "name")
    if name is None:
        return None
    rules = _mapping_rules(raw)
    if rules:
        value = _virtual_value(raw, rules)
        options = _dedupe(r.get("target_value") for r in rules if r.get("target_value") is not None)
    else:
        value = raw.get("value")
        options = ()
    if not options:
        options = _options(raw)
    return FormField(str(name), value, options, dict(raw))


def _mapping_rules(raw: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    mapping = raw.get("value_mapping")
    rules = mapping.get("mapping_rules") if isinstance(mapping, Mapping) else None
    return [r for r in rules or [] if isinstance(r, Mapping)]


def _virtual_value(raw: Mapping[str, Any], rules: list[Mapping[str, Any]]) -> Any:
    """The real value of a virtual field: its ui_params' defaults looked up in the mapping."""
    patch: dict[str, Any] = {}
    for ui in raw.get("ui_params") or []:
        if isinstance(ui, Mapping):
            key = ui.get("field") or ui.get("id")
            if key is not None:
                patch[str(key)] = ui.get("value")
    for rule in rules:
        source = rule.get("source_values")
        if (
            isinstance(source, Mapping)
            and source
            and all(k in patch and same(patch[k], v) for k, v in source.items())
        ):
            return rule.get("target_value")
    return raw.get("value")


def _options(raw: Mapping[str, Any]) -> tuple[Any, ...]:
    places: list[Mapping[str, Any]] = [raw]
    for nested in ("config", "props", "extra"):
        if isinstance(raw.get(nested), Mapping):
            places.append(raw[nested])
    for place in places:
        for key in _OPTION_KEYS:
            entries = place.get(key)
            if isinstance(entries, list) and entries:
                return _dedupe(_option_value(e) for e in entries)
    return ()


def _option_value(entry: Any) -> Any:
    if isinstance(entry, Mapping):
        for key in ("value", "id", "key", "label", "name"):
            if entry.get(key) is not None:
                return entry[key]
        return None
    return entry


def _dedupe(values: Any) -> tuple[Any, ...]:
    out: list[Any] = []
    for v in values:
        if v is not None and not isinstance(v, Mapping | list) and v not in out:
            out.append(v)
    return tuple(out)


def _first(node: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = node.get(key)
        if value is not None and value != "":
            return value
    return None


def _int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


# -- caching ------------------------------------------------------------------------------------
def _spelled(products: list[Product]) -> list[tuple[str, str]]:
    """A list as the service spelled it (a Product is parsed from its raw leaf and category
    alone); type-exact, unlike ==, where True == 1 == 1.0."""
    return [(p.category, json.dumps(p.raw, sort_keys=True, default=repr)) for p in products]


@dataclass
class _Entry:
    products: list[Product]
    expires_at: float


#: how long past its TTL an expired list may still be served while it refreshes (in TTLs)
STALE_FACTOR = 5


class ProductCache:
    """Product lists per category, kept for `ttl_s`, with one fetch in flight per category.

    Concurrent callers share that fetch; a failed fetch is not cached (the next caller retries).
    `invalidate` drops the cache and makes a fetch still in flight not store its answer."""

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[list[Product]]],
        ttl_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl_s
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._inflight: dict[str, asyncio.Task[list[Product]]] = {}
        self._generation: dict[str, int] = {}

    async def get(self, category: str) -> list[Product]:
        """The products of `category`, from the cache when fresh. An expired list is still
        served while a refresh runs in the background (a message never waits for the refetch,
        which queues behind polls), up to STALE_FACTOR times the TTL past its expiry."""
        products = self.at_hand(category)
        if products is not None:
            return products
        return list(await asyncio.shield(self._refresh(category)))

    def at_hand(self, category: str) -> list[Product] | None:
        """What `get` would answer without waiting (starting the refresh of an expired list as
        it does); None when it would have to wait for a fetch."""
        entry = self._entries.get(category)
        now = self._clock()
        if entry is not None and now < entry.expires_at:
            return list(entry.products)
        if entry is not None and now < entry.expires_at + self._ttl * STALE_FACTOR:
            self._refresh(category)
            return list(entry.products)
        return None

    def _refresh(self, category: str) -> asyncio.Task[list[Product]]:
        """The fetch in flight for `category`, started when there is none."""
        task = self._inflight.get(category)
        if task is None:
            task = asyncio.create_task(self._load(category, self._generation.get(category, 0)))
            task.add_done_callback(_consume_exception)
            self._inflight[category] = task
        # callers await it through shield: one giving up must not cancel the fetch others wait for
        return task

    async def _load(self, category: str, generation: int) -> list[Product]:
        try:
            products = await self._fetch(category)
            kept = self._entries.get(category)
            if kept is not None and _spelled(kept.products) == _spelled(products):
                # the same list (the usual refresh): keep its very objects, so what was worked
                # out from them (offers, plans, jobs planned at intake) still holds
                products = kept.products
            if self._generation.get(category, 0) == generation:
                self._entries[category] = _Entry(products, self._clock() + self._ttl)
            return products
        finally:
            if self._inflight.get(category) is asyncio.current_task():
                del self._inflight[category]

    def invalidate(self, category: str | None = None) -> None:
        """Forget one category (or all): the next call fetches again."""
        categories = [category] if category is not None else list({*self._entries, *self._inflight})
        for c in categories:
            self._entries.pop(c, None)
            self._inflight.pop(c, None)
            self._generation[c] = self._generation.get(c, 0) + 1

    async def aclose(self) -> None:
        """Cancel fetches still in flight."""
        tasks = list(self._inflight.values())
        self._inflight.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _consume_exception(task: asyncio.Task[list[Product]]) -> None:
    # every waiter sees the exception; this only keeps asyncio from warning when none is left
    if not task.cancelled():
        task.exception()
