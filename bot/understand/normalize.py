"""Fold a message to the form the phrase tables are written in, one character for one.

Lower case, full-width ASCII to half-width, Traditional Chinese to Simplified. The result has
exactly the length of the input, so a span found in the folded text is the same span in the
original: the prompt is cut from what the user typed, not from the folded copy.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

# Ideographic space and the one character whose lower case is two characters long.
_SPECIAL = {0x3000: " ", 0x0130: "i", 0x3002: "。"}


def _opencc_dictionary() -> Path | None:
    try:
        import opencc
    except ImportError:  # pragma: no cover - the package is a dependency
        return None
    path = Path(opencc.__file__).resolve().parent / "dictionary" / "TSCharacters.txt"
    return path if path.is_file() else None


def _t2s_pairs() -> dict[int, str]:
    """Single-character Traditional -> Simplified pairs of OpenCC's t2s character table.

    OpenCC's converter costs ~50 µs per short message; a per-character table used through
    str.translate costs ~1 µs. Phrase-level conversions (a handful of multi-character words)
    do not matter for matching model names and parameter words.
    """
    path = _opencc_dictionary()
    pairs: dict[int, str] = {}
    if path is None:  # pragma: no cover
        return pairs
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        trad, simp = parts[0], parts[1].split(" ")[0]
        if len(trad) == 1 and len(simp) == 1:
            pairs[ord(trad)] = simp
    return pairs


@cache
def _table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in range(0xFF01, 0xFF5F):  # full-width ASCII block
        table[code] = chr(code - 0xFEE0)
    table.update({k: v for k, v in _t2s_pairs().items()})
    table.update(_SPECIAL)
    # Lower-case after folding in one table where it is cheap (ASCII and full-width letters).
    return {k: v.lower() if len(v.lower()) == 1 else v for k, v in table.items()}


def fold(text: str) -> str:
    """The normalized form of `text`: same length, lower case, half-width, Simplified."""
    return text.translate(_table()).lower()


@cache
def _traditional_only() -> frozenset[str]:
    """Characters written only in Traditional Chinese (those OpenCC's t2s table changes)."""
    return frozenset(chr(k) for k, v in _t2s_pairs().items() if v != chr(k))


def is_traditional(text: str) -> bool:
    """True when the text uses Traditional Chinese characters (to answer in that script)."""
    return not _traditional_only().isdisjoint(text)
