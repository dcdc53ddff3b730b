"""Credit-rule matching and create-body building: pure functions, no network."""

from __future__ import annotations

from typing import Any

import pytest

from bot.ima.credit import (
    build_create_body,
    build_parameters,
    complete_from_rules,
    match_rule,
    other_rule,
    pixverse_model,
)
from bot.ima.errors import BadParameter, NoRuleMatch
from bot.ima.types import CreditRule, FormField, Product, TaskSpec


def wan() -> Product:
    rules = (
        CreditRule(2057, 25, {"duration": 5, "resolution": "720P"}),
        CreditRule(2058, 40, {"duration": 5, "resolution": "1080P"}),
        CreditRule(2059, 50, {"duration": 10, "resolution": "720P"}),
        CreditRule(2060, 80, {"duration": 10, "resolution": "1080P"}),
    )
    form = (
        FormField("duration", 5, (5, 10)),
        FormField("resolution", "720P", ("720P", "1080P")),
        FormField("aspect_ratio", "16:9", ("16:9", "9:16", "1:1")),
        FormField("shot_type", "single"),
    )
    return Product("text_to_video", "wan2.6-t2v", "wan2.6-t2v", "Wan 2.6", rules, form)


def veo() -> Product:
    rules = (
        CreditRule(
            901,
            70,
            {
                "resolution": "720p",
                "duration": "4s",
                "compression_quality": "optimized",
                "generate_audio": False,
            },
        ),
        CreditRule(
            902,
            140,
            {
                "resolution": "720p",
                "duration": "8s",
                "compression_quality": "optimized",
                "generate_audio": False,
            },
        ),
        CreditRule(
            903,
            180,
            {
                "resolution": "720p",
                "duration": "8s",
                "compression_quality": "optimized",
                "generate_audio": True,
            },
        ),
        CreditRule(
            904,
            330,
            {"resolution": "4K", "duration": "4s", "compression_quality": "high", "generate_audio": True},
        ),
    )
    return Product("text_to_video", "veo-31", "veo-3.1-generate-preview", "Google Veo 3.1", rules)


def pixverse(name: str = "Pixverse V5.5", form: tuple[FormField, ...] = ()) -> Product:
    rules = (CreditRule(3001, 30, {"duration": 5, "resolution": "540P"}),)
    return Product("text_to_video", f"pv-{name}", "pixverse", name, rules, form)


# -- match_rule ---------------------------------------------------------------------------------
def test_match_rule_picks_the_rule_whose_duration_and_resolution_match() -> None:
    assert (
        match_rule(wan(), {"duration": 10, "resolution": "1080P", "aspect_ratio": "9:16"}).attribute_id
        == 2060
    )


def test_match_rule_compares_case_and_type_insensitively() -> None:
    assert match_rule(wan(), {"duration": "10", "resolution": "720p"}).attribute_id == 2059


def test_match_rule_distinguishes_veo_rules_by_quality_and_audio() -> None:
    params = {
        "resolution": "720P",
        "duration": 8,
        "compression_quality": "optimized",
        "generate_audio": "true",
    }
    assert match_rule(veo(), params).attribute_id == 903
    assert match_rule(veo(), {**params, "generate_audio": False}).attribute_id == 902


def test_match_rule_without_a_full_match_raises_no_rule_match() -> None:
    with pytest.raises(NoRuleMatch) as info:
        match_rule(wan(), {"duration": 15, "resolution": "720P"})
    assert info.value.kind == "no_rule_match"


def test_match_rule_with_a_missing_attribute_raises_no_rule_match() -> None:
    with pytest.raises(NoRuleMatch):
        match_rule(veo(), {"resolution": "720P", "duration": 8})


def test_match_rule_skips_excluded_rules() -> None:
    product = Product("t", "v", "m", "M", (CreditRule(1, 10, {}), CreditRule(2, 20, {})))
    assert match_rule(product, {}, exclude=frozenset({1})).attribute_id == 2


def test_match_rule_never_returns_attribute_id_zero() -> None:
    product = Product("t", "v", "m", "M", (CreditRule(0, 0, {"duration": 5}),))
    with pytest.raises(NoRuleMatch):
        match_rule(product, {"duration": 5})


def test_match_rule_ignores_the_default_marker_attribute() -> None:
    product = Product("t", "v", "m", "M", (CreditRule(7, 12, {"default": "enabled", "duration": 5}),))
    assert match_rule(product, {"duration": 5}).attribute_id == 7


