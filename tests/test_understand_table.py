"""Table-driven checks of bot.understand.parse: phrasings in Chinese (Simplified and
Traditional) and English, every alias in aliases.toml, every task type, parameter form and
both preference directions."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bot.catalog import load_catalog
from bot.understand import CLI_KEYS, Request, parse
from bot.understand.lexicon import ALIASES_PATH

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "fixtures" / "understand_cases.json").read_text(encoding="utf-8")
)
ALIASES: dict[str, Any] = tomllib.loads(ALIASES_PATH.read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES, ids=[f"{c['images']}:{c['text'][:40]}" for c in CASES])
def test_phrasing_is_understood(case: dict[str, Any]) -> None:
    r = parse(case["text"], images=case["images"])
    assert {**r.as_dict(), "model_key": r.model_key} == case["expect"]


def test_table_is_large_and_covers_every_task_type_and_both_preferences() -> None:
    expects = [c["expect"] for c in CASES]
    assert len(CASES) >= 150
    assert {e["task_type"] for e in expects} == {
        "text_to_video",
        "image_to_video",
        "first_last_frame_to_video",
        "reference_image_to_video",
    }
    assert {e["preference"] for e in expects} == {"save", "clear", None}
    assert {e["resolution"] for e in expects} >= {"540P", "720P", "768P", "1080P", "4K"}
    assert {e["aspect_ratio"] for e in expects} >= {"16:9", "9:16", "1:1", "4:3", "3:4", "21:9"}
    assert {e["language"] for e in expects} == {"zh", "en"}


ALIAS_ROWS = [(key, alias) for key, aliases in ALIASES["models"].items() for alias in aliases]


@pytest.mark.parametrize(("key", "alias"), ALIAS_ROWS, ids=[f"{k}:{a}" for k, a in ALIAS_ROWS])
def test_every_alias_names_its_model(key: str, alias: str) -> None:
    r = parse(f"{alias}, a red kite over the sea")
    catalog = load_catalog()
    model = next(m for m in catalog.models if m.key == key)
    if model.supports("text_to_video"):
        assert (r.model_key, r.model_id) == (key, model.ids["text_to_video"])
    else:  # a sibling that does text, or the model itself with its closest id / no id
        assert r.model_key is not None
    assert r.preference == "save"
    assert r.prompt == "a red kite over the sea"


@pytest.mark.parametrize("alias", [a.upper() for _, a in ALIAS_ROWS if a.isascii()][:40])
def test_alias_matches_in_upper_case_and_full_width(alias: str) -> None:
    full_width = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in alias)
    assert parse(alias).model_key == parse(full_width).model_key == parse(alias.lower()).model_key is not None


def test_strict_alias_wan_needs_a_choosing_word() -> None:
    assert parse("用万做个视频：雪山").model_id == "wan2.6-t2v"
    assert parse("万一下雨就拍室内").model_id is None
    assert parse("万圣节的南瓜灯").model_id is None


def test_model_name_inside_an_english_word_is_not_a_model() -> None:
    assert parse("I want a video of a swan").model_id is None
    assert parse("a soraya flower").model_id is None


def test_model_after_a_measure_word_is_content() -> None:
    r = parse("一个海螺在沙滩上被海浪冲走")
    assert r.model_id is None and r.prompt == "一个海螺在沙滩上被海浪冲走"


@pytest.mark.parametrize(
    ("text", "images", "model_key", "model_id"),
    [
        ("用Vidu把这张图动起来", 1, "vidu-q2-pro", "viduq2-pro"),  # Vidu animates via Q2 Pro
        ("vidu q2 pro, a fox", 0, "vidu-q2", "viduq2"),  # Q2 Pro has no text_to_video
        ("海螺 首尾帧", 2, "hailuo-2.0", "MiniMax-Hailuo-02"),  # Hailuo 2.3 has no first/last
        ("万相 参考这张图", 1, "wan-2.6", "wan2.6-i2v"),  # no sibling: closest id, orchestrator says no
        ("kling 2.1 master 一只猫", 0, "kling-2.1-master", None),  # known by name only
    ],
)
def test_model_for_a_task_it_does_not_do(
    text: str, images: int, model_key: str, model_id: str | None
) -> None:
    r = parse(text, images=images)
    assert (r.model_key, r.model_id) == (model_key, model_id)


@pytest.mark.parametrize(
    ("images", "text", "task"),
    [
        (0, "把这张图动起来", "text_to_video"),
        (1, "", "image_to_video"),
        (1, "首尾帧过渡", "image_to_video"),  # one picture can only be a start
        (1, "参考这张图的风格", "reference_image_to_video"),
        (1, "参考这张图的风格，作为首帧", "image_to_video"),  # explicit first frame wins
        (2, "", "first_last_frame_to_video"),
        (2, "参考这两张图", "reference_image_to_video"),
        (3, "", "reference_image_to_video"),
        (3, "从第一张过渡到最后一张", "first_last_frame_to_video"),
        (5, "a party", "reference_image_to_video"),
    ],
)
def test_task_type_from_images_and_wording(images: int, text: str, task: str) -> None:
    assert parse(text, images=images).task_type == task


def test_tiers_pick_catalog_tables_per_task_type() -> None:
    catalog = load_catalog()
    for images, task in ((0, "text_to_video"), (1, "image_to_video"), (2, "first_last_frame_to_video")):
        assert parse("用最便宜的", images=images).model_key == catalog.budget[task]
        assert parse("best quality", images=images).model_key == catalog.premium[task]
    assert parse("最便宜的").preference is None
    assert parse("用最好的").preference == "clear"


def test_last_chosen_model_wins() -> None:
    assert parse("不要用可灵，用海螺").model_key == "hailuo-2.3"
    assert parse("don't use kling, switch to veo").model_key == "veo-3.1"


def test_last_parameter_value_wins_and_ranges_take_the_upper_end() -> None:
    assert parse("5秒，不对，10秒").duration == 10
    assert parse("5到10秒的海浪").duration == 10
    assert parse("1分30秒").duration == 90


def test_request_is_frozen_and_as_dict_has_exactly_the_cli_keys() -> None:
    r = parse("Hailuo 2.0, a waterfall")
    assert isinstance(r, Request)
    assert tuple(r.as_dict()) == CLI_KEYS
    with pytest.raises(AttributeError):
        r.prompt = "x"  # type: ignore[misc]


def test_prompt_keeps_traditional_characters_as_typed() -> None:
    assert parse("請用可靈生成：貓咪彈鋼琴").prompt == "貓咪彈鋼琴"
