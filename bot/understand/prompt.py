"""Cut the description out of a message once the recognized phrases are known."""

from __future__ import annotations

import re

from bot.understand.lexicon import Lexicon

_PUNCT = ",，。;；:：、!！?？"
_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(rf"\s+([{_PUNCT}])")
_PUNCT_RUN = re.compile(rf"([{_PUNCT}])(?:\s*[{_PUNCT}])+")
_EDGE_PUNCT = "\t\n\r\f\v ,，。.;；:：、!！?？~～-—_·…"
#: quote marks leave an edge only when their partner is not in the prompt (a quote is the user's)
_QUOTES = {
    '"': '"',
    "'": "'",
    "“": "”",
    "”": "“",
    "‘": "’",
    "’": "‘",
    "「": "」",
    "」": "「",
    "『": "』",
    "』": "『",
}
#: brackets a removed phrase left empty: "a dog (not sora please)" -> "a dog"
_EMPTY_BRACKETS = re.compile(r"\s*(?:\(\s*\)|（\s*）|\[\s*\]|【\s*】)")
_CLOSING_BRACKETS = frozenset(")）]】")
_PUNCT_CHARS = frozenset(_PUNCT)
_WORD = re.compile(r"[A-Za-z0-9]")
_MAX_ROUNDS = 4
_EDGE_TAIL = 24


def _trim_dangling(seg: str, folded: str, lx: Lexicon) -> str:
    """Drop the leftovers of a removed phrase at the end of `seg` ("a", "in", "一段", "的")."""
    for _ in range(_MAX_ROUNDS):
        m = lx.dangling.search(folded)
        if m is None or m.start() == len(folded):
            break
        seg, folded = seg[: m.start()], folded[: m.start()]
    return seg


def _balanced(text: str, mark: str) -> bool:
    partner = _QUOTES[mark]
    if partner == mark:
        return text.count(mark) % 2 == 0
    return text.count(mark) == text.count(partner)


def _strip_lone_quotes(text: str) -> str:
    """Drop a quote mark at either end whose partner is missing."""
    if text and text[0] in _QUOTES and not _balanced(text, text[0]):
        text = text[1:]
    if text and text[-1] in _QUOTES and not _balanced(text, text[-1]):
        text = text[:-1]
    return text


def cut(text: str, folded: str, spans: list[tuple[int, int]], lx: Lexicon) -> str | None:
    """`text` without the (sorted, non-overlapping) spans, tidied; None when nothing is left."""
    pieces: list[str] = []
    pos = 0
    for start, end in spans:
        seg = _trim_dangling(text[pos:start], folded[pos:start], lx)
        if pieces and seg and _WORD.match(seg[:1]) and _WORD.match(pieces[-1][-1:]):
            pieces.append(" ")  # "a cat[ 10s ]dancing" keeps its space between words
        pieces.append(seg)
        pos = end
    tail = text[pos:]
    if pieces and tail and _WORD.match(tail[:1]) and _WORD.match(pieces[-1][-1:]):
        pieces.append(" ")
    pieces.append(tail)
    # whitespace runs first: the patterns below that start with \s* would otherwise re-read a
    # long run from each of its positions (8,000 spaces took seconds)
    out = _SPACES.sub(" ", "".join(pieces))
    if not _CLOSING_BRACKETS.isdisjoint(out):  # most prompts have none: skip two passes
        out = _SPACES.sub(" ", _EMPTY_BRACKETS.sub("", out))
    if not _PUNCT_CHARS.isdisjoint(out):
        out = _SPACE_BEFORE_PUNCT.sub(r"\1", out)
        out = _PUNCT_RUN.sub(r"\1", out)
    for _ in range(_MAX_ROUNDS):
        before = out
        out = _strip_lone_quotes(out.strip(_EDGE_PUNCT))
        lead = lx.edge_start.match(out)
        if lead is not None:
            out = out[lead.end() :]
        # an edge word is short: look for one near the end only, not from every position
        edge = lx.edge_end.search(out, max(0, len(out) - _EDGE_TAIL))
        if edge is not None:
            out = out[: edge.start()]
        if out == before:
            break
    return out or None