def test_match_rule_prefers_the_most_specific_full_match() -> None:
    product = Product("t", "v", "m", "M", (CreditRule(1, 10, {}), CreditRule(2, 20, {"mode": "pro"})))
    assert match_rule(product, {"mode": "pro"}).attribute_id == 2


# -- recovery helpers ---------------------------------------------------------------------------
def test_complete_from_rules_adds_missing_attributes_from_the_cheapest_best_rule() -> None:
    params = {"resolution": "720P", "duration": 8}
    completed = complete_from_rules(veo(), params)
    assert completed == {**params, "compression_quality": "optimized", "generate_audio": False}
    assert match_rule(veo(), completed).attribute_id == 902


def test_complete_from_rules_keeps_values_a_rule_already_agrees_with() -> None:
    completed = complete_from_rules(veo(), {"resolution": "4K", "duration": 4})
    assert match_rule(veo(), completed).attribute_id == 904
    assert completed["resolution"] == "4K"


def test_complete_from_rules_replaces_a_value_no_rule_offers() -> None:
    completed = complete_from_rules(wan(), {"duration": 15, "resolution": "720P", "aspect_ratio": "1:1"})
    assert completed == {"duration": 5, "resolution": "720P", "aspect_ratio": "1:1"}


def test_complete_from_rules_changes_defaults_rather_than_what_the_user_asked() -> None:
    # 4K with the default quality and audio matches no rule: the closest rule overall would drop
    # to 720P, but the user asked for 4K, so quality and audio move instead
    params = {"resolution": "4K", "duration": 4, "compression_quality": "optimized", "generate_audio": False}
    assert complete_from_rules(veo(), params)["resolution"] == "720p"
    kept = complete_from_rules(veo(), params, keep=frozenset({"resolution"}))
    assert kept["resolution"] == "4K" and match_rule(veo(), kept).attribute_id == 904


def test_complete_from_rules_does_not_change_its_argument() -> None:
    params: dict[str, Any] = {"resolution": "720P"}
    complete_from_rules(veo(), params)
    assert params == {"resolution": "720P"}


def test_other_rule_returns_a_rule_not_yet_tried() -> None:
    params = {"duration": 5, "resolution": "720P"}
    nxt = other_rule(wan(), params, frozenset({2057}))
    assert nxt is not None and nxt.attribute_id != 2057


def test_other_rule_returns_none_when_every_rule_was_tried() -> None:
    assert other_rule(wan(), {"duration": 5}, frozenset({2057, 2058, 2059, 2060})) is None


# -- pixverse -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "model"), [("Pixverse V5.5", "v5.5"), ("Pixverse V4", "v4"), ("pixverse v5", "v5")]
)
def test_pixverse_model_is_taken_from_the_version_name(name: str, model: str) -> None:
    assert pixverse_model(pixverse(name)) == model


def test_pixverse_model_is_none_for_a_name_without_version() -> None:
    assert pixverse_model(pixverse("Pixverse")) is None


def test_pixverse_model_is_none_for_other_models() -> None:
    assert pixverse_model(wan()) is None


# -- build_parameters ---------------------------------------------------------------------------
def test_build_parameters_layers_rule_then_defaults_then_request() -> None:
    rule = CreditRule(2060, 80, {"duration": 10, "resolution": "1080P", "extra": "from-rule"})
    inner = build_parameters(
        wan(), rule, {"duration": 10, "resolution": "1080P", "aspect_ratio": "9:16"}, "p", []
    )
    assert inner["extra"] == "from-rule"
    assert inner["shot_type"] == "single"
    assert inner["aspect_ratio"] == "9:16"
    assert inner["duration"] == 10


def test_build_parameters_sends_values_in_the_rules_spelling() -> None:
    rule = wan().credit_rules[3]
    inner = build_parameters(wan(), rule, {"duration": "10", "resolution": "1080p"}, "p", [])
    assert (inner["duration"], inner["resolution"]) == (10, "1080P")


def test_build_parameters_cast_mirrors_the_rule() -> None:
    rule = wan().credit_rules[1]
    inner = build_parameters(wan(), rule, {}, "p", [])
    assert inner["cast"] == {"points": 40, "attribute_id": 2058}


