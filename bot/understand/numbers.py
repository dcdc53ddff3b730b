"""Numbers as people type them: 10, 1.5, 十五, 两, 二十五, ten, twenty-five."""

from __future__ import annotations

import re
from collections.abc import Mapping

_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_CN_UNITS = {"十": 10, "百": 100}

#: at most eight characters: a longer run is not a number anyone types, and an unbounded one
#: made the scanner re-read it at every position ("一" * 310 + "秒")
CHINESE_NUMERAL = "[零〇一二两三四五六七八九十百]{1,8}"
DIGITS = r"\d+(?:\.\d+)?"


def chinese_numeral(text: str) -> int | None:
    """Value of a Chinese numeral below 1000 (十五 -> 15, 二十 -> 20, 两 -> 2), else None."""
    total = 0
    digit: int | None = None
    for ch in text:
        if ch in _CN_DIGITS:
            if digit is not None:  # "一五" style digit strings: read as positional digits
                digit = digit * 10 + _CN_DIGITS[ch]
            else:
                digit = _CN_DIGITS[ch]
        elif ch in _CN_UNITS:
            total += (1 if digit is None else digit) * _CN_UNITS[ch]
            digit = None
        else:
            return None
    if not text:
        return None
    return total + (digit or 0)


def english_number_pattern(words: Mapping[str, int]) -> str:
    """A regex for number words: "ten", "twenty five", "twenty-five"."""
    tens = sorted((w for w, v in words.items() if v >= 20 and v % 10 == 0), key=len, reverse=True)
    ones = sorted((w for w, v in words.items() if 0 < v < 10), key=len, reverse=True)
    alll = sorted(words, key=len, reverse=True)
    compound = f"(?:{'|'.join(tens)})[\\s-]+(?:{'|'.join(ones)})" if tens and ones else None
    parts = ([compound] if compound else []) + alll
    return "(?:" + "|".join(parts) + ")(?![a-z])"


def read_number(text: str, words: Mapping[str, int]) -> float | None:
    """The value of one number in any of the three forms, or None."""
    text = text.strip()
    if not text:
        return None
    if text[0].isdigit():
        try:
            return float(text)
        except ValueError:
            return None
    cn = chinese_numeral(text)
    if cn is not None:
        return float(cn)
    total = 0
    found = False
    for part in re.split(r"[\s-]+", text):
        if part in words:
            total += words[part]
            found = True
        elif part:
            return None
    return float(total) if found else None
