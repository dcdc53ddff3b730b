"""Understanding, second pass: the user's words stay theirs; "not" and "just this once" are
honoured; odd values are read (to be fitted and said), never ignored; any input parses."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.understand import parse

# text -> the fields that must come out (prompt compared exactly)
CASES: list[tuple[str, dict[str, Any]]] = [
    (
        "别用sora,随便换个模型,做一段城市夜景延时摄影",
        {"model_id": None, "excluded_models": ["sora-2-pro"], "prompt": "城市夜景延时摄影"},
    ),
    (
        "make a video: a dog on a skateboard (not sora please)",
        {
            "model_id": None,
            "excluded_models": ["sora-2-pro"],
            "preference": None,
            "prompt": "a dog on a skateboard",
        },
    ),
    ("這次用海螺2.3,但別記住,下次還是你推薦", {"model_id": "MiniMax-Hailuo-2.3", "preference": None}),
    ("这次用海螺2.3,但别记住,下次还是你推荐", {"model_id": "MiniMax-Hailuo-2.3", "preference": None}),
    (
        "just this once use veo: a bird",
        {"model_id": "veo-3.1-generate-preview", "preference": None, "prompt": "a bird"},
    ),
    ("小猫跳起来", {"prompt": "小猫跳起来"}),
    ('A man says "hello world"', {"prompt": 'A man says "hello world"'}),
    (
        "a girl says 'I am 5 seconds late' in 4k",
        {"duration": None, "resolution": "4K", "prompt": "a girl says 'I am 5 seconds late'"},
    ),
    (
        'a neon sign that says "NO SORA"',
        {"model_id": None, "preference": None, "prompt": 'a neon sign that says "NO SORA"'},
    ),
    ("两分半钟的纪录片", {"duration": 150, "prompt": "纪录片"}),
    ("不要竖屏,要横屏的赛车漂移", {"aspect_ratio": "16:9", "prompt": "赛车漂移"}),
    ("not vertical, a cat running", {"aspect_ratio": None, "prompt": "a cat running"}),
    (
        "Use Hailuo 2.0 to make a square 1080p video of a cat",
        {"model_id": "MiniMax-Hailuo-02", "aspect_ratio": "1:1", "resolution": "1080P", "prompt": "a cat"},
    ),
    ("超清的海边日落", {"resolution": "1080P", "prompt": "海边日落"}),
    ("超高清的海边日落", {"resolution": "4K"}),
    ("直式影片,一隻貓", {"aspect_ratio": "9:16", "prompt": "一隻貓"}),
    ("直向的瀑布", {"aspect_ratio": "9:16"}),
    ("橫式的瀑布", {"aspect_ratio": "16:9"}),
    ("高畫質的日落", {"resolution": "1080P", "prompt": "日落"}),
    ("十秒鐘的海浪", {"duration": 10, "prompt": "海浪"}),
    ("99999秒的海浪", {"duration": 99999, "prompt": "海浪"}),
    ("0秒的海浪", {"duration": 0, "prompt": "海浪"}),
    ("海浪, 8k", {"resolution": "8K", "prompt": "海浪"}),
    ("换成可灵,再来一次:小狗奔跑", {"model_id": "kling-video-o1", "prompt": "小狗奔跑"}),
    ("a dancing cat for TikTok", {"aspect_ratio": "9:16", "prompt": "a dancing cat"}),
    ("时长:10秒,比例:竖屏,主题:海边日落", {"duration": 10, "aspect_ratio": "9:16", "prompt": "海边日落"}),
    ("anything but kling: a cat", {"excluded_models": ["kling-video-o1"], "prompt": "a cat"}),
    ("除了sora都行,一只猫", {"excluded_models": ["sora-2-pro"], "prompt": "一只猫"}),
    (
        "avoid veo, make a bird flying",
        {"excluded_models": ["veo-3.1-generate-preview"], "prompt": "a bird flying"},
    ),
    (
        "don't use kling, a cat in the rain",
        {"excluded_models": ["kling-video-o1"], "prompt": "a cat in the rain"},
    ),
    ("no people, an empty street", {"prompt": "no people, an empty street"}),
    ("非常漂亮的风景", {"prompt": "非常漂亮的风景"}),
    ("你好,帮我生成一只猫在跳舞", {"prompt": "一只猫在跳舞"}),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_second_pass_case(text: str, expected: dict[str, Any]) -> None:
    got = parse(text).as_dict()
    assert {k: got[k] for k in expected} == expected


def test_a_minus_sign_is_read_for_fitting() -> None:
    assert parse("a wave, -5 seconds").duration == -5
    assert parse("5-10秒的小狗").duration == 10  # a range, not a minus


def test_a_ruled_out_model_is_never_the_choice_nor_saved() -> None:
    r = parse("别用可灵,做一只猫")
    assert r.model_id is None and r.preference is None and r.excluded_keys == ("kling-o1",)


def test_an_unknown_model_ruled_out_is_not_reported_as_asked_for() -> None:
    assert parse("不要用Runway,生成海浪").unknown_model is None


DESCRIPTIONS = st.sampled_from(
    ["一只猫在跳舞", "a cat dancing in the rain", "海边日落", "a red fox in the snow"]
)
QUOTED = st.sampled_from(['"use sora, 10秒, 竖屏"', "“用可灵 4K”", "「帮助 取消」", '"NO SORA"'])


@given(description=DESCRIPTIONS, quoted=QUOTED)
def test_quoted_words_come_out_unchanged(description: str, quoted: str) -> None:
    r = parse(f"{description}, a sign that says {quoted}")
    assert r.prompt is not None and quoted in r.prompt
    assert r.model_id is None and r.duration is None and r.aspect_ratio is None and r.intent == "video"


INSTRUCTIONS = st.sampled_from(
    [
        "用可灵",
        "10秒",
        "竖屏",
        "4K",
        "with Kling",
        "vertical",
        "ten seconds",
        "别用sora",
        "not sora",
        "这次用海螺",
        "just this once",
        "1080p",
        "横屏",
        "use veo",
    ]
)


@given(
    description=DESCRIPTIONS,
    before=st.lists(INSTRUCTIONS, max_size=2),
    after=st.lists(INSTRUCTIONS, max_size=2),
    sep=st.sampled_from([", ", ",", "，", "; ", " "]),
)
def test_the_prompt_keeps_the_description_and_drops_the_instructions(
    description: str, before: list[str], after: list[str], sep: str
) -> None:
    r = parse(sep.join([*before, description, *after]))
    assert r.prompt == description


@settings(max_examples=300)
@given(text=st.text(alphabet=st.characters(), max_size=300), images=st.integers(min_value=0, max_value=4))
def test_any_unicode_parses(text: str, images: int) -> None:
    """Lone surrogates, NUL, right-to-left marks, anything: parse answers, never raises."""
    r = parse(text, images)
    assert r.intent in ("video", "help", "models", "jobs", "cancel", "prefer", "confirm", "decline", "chat")


@pytest.mark.parametrize(
    "text", ["\ud800 a cat", "\x00\x00help", "\u202e一只猫\u202c", "一" * 310 + "秒", " " * 8000, "\n" * 8000]
)
def test_hostile_strings_parse(text: str) -> None:
    parse(text)
