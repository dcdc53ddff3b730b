"""Property tests: parse never fails, and its scanner equals the plain single alternation."""

from __future__ import annotations

import re
import sys
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.fitting import fit_duration
from bot.ima.types import TASK_TYPES
from bot.understand import parse
from bot.understand.intent import COMMANDS, _alt, _words, core_text, load_intents
from bot.understand.lexicon import INTENTS_PATH, load_lexicon
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


# The intent tables' phrase scanners against the plain `re` searches they stand in for.
_INTENTS = tomllib.loads(INTENTS_PATH.read_text(encoding="utf-8"))
TALK_WORDS = [
    "help",
    "帮助",
    "谢谢",
    "please",
    "thanks",
    "ok",
    "好的",
    "吧",
    "有哪些模型",
    "models",
    "cancel",
    "不要生成小狗的视频",
    "don't make a video of a cat",
    "i made a video of my dog",
    "how long does kling take",
    "要多久",
    "生成了",
    "视频",
    "make",
    " ",
    "?",
    "？",
]
TALK = st.sampled_from(TALK_WORDS)
TALK_SOUP = st.lists(st.one_of(TALK, WORDS, st.text(max_size=4)), max_size=12).map(" ".join)


@SETTINGS
@given(text=TALK_SOUP)
def test_making_talk_scanner_finds_what_one_search_finds(text: str) -> None:
    made = _INTENTS["generate"]
    plain = re.compile("|".join(_words(made[k]) for k in ("refusals", "reports", "about_making")))
    core = core_text(fold(text))
    assert (load_intents().making_talk.first(core) is None) == (plain.search(core) is None)


@SETTINGS
@given(
    text=st.lists(st.one_of(st.sampled_from(_INTENTS["talk"]["markers"]), TALK, WORDS), max_size=8).map(
        " ".join
    )
)
def test_talk_scanner_finds_what_one_search_finds(text: str) -> None:
    plain = re.compile(_words(_INTENTS["talk"]["markers"]))
    core = core_text(fold(text))
    assert (load_intents().talk.first(core) is None) == (plain.search(core) is None)


@SETTINGS
@given(text=st.lists(st.one_of(TALK, WORDS, st.just("later"), st.just("下次做")), max_size=8).map(" ".join))
def test_not_now_anchors_rule_out_only_what_the_phrases_would(text: str) -> None:
    # the quick search for anchors may never hide a phrase the scanner would find
    core = core_text(fold(text))
    tables = load_intents()
    if tables.not_now.first(core) is not None:
        assert tables.not_now_near.search(core) is not None


@SETTINGS
@given(text=TALK_SOUP)
def test_a_polite_word_at_the_end_ends_with_one_of_the_polite_last_characters(text: str) -> None:
    core = core_text(fold(text))
    tables = load_intents()
    if core and tables.polite_end.first(core) is not None:
        assert tables.polite_last is None or core[-1] in tables.polite_last


@SETTINGS
@given(text=TALK_SOUP, tail=st.integers(min_value=0, max_value=30))
def test_polite_end_scanner_finds_the_polite_word_one_search_finds(text: str, tail: int) -> None:
    plain = re.compile(rf"\s*{_words(_INTENTS['polite']['phrases'])}$")
    core = core_text(fold(text))
    pos = max(0, len(core) - tail)
    hit, m = load_intents().polite_end.first(core, pos), plain.search(core, pos)
    assert (hit is None) == (m is None)
    if hit is not None and m is not None:  # the plain search also takes the spaces before it
        assert core[: hit[1]].rstrip() == core[: m.start()].rstrip()


def _plain_command(text: str) -> str | None:
    commands = _INTENTS["commands"]
    plain = re.compile("|".join(f"(?P<{name}>{_alt(list(commands[name]))})" for name in COMMANDS))
    m = plain.fullmatch(text)
    return m.lastgroup if m else None


@SETTINGS
@given(text=TALK_SOUP)
def test_command_scanner_names_the_command_one_fullmatch_names(text: str) -> None:
    core = core_text(fold(text))
    assert load_intents().commands.whole(core) == _plain_command(core)


@pytest.mark.parametrize("word", TALK_WORDS)
def test_command_scanner_names_each_command_word_as_one_fullmatch_does(word: str) -> None:
    core = core_text(fold(word))
    assert load_intents().commands.whole(core) == _plain_command(core)
