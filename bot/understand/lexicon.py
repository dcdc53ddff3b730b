"""bot/catalog/aliases.toml compiled once into one scanner regex plus value tables.

The scanner is a single alternation of named groups, one per kind of phrase (model, tier,
preference, task cue, parameter, filler), tried in that order at each position, leftmost
first. Model aliases are compiled as a character trie so that the scan costs about the same
with 10 or 500 aliases, and the longest alias wins.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from bot.catalog import CATALOG_DIR, Catalog, ModelInfo, load_catalog
from bot.ima.types import TASK_TYPES
from bot.understand.numbers import CHINESE_NUMERAL, english_number_pattern
from bot.understand.scanner import Scanner

ALIASES_PATH = CATALOG_DIR / "aliases.toml"
INTENTS_PATH = CATALOG_DIR / "intents.toml"

# A latin word boundary only where it matters: before a match that starts with a letter or
# digit, the previous character must not be one (and likewise at the end). CJK next to latin
# ("4k竖屏", "用kling") needs no space.
B_START = r"(?:(?<![a-z0-9])|(?![a-z0-9]))"
B_END = r"(?:(?![a-z0-9])|(?<![a-z0-9]))"

# Glue between the characters of a model alias (see the header of aliases.toml).
_SEP = r"[\s\-_.]*"
_DOT = r"(?:\s*[.点]\s*|[\-_]|)"
_CANON_DROP = re.compile(r"[\s\-_.点]+")

# Scanner groups in priority order; DETECT kinds mark a cue but are left in the prompt.
TASK_CUES = ("first_last", "first_frame", "animate", "reference")
DETECT = frozenset(f"{c}_d" for c in TASK_CUES)


def canonical(alias: str) -> str:
    """The lookup form of a model alias: no spaces, dashes, underscores or dots."""
    return _CANON_DROP.sub("", alias)


def _klass(ch: str) -> str:
    if "a" <= ch <= "z":
        return "l"
    if ch.isdigit():
        return "d"
    return "c"


def _atoms(alias: str) -> list[tuple[str, str]]:
    """(glue, char) pairs: the regex allowed before each character of the alias."""
    out: list[tuple[str, str]] = []
    prev: str | None = None
    sep = dot = False
    for ch in alias:
        if ch in " -_":
            sep = True
            continue
        if ch == ".":
            dot = True
            continue
        if prev is None:
            glue = ""
        elif prev.isdigit() and ch.isdigit():
            glue = _DOT if (sep or dot) else ""
        elif sep or dot or _klass(prev) != _klass(ch):
            glue = _SEP
        else:
            glue = ""
        out.append((glue, ch))
        prev, sep, dot = ch, False, False
    return out


def _merge_glue(a: str, b: str) -> str:
    """The glue that allows what both allow ("" < dot glue < separator glue)."""
    if a == b:
        return a
    if "" in (a, b):
        return b or a
    return f"(?:{_SEP}|{_DOT})"


@dataclass
class _Node:
    children: dict[str, tuple[str, _Node]] = field(default_factory=dict)  # char -> (glue, node)
    terminal: bool = False


def _trie_regex(aliases: list[str]) -> str:
    """One regex for literal aliases, branching by character so the longest alias wins."""
    root = _Node()
    for alias in aliases:
        node = root
        for glue, ch in _atoms(alias):
            old_glue, child = node.children.get(ch, (glue, _Node()))
            node.children[ch] = (_merge_glue(old_glue, glue), child)
            node = child
        node.terminal = True

    def emit(node: _Node) -> str:
        alts = [glue + re.escape(ch) + emit(child) for ch, (glue, child) in node.children.items()]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        # Greedy optional: the longer alias is tried first, the shorter one is the fallback.
        return f"(?:{body})?" if node.terminal else body

    return emit(root)


def _alt(patterns: list[str]) -> str:
    return "(?:" + "|".join(f"(?:{p})" for p in patterns) + ")"


@dataclass(frozen=True)
class Lexicon:
    """Everything the parser needs, compiled."""

    catalog: Catalog
    models: dict[str, ModelInfo]  # key -> model (Catalog.get cannot hash its dict fields)
    scanner: Scanner
    model_keys: dict[str, str]  # canonical alias -> catalog key
    siblings: dict[str, tuple[str, ...]]
    closest: dict[str, tuple[str, ...]]
    number_words: dict[str, int]
    duration_phrases: tuple[tuple[re.Pattern[str], int], ...]
    duration_detail: re.Pattern[str]
    resolution_values: tuple[tuple[str, re.Pattern[str]], ...]
    aspect_values: tuple[tuple[str, re.Pattern[str]], ...]
    aspect_numeric: re.Pattern[str]
    aspect_ratios: frozenset[str]
    dangling: re.Pattern[str]
    edge_start: re.Pattern[str]
    edge_end: re.Pattern[str]
    #: canonical alias of a video model the bot does not offer -> (display name, strict)
    unknown_models: dict[str, tuple[str, bool]] = field(default_factory=dict)


def _unknown_models(data: dict[str, Any], known: dict[str, str]) -> dict[str, tuple[str, bool]]:
    """canonical alias -> (display name, strict) for models named in intents.toml's
    [unknown_models]; an alias of an offered model there is a mistake in the data."""
    out: dict[str, tuple[str, bool]] = {}
    for table, strict in (("names", False), ("strict", True)):
        for name, aliases in data.get("unknown_models", {}).get(table, {}).items():
            for alias in aliases:
                canon = canonical(alias.lower())
                if canon in known:
                    raise ValueError(f"intents.toml: {alias!r} is an offered model ({known[canon]})")
                out[canon] = (name, strict)
    return out


def _model_aliases(data: dict[str, Any], catalog: Catalog) -> dict[str, str]:
    """canonical alias -> key: listed aliases first, then catalog keys, names and unique ids."""
    keys: dict[str, str] = {}
    known = {m.key for m in catalog.models}
    for key, aliases in list(data["models"].items()) + list(data.get("strict_models", {}).items()):
        if key not in known:
            raise ValueError(f"aliases.toml: unknown model key {key!r}")
        for alias in aliases:
            canon = canonical(alias.lower())
            if keys.get(canon, key) != key:
                raise ValueError(f"aliases.toml: {alias!r} names both {keys[canon]} and {key}")
            keys[canon] = key
    id_owners: dict[str, set[str]] = {}
    for m in catalog.models:
        for mid in m.ids.values():
            id_owners.setdefault(canonical(mid.lower()), set()).add(m.key)
    for m in catalog.models:
        auto = [m.key, m.name] + ([m.version] if m.version else []) + list(m.ids.values())
        for alias in auto:
            canon = canonical(alias.lower())
            owners = id_owners.get(canon, {m.key})
            if canon not in keys and owners == {m.key}:
                keys[canon] = m.key
    return keys


def _alias_spellings(data: dict[str, Any], catalog: Catalog) -> list[str]:
    spellings = [a.lower() for aliases in data["models"].values() for a in aliases]
    for m in catalog.models:
        spellings += [m.key.lower(), m.name.lower(), *(v.lower() for v in m.ids.values())]
    return spellings


def _duration(
    d: dict[str, Any], number: str
) -> tuple[str, re.Pattern[str], tuple[tuple[re.Pattern[str], int], ...]]:
    sec, mnt, rng = d["seconds"], d["minutes"], d["range"]
    # up to seven digits: "99999秒" is read (and fitted to the model, said in the notice), not
    # left in the prompt
    num = rf"(?:(?<![\d.])\d{{1,7}}(?:\.\d+)?|{CHINESE_NUMERAL}|{number})"
    unit_end = r"(?![a-z])"
    amount = (
        rf"{num}\s*(?:{rng}\s*{num}\s*)?[\s-]*"
        rf"(?:{mnt}{unit_end}(?:\s*(?:半钟?|{num}[\s-]*(?:{sec}{unit_end})?))?|{sec}{unit_end})"
    )
    phrases = [(p, int(v)) for v, ps in d["phrases"].items() for p in ps]
    bare = rf"{d['bare']}(?<![\d.])\d{{1,3}}(?![\d.])"
    scan = rf"{d['before']}(?:{_alt([p for p, _ in phrases])}|{amount}|{bare}){d['after']}"
    detail = re.compile(
        rf"(?P<a>{num})(?:\s*{rng}\s*(?P<b>{num}))?[\s-]*"
        rf"(?:(?P<min>{mnt}){unit_end}(?:\s*(?:(?P<half>半)|(?P<c>{num})))?|{sec}{unit_end}|$)"
    )
    compiled = tuple((re.compile(rf"{B_START}(?:{p}){B_END}"), v) for p, v in phrases)
    return scan, detail, compiled


def _model_alternatives(data: dict[str, Any], catalog: Catalog) -> list[str]:
    """The scanner's model phrases: one trie per first character, plus the strict aliases."""
    strict = data["strict"]
    strict_aliases = [a for aliases in data.get("strict_models", {}).values() for a in aliases]
    after = "|".join(f"(?<={re.escape(w)})" for w in strict["after"])
    strict_re = (
        f"(?:{after})(?:{'|'.join(map(re.escape, strict_aliases))}){strict['before']}"
        if strict_aliases
        else None
    )
    not_after = f"(?<![{re.escape(data['not_after']['chars'])}])"
    by_first: dict[str, list[str]] = {}
    for alias in _alias_spellings(data, catalog):
        atoms = _atoms(alias)
        if atoms:
            by_first.setdefault(atoms[0][1], []).append(alias)
    model_alts = [not_after + _trie_regex(sorted(set(a))) for a in by_first.values()]
    if strict_re:
        model_alts.append(not_after + strict_re)
    return model_alts


