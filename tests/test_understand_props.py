"""Property tests: parse never fails, and its scanner equals the plain single alternation."""

from __future__ import annotations

import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.fitting import fit_duration
from bot.ima.types import TASK_TYPES
from bot.understand import parse
from bot.understand.lexicon import load_lexicon
from bot.understand.normalize import fold

# Text mixing the words the parser looks for with anything at all.
WORDS = st.sampled_from(
    [
        "用",
        "可灵",
        "海螺2.3",
        "kling o1",
        "vidu q2 pro",
        "10秒",
        "十五秒",
        "1分钟",
        "半分钟",
        "4k",
        "1080p",
        "高清",
        "16:9",
        "竖屏",
        "square",
        "首尾帧",
        "参考这张图",
        "把图动起来",
        "推荐一个",
        "以后都用",
        "用最便宜的",
        " ",
        ",",
        "，",
        "the",
        "a",
        "video",
        "视频",
        "万",
        "pixverse v5",
        "5",
        ".",
        "-",
        "seconds",
        "minute",
        "ＫＬＩＮＧ",
        "豎屏",
    ]
)
MIXED = st.lists(st.one_of(WORDS, st.text(max_size=5)), max_size=60).map("".join)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(text=st.text(max_size=2000), images=st.integers(min_value=0, max_value=5))
def test_any_text_parses_without_error(text: str, images: int) -> None:
    r = parse(text, images=images)
    assert r.task_type in TASK_TYPES
    assert r.language in ("zh", "en")
    assert r.preference in (None, "save", "clear")
    assert r.prompt is None or (r.prompt.strip() and len(r.prompt) <= len(text))


@SETTINGS
@given(text=MIXED, images=st.integers(min_value=0, max_value=5))
def test_phrase_soup_parses_without_error(text: str, images: int) -> None:
    r = parse(text, images=images)
    # a duration is reported as asked (0 s, -5 s, 99999 s too); fitting always lands on an offered one
    assert r.duration is None or fit_duration(r.duration, (5, 10))[0] in (5, 10)
    assert r.model_id is None or r.model_key is not None


@SETTINGS
@given(text=st.one_of(MIXED, st.text(max_size=300)))
def test_fold_keeps_length(text: str) -> None:
    assert len(fold(text)) == len(text)


@SETTINGS
@given(text=st.one_of(MIXED, st.text(alphabet=st.characters(max_codepoint=0x9FFF), max_size=200)))
def test_dispatch_scanner_equals_single_alternation(text: str) -> None:
    lx = load_lexicon()
    folded = fold(text)
    full = [
        (m.lastgroup, m.start(), m.end())
        for m in lx.scanner.full_pattern().finditer(folded)
        if m.end() > m.start()
    ]
    assert lx.scanner.scan(folded) == full


def test_lower_case_is_one_character_for_one_after_folding() -> None:
    bad = [c for c in map(chr, range(sys.maxunicode + 1)) if len(fold(c)) != 1]
    assert bad == []
