"""Small pure pieces of the core: progress formula, fitting, selection, locales, images."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from adapters.base import ImageInput
from bot.catalog import load_catalog
from bot.fitting import degrade, fit_aspect_ratio, fit_duration, fit_request, fit_resolution
from bot.i18n import LOCALES_DIR, catalog, detect_language, normalize_language, t
from bot.ima.types import CreditRule, FormField, Product
from bot.images import ImageRejected, check_images
from bot.progress import percent
from bot.selection import alternatives, cheapest, offers_from, recommend


def product(
    name: str, model_id: str, rules: list[tuple[int, int, dict[str, object]]], **options: tuple[object, ...]
) -> Product:
    return Product(
        category="text_to_video",
        id=model_id,
        model_id=model_id,
        name=name,
        credit_rules=tuple(CreditRule(a, p, attrs) for a, p, attrs in rules),
        form_config=tuple(FormField(k, v[0], v) for k, v in options.items()),
    )


WAN = product(
    "Wan 2.6",
    "wan2.6-t2v",
    [(2057, 25, {"duration": 5, "resolution": "720P"}), (2062, 120, {"duration": 15, "resolution": "1080P"})],
    duration=(5, 10, 15),
    resolution=("720P", "1080P"),
    aspect_ratio=("16:9", "9:16", "1:1"),
)
VEO = product(
    "Google Veo 3.1",
    "veo-3.1-generate-preview",
    [(1, 70, {"duration": 4, "resolution": "720P"})],
    duration=(4, 8),
    resolution=("720P", "1080P", "4K"),
)
VIDU = product("Vidu Q2", "viduq2", [(3, 5, {"duration": 5, "resolution": "540P"})], duration=(5, 10))
KLING = product("Kling O1", "kling-video-o1", [(2313, 48, {"duration": 5, "mode": "std"})], duration=(5, 10))


# -- progress ------------------------------------------------------------------------------------
def test_progress_follows_the_reference_formula() -> None:
    assert percent(120, 180) == 66


def test_progress_is_held_at_95_past_the_estimate() -> None:
    assert percent(200, 180) == 95


def test_progress_never_reaches_100_before_done() -> None:
    assert percent(179.99, 180) == 95


# -- fitting -------------------------------------------------------------------------------------
def test_a_duration_above_the_maximum_is_clamped() -> None:
    assert fit_duration(60, (5, 10, 15)) == (15, "duration_clamped")


def test_a_duration_between_offered_values_takes_the_nearest() -> None:
    assert fit_duration(7, (5, 10)) == (5, "duration_nearest")


def test_an_offered_duration_is_kept() -> None:
    assert fit_duration(10, (5, 10, 15)) == (10, None)


def test_an_unsupported_resolution_moves_to_the_nearest_offered() -> None:
    assert fit_resolution("4K", ("720P", "1080P")) == ("1080P", "resolution_nearest")


def test_resolution_matching_ignores_case() -> None:
    assert fit_resolution("1080p", ("720P", "1080P")) == ("1080P", None)


def test_an_unsupported_ratio_moves_to_the_closest_shape() -> None:
    assert fit_aspect_ratio("4:3", ("16:9", "9:16", "1:1")) == ("1:1", "aspect_ratio_nearest")


def test_fit_request_reports_each_adjustment() -> None:
    fitted = fit_request(WAN, 60, "4K", "9:16")
    assert fitted.params == {"duration": 15, "resolution": "1080P", "aspect_ratio": "9:16"}
    assert [a.key for a in fitted.adjustments] == ["duration_clamped", "resolution_nearest"]


def test_degrade_lowers_resolution_before_duration() -> None:
    assert degrade(WAN, {"resolution": "1080P", "duration": 15}) == ("resolution", "720P")
    assert degrade(WAN, {"resolution": "720P", "duration": 15}) == ("duration", 10)
    assert degrade(WAN, {"resolution": "720P", "duration": 5}) is None


# -- selection -----------------------------------------------------------------------------------
def test_recommendation_is_the_default_when_it_can_do_the_request() -> None:
    offers = offers_from(load_catalog(), "text_to_video", [VIDU, WAN, VEO])
    assert recommend(load_catalog(), "text_to_video", offers, None, None).key == "wan-2.6"  # type: ignore[union-attr]


def test_recommendation_moves_to_a_model_that_offers_4k() -> None:
    offers = offers_from(load_catalog(), "text_to_video", [VIDU, WAN, VEO])
    assert recommend(load_catalog(), "text_to_video", offers, None, "4K").key == "veo-3.1"  # type: ignore[union-attr]


def test_alternatives_skip_the_failed_model_and_models_not_offered() -> None:
    cat = load_catalog()
    offers = offers_from(cat, "text_to_video", [VIDU, WAN, VEO, KLING])
    alts = alternatives(cat, "text_to_video", offers, "wan-2.6", "task_failed")
    assert len(alts) == 2 and "wan-2.6" not in [a.key for a in alts]


def test_content_policy_alternatives_prefer_permissive_models() -> None:
    cat = load_catalog()
    offers = offers_from(cat, "text_to_video", [VIDU, WAN, VEO, KLING])
    assert [a.key for a in alternatives(cat, "text_to_video", offers, "sora-2-pro", "content_policy")] == [
        "wan-2.6",
        "kling-o1",
    ]


def test_cheapest_offer_is_by_lowest_rule() -> None:
    offers = offers_from(load_catalog(), "text_to_video", [WAN, VIDU, VEO])
    assert cheapest(offers).key == "vidu-q2"  # type: ignore[union-attr]


# -- locales -------------------------------------------------------------------------------------
def test_every_locale_key_exists_in_both_languages() -> None:
    zh, en = catalog("zh"), catalog("en")
    assert sorted(set(zh) ^ set(en)) == []


def test_locale_placeholders_agree_between_languages() -> None:
    zh, en = catalog("zh"), catalog("en")
    names = re.compile(r"\{(\w+)\}")
    mismatched = [k for k in zh if set(names.findall(zh[k])) != set(names.findall(en[k]))]
    assert mismatched == []


def test_the_traditional_catalog_is_zh_converted_and_complete() -> None:
    # regenerate with `python -m bot.i18n` after changing zh.toml
    from bot.i18n import traditional_catalog

    zh_source = (LOCALES_DIR / "zh.toml").read_text(encoding="utf-8")
    assert (LOCALES_DIR / "zh-Hant.toml").read_text(encoding="utf-8") == traditional_catalog(zh_source)
    assert set(catalog("zh-Hant")) == set(catalog("zh"))


def test_traditional_chinese_is_answered_in_traditional_chinese() -> None:
    assert detect_language("一隻貓在跳舞") == "zh-Hant" and detect_language("一只猫在跳舞") == "zh"
    assert normalize_language("zh-TW") == "zh-Hant" and normalize_language("zh-CN") == "zh"
    assert t("talk.hello", "zh-Hant") != t("talk.hello", "zh")


def test_every_failure_kind_has_a_message() -> None:
    from bot.ima import errors

    kinds = {c.kind for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.ImaError)}
    assert sorted(k for k in kinds if f"error.{k}" not in catalog("en")) == []


def test_every_catalog_model_has_a_trait_in_both_languages() -> None:
    keys = {m.key for m in load_catalog().models}
    assert (
        sorted(k for k in keys if f"trait.{k}" not in catalog("zh") or f"trait.{k}" not in catalog("en"))
        == []
    )


def test_locales_live_in_the_top_level_folder() -> None:
    assert (LOCALES_DIR / "zh.toml").is_file() and (LOCALES_DIR / "en.toml").is_file()


def test_language_follows_the_message() -> None:
    assert detect_language("用可灵生成") == "zh"
    assert detect_language("a cat") == "en"
    assert detect_language("123", hint="zh") == "zh"


def test_translation_fills_placeholders() -> None:
    assert "Kling O1" in t("notice.remembered", "zh", model="Kling O1")


# -- images --------------------------------------------------------------------------------------
def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


async def test_a_real_png_is_accepted_with_its_type() -> None:
    [img] = await check_images((ImageInput(data=_png(), filename="a.png"),), 1_000_000)
    assert img.content_type == "image/png"


async def test_bytes_that_are_not_an_image_are_rejected() -> None:
    with pytest.raises(ImageRejected) as e:
        await check_images((ImageInput(data=b"%PDF-1.7 not an image", filename="doc.pdf"),), 1_000_000)
    assert e.value.kind == "not_image" and e.value.values["name"] == "doc.pdf"


async def test_an_image_over_the_cap_is_rejected_before_decoding() -> None:
    with pytest.raises(ImageRejected) as e:
        await check_images((ImageInput(data=b"\x89PNG" + b"0" * 2_000_000),), 1_000_000)
    assert e.value.kind == "too_large"


# picture links (fetched by the bot, private addresses refused in every spelling): tests/test_links.py


def test_a_notice_counts_long_waits_in_minutes_too() -> None:
    from bot.views import notice

    view = notice(
        "j", "zh", model_name="Kling O1", credits=48, est_min=180, est_max=360, adjustments=[], extra_lines=[]
    )
    assert "180 ~ 360 秒(约 3 ~ 6 分钟)" in view.text and "48 pts" in view.text


def test_a_notice_for_a_short_wait_speaks_in_seconds() -> None:
    from bot.views import notice

    view = notice(
        "j", "en", model_name="Wan 2.6", credits=25, est_min=3, est_max=6, adjustments=[], extra_lines=[]
    )
    assert "3~6 seconds." in view.text and "min" not in view.text


def test_every_setting_is_documented_in_the_readme_and_env_example() -> None:
    from pathlib import Path

    from bot.config import Settings

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    example = (root / ".env.example").read_text(encoding="utf-8")
    missing = [
        n.upper() for n in Settings.model_fields if n.upper() not in readme or n.upper() not in example
    ]
    assert missing == []


def test_product_options_merge_form_values_and_rule_values_once() -> None:
    p = Product(
        "text_to_video",
        "v",
        "viduq2",
        "Vidu Q2",
        (CreditRule(1, 5, {"duration": "5", "resolution": "540p"}), CreditRule(2, 9, {"duration": "10"})),
        (FormField("duration", 5, (5, 10)), FormField("resolution", "540P", ("540P", "720P"))),
    )
    assert p.options("duration") == (5, 10)
    assert p.options("resolution") == ("540P", "720P")


def test_a_resolution_the_model_does_not_let_you_choose_is_left_out_and_said() -> None:
    fitted = fit_request(KLING, 10, "1080P", None)
    assert fitted.params == {"duration": 10}
    assert [a.key for a in fitted.adjustments] == ["resolution_fixed"]


def test_a_model_without_resolution_choices_is_not_recommended_for_4k() -> None:
    offers = offers_from(load_catalog(), "text_to_video", [WAN, KLING, VEO])
    assert recommend(load_catalog(), "text_to_video", offers, None, "4K").key == "veo-3.1"  # type: ignore[union-attr]
