"""Fit what a user asked for to what a product offers: clamp, pick the nearest, and say so."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bot.ima.types import Product
from bot.ima.values import same

#: resolutions from low to high; "nearest" moves along this ladder
RESOLUTION_LADDER: tuple[str, ...] = ("360P", "480P", "540P", "720P", "768P", "1080P", "2K", "4K", "8K")


@dataclass(frozen=True)
class Adjustment:
    """One change made to the user's request; `key` names the locale message (fit.<key>)."""

    key: str
    asked: Any
    value: Any


@dataclass
class Fitted:
    params: dict[str, Any] = field(default_factory=dict)
    adjustments: list[Adjustment] = field(default_factory=list)
    #: the creative controls that were set, by their Request name (for the notice)
    applied: dict[str, Any] = field(default_factory=dict)


#: product fields that carry sound, in the order they are looked for
SOUND_FIELDS = ("sound", "generate_audio")


def sound_field(product: Product) -> str | None:
    """The field through which a product lets you choose sound, if any."""
    return next((f for f in SOUND_FIELDS if settable(product, f)), None)


def _switch(product: Product, name: str, on: bool) -> Any:
    """A yes/no in the product's own spelling: "on"/"off" where it offers those, else a bool."""
    spelled = {str(o).lower() for o in product.options(name)}
    if {"on", "off"} & spelled:
        return "on" if on else "off"
    return on


def fit_controls(product: Product, controls: dict[str, Any], sound_elsewhere: str | None = None) -> Fitted:
    """The creative controls asked for (Request.controls()) that `product` offers; each one it
    does not offer becomes an adjustment the notice reads out. `sound_elsewhere` names a
    model that can do sound, for when this one cannot."""
    out = Fitted()
    for name, asked in controls.items():
        target = sound_field(product) if name == "sound" else (name if settable(product, name) else None)
        if target is None:
            key = f"{name}_fixed"
            if name == "sound":
                key = "sound_fixed" if sound_elsewhere else "sound_fixed_none"
            out.adjustments.append(Adjustment(key, asked, sound_elsewhere if name == "sound" else None))
            continue
        if isinstance(asked, bool):
            value: Any = _switch(product, target, asked)
        elif name == "shot_type":
            value = next((o for o in product.options(target) if same(o, asked)), None)
            if value is None:
                out.adjustments.append(Adjustment("shot_type_fixed", asked, None))
                continue
        else:
            value = asked
        out.params[target] = value
        out.applied[name] = asked
    return out


def _as_int(v: Any) -> int | None:
    try:
        return int(float(str(v).rstrip("sS")))
    except ValueError:
        return None


def durations(offered: tuple[Any, ...]) -> list[int]:
    """Duration options as seconds, ascending, each once ("5", "5s" and 5 alike); unreadable ones left out."""
    return sorted({d for d in (_as_int(o) for o in offered) if d is not None})


def offered_durations(product: Product) -> list[int]:
    """The durations (seconds) a product offers, ascending, each once."""
    return durations(product.options("duration"))


def _res_rank(v: Any) -> int:
    s = str(v).upper()
    if s in RESOLUTION_LADDER:
        return RESOLUTION_LADDER.index(s)
    m = re.match(r"(\d+)", s)
    if m:  # an unlisted "900P": place it by its number
        n = int(m.group(1))
        return min(range(len(RESOLUTION_LADDER)), key=lambda i: abs(_px(RESOLUTION_LADDER[i]) - n))
    return -1


def _px(label: str) -> int:
    return {"2K": 1440, "4K": 2160, "8K": 4320}.get(
        label, int(label.rstrip("P")) if label[:-1].isdigit() else 0
    )


def _ratio(v: Any) -> float | None:
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*$", str(v))
    if not m or float(m.group(2)) == 0:
        return None
    return float(m.group(1)) / float(m.group(2))


def fit_duration(asked: int, offered: tuple[Any, ...]) -> tuple[int, str | None]:
    """The duration to send and the adjustment key, if any."""
    values = durations(offered)
    if not values or asked in values:
        return asked, None
    if asked > values[-1]:
        return values[-1], "duration_clamped"
    if asked < values[0]:
        return values[0], "duration_raised"
    # between two offered values: the nearest, ties to the longer (the user wanted more)
    best = min(values, key=lambda d: (abs(d - asked), -d))
    return best, "duration_nearest"


def fit_resolution(asked: str, offered: tuple[Any, ...]) -> tuple[str, str | None]:
    values = [str(o) for o in offered]
    if not values:
        return asked, None
    for v in values:
        if same(v, asked):
            return v, None
    rank = _res_rank(asked)
    best = min(values, key=lambda v: (abs(_res_rank(v) - rank), -_res_rank(v)))
    return best, "resolution_nearest"


def fit_aspect_ratio(asked: str, offered: tuple[Any, ...]) -> tuple[str, str | None]:
    values = [str(o) for o in offered]
    if not values or asked in values:
        return asked, None
    target = _ratio(asked)
    if target is None:
        return values[0], "aspect_ratio_nearest"
    best = min(values, key=lambda v: abs((_ratio(v) or 0.0) - target))
    return best, "aspect_ratio_nearest"


def settable(product: Product, name: str) -> bool:
    """Whether the product lets anyone choose this parameter at all."""
    return bool(product.options(name)) or any(f.field == name for f in product.form_config)


def fit_request(
    product: Product, duration: int | None, resolution: str | None, aspect_ratio: str | None
) -> Fitted:
    """Requested values fitted to `product`; unstated values are left to form_config defaults.
    A parameter the product has no say in (Kling's resolution) is left out, and said so."""
    out = Fitted()
    for name, asked in (("duration", duration), ("resolution", resolution), ("aspect_ratio", aspect_ratio)):
        if asked is not None and not settable(product, name):
            out.adjustments.append(Adjustment(f"{name}_fixed", asked, None))
    duration = duration if settable(product, "duration") else None
    resolution = resolution if settable(product, "resolution") else None
    aspect_ratio = aspect_ratio if settable(product, "aspect_ratio") else None
    if duration is not None:
        value, key = fit_duration(duration, product.options("duration"))
        out.params["duration"] = value
        if key:
            out.adjustments.append(Adjustment(key, duration, value))
    if resolution is not None:
        res, key = fit_resolution(resolution, product.options("resolution"))
        out.params["resolution"] = res
        if key:
            out.adjustments.append(Adjustment(key, resolution, res))
    if aspect_ratio is not None:
        ar, key = fit_aspect_ratio(aspect_ratio, product.options("aspect_ratio"))
        out.params["aspect_ratio"] = ar
        if key:
            out.adjustments.append(Adjustment(key, aspect_ratio, ar))
    return out


def degrade(product: Product, params: dict[str, Any]) -> tuple[str, Any] | None:
    """One step down after a server error: resolution first (1080P→720P→540P), then duration
    (15→10→5). Returns (parameter, new value), or None when nothing is left to lower."""
    current_res = params.get("resolution")
    if current_res is not None:
        lower = [str(r) for r in product.options("resolution") if _res_rank(r) < _res_rank(current_res)]
        if lower:
            return "resolution", max(lower, key=_res_rank)
    current_dur = _as_int(params.get("duration"))
    if current_dur is not None:
        shorter = [d for d in offered_durations(product) if d < current_dur]
        if shorter:
            return "duration", max(shorter)
    return None