def _resolution_tables(res: dict[str, Any]) -> tuple[list[str], tuple[tuple[str, re.Pattern[str]], ...]]:
    """The scanner's resolution phrases and, per value, the pattern that reads it."""
    res_values = {k: v for k, v in res.items() if k not in ("before", "after", "bare")}
    bare_res = {k: v for k, v in res["bare"].items()}
    res_prefix = r"(?:分辨率|清晰度|resolution)\s*(?:为|是|用|要|:|=|of|at)?\s*"
    res_scan = [
        rf"{res['before']}{B_START}{_alt([p for ps in res_values.values() for p in ps])}{B_END}{res['after']}",
        rf"{res_prefix}(?:{'|'.join(bare_res.values())})(?![\d.])",
    ]
    resolution_values = tuple(
        (
            value,
            re.compile(
                rf"{B_START}{_alt(list(ps) + ([bare_res[value]] if value in bare_res else []))}{B_END}"
            ),
        )
        for value, ps in res_values.items()
    )
    return res_scan, resolution_values


def _aspect_tables(
    ar: dict[str, Any],
) -> tuple[str, tuple[tuple[str, re.Pattern[str]], ...], re.Pattern[str], list[str]]:
    """The scanner's ratio phrase, per ratio the pattern that reads it, the numeric form, the ratios."""
    ratios: list[str] = list(ar["ratios"])
    numeric = "|".join(
        rf"(?<![\d.]){a}{ar['separators']}{b}(?![\d.])" for a, b in (r.split(":") for r in ratios)
    )
    guards = ar["guards"]
    ar_words: dict[str, list[str]] = {r: list(ar.get(r, [])) for r in ratios}
    word_parts: list[str] = []
    if any(ar_words.values()):
        word_parts.append(f"{B_START}{_alt([p for ps in ar_words.values() for p in ps])}{B_END}")
    for lang in ("en", "zh"):
        table: dict[str, list[str]] = ar.get(f"guarded_{lang}", {})
        if any(table.values()):
            before, after = guards.get(f"{lang}_before", ""), guards.get(f"{lang}_after", "")
            words_re = f"{B_START}{_alt([p for ps in table.values() for p in ps])}{B_END}"
            word_parts.append(f"{before}{words_re}{after}")
            if f"{lang}_format_after" in guards:
                word_parts.append(f"{words_re}{guards[f'{lang}_format_after']}")
        for r, ps in table.items():
            ar_words.setdefault(r, []).extend(ps)
    ar_scan = rf"{ar['before']}(?:{numeric}" + "".join(f"|{w}" for w in word_parts) + rf"){ar['after']}"
    aspect_values = tuple((r, re.compile(rf"{B_START}{_alt(ps)}{B_END}")) for r, ps in ar_words.items() if ps)
    aspect_numeric = re.compile(rf"(\d+){ar['separators']}(\d+)")
    return ar_scan, aspect_values, aspect_numeric, ratios


