"""A leftmost-first scanner over many phrase patterns, dispatched on the first character.

One alternation of every phrase is correct but slow in Python's `re` (each position tries
every phrase). Here each phrase's possible first characters are read from its parsed regex,
and each starting character gets its own alternation holding only the phrases that can
start with it, in the same priority order — so the result equals that of the single
alternation, found at a fraction of the cost.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

# The standard library's own regex parser reads each phrase (typeshed does not describe it).
C: Any = importlib.import_module("re._constants")
P: Any = importlib.import_module("re._parser")

_DIGIT = "digit"
_SPACE = "space"
_MAX_RANGE = 4096
_CACHE_LIMIT = 20_000


class _Anything(Exception):
    """A pattern can start with any character (or one the analysis does not follow)."""


def _first_of_class(items: list[tuple[Any, Any]]) -> set[str]:
    out: set[str] = set()
    for op, av in items:
        if op is C.LITERAL:
            out.add(chr(av))
        elif op is C.RANGE:
            lo, hi = av
            if hi - lo > _MAX_RANGE:
                raise _Anything
            out.update(chr(i) for i in range(lo, hi + 1))
        elif op is C.CATEGORY and av is C.CATEGORY_DIGIT:
            out.add(_DIGIT)
        elif op is C.CATEGORY and av is C.CATEGORY_SPACE:
            out.add(_SPACE)
        else:
            raise _Anything
    return out


def _first_seq(items: list[tuple[Any, Any]]) -> tuple[set[str], bool]:
    out: set[str] = set()
    for op, av in items:
        first, nullable = _first_item(op, av)
        out |= first
        if not nullable:
            return out, False
    return out, True


def _first_item(op: Any, av: Any) -> tuple[set[str], bool]:
    if op is C.LITERAL:
        return {chr(av)}, False
    if op is C.IN:
        return _first_of_class(list(av)), False
    if op is C.BRANCH:
        out: set[str] = set()
        nullable = False
        for branch in av[1]:
            first, n = _first_seq(list(branch))
            out |= first
            nullable = nullable or n
        return out, nullable
    if op is C.SUBPATTERN:
        return _first_seq(list(av[3]))
    if op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT):
        lo, _hi, body = av
        first, nullable = _first_seq(list(body))
        return first, nullable or lo == 0
    if op in (C.ASSERT, C.ASSERT_NOT, C.AT):
        return set(), True
    raise _Anything


def first_chars(pattern: str) -> set[str] | None:
    """Characters a match of `pattern` can start with ("digit"/"space" for \\d/\\s); None: any."""
    try:
        first, nullable = _first_seq(list(P.parse(pattern)))
    except _Anything:
        return None
    return None if nullable else first


class Scanner:
    """Finds (kind, start, end) phrases, leftmost first, kinds tried in the given order."""

    def __init__(self, groups: list[tuple[str, list[str]]], start: str, end: str) -> None:
        self._start, self._end = start, end
        self._groups: list[tuple[str, list[tuple[str, set[str] | None]]]] = [
            (name, [(alt, first_chars(alt)) for alt in alts]) for name, alts in groups
        ]
        keys: set[str] = set()
        self._any = False
        for _, alts in self._groups:
            for _, first in alts:
                if first is None:
                    self._any = True
                else:
                    keys |= first
        self._keys = frozenset(keys)
        explicit = "".join(re.escape(k) for k in sorted(keys - {_DIGIT, _SPACE}))
        extra = (r"\d" if _DIGIT in keys else "") + (r"\s" if _SPACE in keys else "")
        trigger = r"[\s\S]" if self._any else f"[{explicit}{extra}]"
        # the character first: it rules out most positions before the boundary test runs
        self._trigger = re.compile(f"(?={trigger}){start}")
        self._by_key: dict[str, re.Pattern[str] | None] = {}

    def full_pattern(self) -> re.Pattern[str]:
        """The single alternation this scanner is equivalent to (for tests)."""
        return re.compile(self._compose(lambda first: True))

    def _compose(self, keep: Any) -> str:
        parts = []
        for name, alts in self._groups:
            chosen = [alt for alt, first in alts if first is None or keep(first)]
            if chosen:
                body = "|".join(f"(?:{a})" for a in chosen)
                parts.append(f"(?P<{name}>{self._start}(?:{body}){self._end})")
        return "|".join(parts)

    def _for(self, ch: str) -> re.Pattern[str] | None:
        if ch in self._by_key:
            return self._by_key[ch]
        digit, space = ch.isdigit(), ch.isspace()

        def keep(first: set[str]) -> bool:
            return ch in first or (digit and _DIGIT in first) or (space and _SPACE in first)

        body = self._compose(keep)
        pattern = re.compile(body) if body else None
        if len(self._by_key) < _CACHE_LIMIT:
            self._by_key[ch] = pattern
        return pattern

    def scan(self, text: str) -> list[tuple[str, int, int]]:
        """Every phrase found, in order, non-overlapping (like finditer on full_pattern())."""
        return self._phrases(text, 0, every=True)

    def first(self, text: str, pos: int = 0) -> tuple[str, int, int] | None:
        """The leftmost phrase at or after `pos` (like full_pattern().search(text, pos)), or None."""
        found = self._phrases(text, pos, every=False)
        return found[0] if found else None

    def whole(self, text: str) -> str | None:
        """The kind of the phrase that is all of `text` (like full_pattern().fullmatch), or None."""
        pattern = self._for(text[0]) if text else None
        m = pattern.fullmatch(text) if pattern is not None else None
        return m.lastgroup if m is not None else None

    def _phrases(self, text: str, pos: int, *, every: bool) -> list[tuple[str, int, int]]:
        out: list[tuple[str, int, int]] = []
        trigger = self._trigger.search
        by_key = self._by_key
        size = len(text)
        while pos < size:
            hit = trigger(text, pos)
            if hit is None:
                break
            at = hit.start()
            ch = text[at]
            pattern = by_key[ch] if ch in by_key else self._for(ch)
            m = pattern.match(text, at) if pattern is not None else None
            if m is not None and m.end() > at and m.lastgroup is not None:
                out.append((m.lastgroup, at, m.end()))
                if not every:
                    break
                pos = m.end()
            elif ch.isspace():
                # Inside a run of whitespace every attempt would re-read the run (O(run²) for
                # 20,000 newlines): after its first position, try only its last one, where a
                # phrase that takes exactly one space before a word can still begin.
                end = at + 1
                while end < size and text[end].isspace():
                    end += 1
                pos = max(at + 1, end - 1)
                if pos == end - 1 and pos > at:
                    last = self._for(text[pos])
                    m = last.match(text, pos) if last is not None else None
                    if m is not None and m.end() > pos and m.lastgroup is not None:
                        out.append((m.lastgroup, pos, m.end()))
                        if not every:
                            break
                        pos = m.end()
                    else:
                        pos = end
            else:
                pos = at + 1
        return out


__all__ = ["Scanner", "first_chars"]