def test_build_parameters_nests_prompt_images_and_n() -> None:
    inner = build_parameters(
        wan(), wan().credit_rules[0], {"prompt": "ignored"}, "a dog", ["https://x/a.png"]
    )
    assert (inner["prompt"], inner["n"], inner["input_images"]) == ("a dog", 1, ["https://x/a.png"])


def test_build_parameters_injects_the_pixverse_model_when_form_config_lacks_it() -> None:
    product = pixverse()
    assert build_parameters(product, product.credit_rules[0], {}, "p", [])["model"] == "v5.5"


def test_build_parameters_keeps_a_pixverse_model_from_form_config() -> None:
    product = pixverse("Pixverse V4.5", (FormField("model", "v4.5-custom"),))
    assert build_parameters(product, product.credit_rules[0], {}, "p", [])["model"] == "v4.5-custom"


def test_build_parameters_skips_requested_none_values() -> None:
    inner = build_parameters(wan(), wan().credit_rules[0], {"aspect_ratio": None}, "p", [])
    assert inner["aspect_ratio"] == "16:9"


# -- build_create_body --------------------------------------------------------------------------
def test_build_create_body_text_to_video_has_the_reference_shape() -> None:
    product = wan()
    rule = product.credit_rules[0]
    body = build_create_body(
        TaskSpec("text_to_video", product, rule, "a puppy", {"duration": 5, "resolution": "720P"})
    )
    assert body == {
        "task_type": "text_to_video",
        "enable_multi_model": False,
        "src_img_url": [],
        "parameters": [
            {
                "attribute_id": 2057,
                "model_id": "wan2.6-t2v",
                "model_name": "Wan 2.6",
                "model_version": "wan2.6-t2v",
                "app": "ima",
                "platform": "web",
                "category": "text_to_video",
                "credit": 25,
                "parameters": {
                    "duration": 5,
                    "resolution": "720P",
                    "aspect_ratio": "16:9",
                    "shot_type": "single",
                    "prompt": "a puppy",
                    "n": 1,
                    "input_images": [],
                    "cast": {"points": 25, "attribute_id": 2057},
                },
            }
        ],
    }


def test_build_create_body_mirrors_images_in_input_images() -> None:
    product = Product("image_to_video", "wan2.6-i2v", "wan2.6-i2v", "Wan 2.6", wan().credit_rules)
    spec = TaskSpec("image_to_video", product, product.credit_rules[0], "move", {}, ("https://cdn/a.jpg",))
    body = build_create_body(spec)
    assert body["src_img_url"] == ["https://cdn/a.jpg"]
    assert body["parameters"][0]["parameters"]["input_images"] == ["https://cdn/a.jpg"]
    assert body["parameters"][0]["category"] == "image_to_video"


def test_build_create_body_sends_first_and_last_frame_in_order() -> None:
    product = Product("first_last_frame_to_video", "k", "kling-video-o1", "Kling O1", wan().credit_rules)
    spec = TaskSpec(
        "first_last_frame_to_video", product, product.credit_rules[0], "go", {}, ("https://a", "https://b")
    )
    assert build_create_body(spec)["src_img_url"] == ["https://a", "https://b"]


def test_build_create_body_rejects_first_last_frame_with_one_image() -> None:
    product = Product("first_last_frame_to_video", "k", "kling-video-o1", "Kling O1", wan().credit_rules)
    spec = TaskSpec("first_last_frame_to_video", product, product.credit_rules[0], "go", {}, ("https://a",))
    with pytest.raises(BadParameter):
        build_create_body(spec)


def test_build_create_body_rejects_image_to_video_without_image() -> None:
    product = Product("image_to_video", "w", "wan2.6-i2v", "Wan 2.6", wan().credit_rules)
    with pytest.raises(BadParameter):
        build_create_body(TaskSpec("image_to_video", product, product.credit_rules[0], "go", {}))


def test_build_create_body_rejects_a_rule_without_attribute_id() -> None:
    product = wan()
    with pytest.raises(BadParameter):
        build_create_body(TaskSpec("text_to_video", product, CreditRule(0, 25, {}), "go", {}))


def test_match_rule_ignores_aspect_ratio_which_never_changes_the_price() -> None:
    product = Product("t", "v", "m", "M", (CreditRule(5, 10, {"duration": 5, "aspect_ratio": "16:9"}),))
    assert match_rule(product, {"duration": 5, "aspect_ratio": "9:16"}).attribute_id == 5