def _check_groups(groups: list[tuple[str, list[str]]]) -> None:
    """Phrases must use (?:...) groups only and never match the empty string."""
    for name, alts in groups:
        for alt in alts:
            if re.compile(alt).groups:
                raise ValueError(f"aliases.toml: use (?:...) groups only in {name} phrase {alt!r}")
            if re.fullmatch(alt, ""):
                raise ValueError(f"aliases.toml: a {name} phrase matches the empty string: {alt!r}")


@cache
def load_lexicon(path: Path = ALIASES_PATH) -> Lexicon:
    """Load and compile aliases.toml against the model catalog (once per process)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    catalog = load_catalog()
    model_keys = _model_aliases(data, catalog)

    model_alts = _model_alternatives(data, catalog)
    intents = tomllib.loads(INTENTS_PATH.read_text(encoding="utf-8"))
    unknown = _unknown_models(intents, model_keys)
    unknown_spellings = sorted(
        {
            a.lower()
            for table in intents.get("unknown_models", {}).values()
            for aliases in table.values()
            for a in aliases
        }
    )

    words = {k: int(v) for k, v in data["duration"]["numbers"].items()}
    number = english_number_pattern(words)
    duration_scan, duration_detail, duration_phrases = _duration(data["duration"], number)

    res_scan, resolution_values = _resolution_tables(data["resolution"])

    ar_scan, aspect_values, aspect_numeric, ratios = _aspect_tables(data["aspect_ratio"])

    pref = data["preference"]
    tiers = data["tiers"]
    task = data["task"]
    groups: list[tuple[str, list[str]]] = [
        ("model", model_alts),
        ("unknown_model", [_trie_regex(unknown_spellings)]),
        ("budget", list(tiers["budget"])),
        ("premium", list(tiers["premium"])),
        ("clear", list(pref["clear"])),
        ("once", list(data["once"]["phrases"])),
        *((kind, list(phrases)) for kind, phrases in data["controls"].items()),
        ("negate", list(data["negation"]["before"])),
    ]
    groups += [(cue, list(task[cue]["remove"])) for cue in TASK_CUES if task[cue]["remove"]]
    groups += [
        ("duration", [duration_scan]),
        ("resolution", res_scan),
        ("aspect", [ar_scan]),
        ("choose", list(pref["choose"])),
        ("after_model", list(pref["after_model"])),
        ("filler", list(data["filler"]["phrases"])),
    ]
    groups += [(f"{cue}_d", list(task[cue]["detect"])) for cue in TASK_CUES if task[cue]["detect"]]
    _check_groups(groups)
    scanner = Scanner(groups, B_START, B_END)

    siblings = {k: tuple(v) for k, v in data.get("siblings", {}).items()}
    closest = {k: tuple(v) for k, v in data["closest"].items()}
    if set(closest) != set(TASK_TYPES):
        raise ValueError("aliases.toml: [closest] needs every task type")
    filler = data["filler"]
    return Lexicon(
        catalog=catalog,
        models={m.key: m for m in catalog.models},
        scanner=scanner,
        model_keys=model_keys,
        siblings=siblings,
        closest=closest,
        number_words=words,
        duration_phrases=duration_phrases,
        duration_detail=duration_detail,
        resolution_values=resolution_values,
        aspect_values=aspect_values,
        aspect_numeric=aspect_numeric,
        aspect_ratios=frozenset(ratios),
        dangling=re.compile(filler["dangling"]),
        edge_start=re.compile(filler["edge_words_start"], re.IGNORECASE),
        edge_end=re.compile(filler["edge_words_end"], re.IGNORECASE),
        unknown_models=unknown,
    )
