"""Reading what the service sends: product trees, form fields, detail answers, envelopes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from bot.ima import errors
from bot.ima.detail import parse_detail, parse_duration
from bot.ima.envelope import decode
from bot.ima.products import parse_field, parse_product_list
from bot.ima.upload import file_type_for, new_nonce, sign, suffix_for


def leaf(id_: str, model_id: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "3",
        "id": id_,
        "model_id": model_id,
        "name": name,
        "credit_rules": [{"attribute_id": 1, "points": 5, "attributes": {"duration": 5}}],
        **extra,
    }


# -- product tree -------------------------------------------------------------------------------
def test_product_list_finds_leaves_at_any_depth() -> None:
    tree = [
        {"type": "2", "name": "Wan", "children": [leaf("a", "wan", "Wan 2.6")]},
        {
            "type": "1",
            "children": [{"type": "2", "children": [{"type": "2", "children": [leaf("b", "k", "Kling")]}]}],
        },
        leaf("c", "top", "Top level"),
    ]
    assert [p.id for p in parse_product_list(tree, "text_to_video")] == ["a", "b", "c"]


def test_product_list_accepts_numeric_type_and_ids() -> None:
    tree = [{"type": 2, "children": [{**leaf("x", "m", "M"), "type": 3, "id": 42}]}]
    [product] = parse_product_list(tree, "text_to_video")
    assert (product.id, product.category) == ("42", "text_to_video")


def test_product_list_accepts_data_as_an_object_with_a_list() -> None:
    assert len(parse_product_list({"list": [leaf("a", "m", "M")]}, "t")) == 1


def test_product_list_drops_rules_without_attribute_id() -> None:
    node = leaf(
        "a",
        "m",
        "M",
        credit_rules=[
            {"attribute_id": 0, "points": 1},
            {"attribute_id": "12", "points": "30", "attributes": {"mode": "pro"}},
        ],
    )
    [product] = parse_product_list([node], "t")
    assert [(r.attribute_id, r.points, r.attributes) for r in product.credit_rules] == [
        (12, 30, {"mode": "pro"})
    ]


def test_product_list_skips_leaves_without_model_id() -> None:
    assert parse_product_list([{"type": "3", "id": "a", "name": "x"}], "t") == []


@pytest.mark.parametrize("key", ["options", "value_list", "values"])
def test_form_field_options_are_read_from_any_list_name(key: str) -> None:
    field = parse_field({"field": "duration", "value": 5, key: [{"value": 5, "label": "5s"}, {"value": 10}]})
    assert field is not None and field.options == (5, 10)


def test_form_field_options_may_be_plain_values() -> None:
    field = parse_field({"field": "resolution", "value": "720P", "options": ["720P", "1080P"]})
    assert field is not None and field.options == ("720P", "1080P")


def test_virtual_field_value_comes_from_its_mapping() -> None:
    raw = {
        "field": "size",
        "value": "fallback",
        "is_ui_virtual": True,
        "ui_params": [{"field": "resolution", "value": "1080P"}, {"field": "aspect_ratio", "value": "16:9"}],
        "value_mapping": {
            "mapping_rules": [
                {"source_values": {"resolution": "720P", "aspect_ratio": "16:9"}, "target_value": "1280*720"},
                {
                    "source_values": {"resolution": "1080p", "aspect_ratio": "16:9"},
                    "target_value": "1920*1080",
                },
            ]
        },
    }
    field = parse_field(raw)
    assert field is not None
    assert (field.field, field.value, field.options) == ("size", "1920*1080", ("1280*720", "1920*1080"))


def test_virtual_field_without_a_matching_mapping_keeps_its_own_value() -> None:
    raw = {
        "field": "size",
        "value": "fallback",
        "ui_params": [{"field": "resolution", "value": "4K"}],
        "value_mapping": {"mapping_rules": [{"source_values": {"resolution": "720P"}, "target_value": "s"}]},
    }
    field = parse_field(raw)
    assert field is not None and field.value == "fallback"


def test_product_defaults_come_from_form_config() -> None:
    node = leaf(
        "a",
        "m",
        "M",
        form_config=[
            {"field": "duration", "value": 5},
            {"field": "seed", "value": None},
            {"field": "aspect_ratio", "value": "16:9"},
        ],
    )
    [product] = parse_product_list([node], "t")
    assert product.defaults() == {"duration": 5, "aspect_ratio": "16:9"}


# -- detail -------------------------------------------------------------------------------------
def media(**kw: Any) -> dict[str, Any]:
    return {
        "resource_status": 1,
        "status": "success",
        "url": "https://cdn/v.mp4",
        "cover": "https://cdn/c.jpg",
        "duration_str": "5s",
        "format": "mp4",
        **kw,
    }


def test_detail_null_resource_status_is_running() -> None:
    assert parse_detail("t", {"medias": [media(resource_status=None)]}).state == "running"


def test_detail_empty_resource_status_is_running() -> None:
    assert parse_detail("t", {"medias": [media(resource_status="")]}).state == "running"


def test_detail_without_medias_is_running() -> None:
    assert parse_detail("t", {"id": "t", "medias": []}).state == "running"


def test_detail_done_when_every_media_is_ready_with_a_url() -> None:
    result = parse_detail("t", {"medias": [media(), media(url="https://cdn/2.mp4")]})
    assert (result.state, result.url, result.cover, result.duration_s) == (
        "done",
        "https://cdn/v.mp4",
        "https://cdn/c.jpg",
        5.0,
    )


def test_detail_waits_while_one_media_is_still_processing() -> None:
    assert parse_detail("t", {"medias": [media(), media(resource_status=0)]}).state == "running"


def test_detail_keeps_polling_while_the_url_is_empty() -> None:
    result = parse_detail("t", {"medias": [media(url="", watermark_url="https://cdn/wm.mp4")]})
    assert result.state == "running"


def test_detail_accepts_the_watermark_url_when_allowed() -> None:
    result = parse_detail(
        "t", {"medias": [media(url=None, watermark_url="https://cdn/wm.mp4")]}, allow_watermark=True
    )
    assert (result.state, result.url) == ("done", "https://cdn/wm.mp4")


@pytest.mark.parametrize("rs", [2, 3, "2"])
def test_detail_resource_status_2_or_3_is_failed_with_the_reason(rs: Any) -> None:
    result = parse_detail("t", {"medias": [media(resource_status=rs, error_msg="model overloaded")]})
    assert (result.state, result.error) == ("failed", "model overloaded")


def test_detail_status_failed_is_failed_with_the_remark() -> None:
    result = parse_detail("t", {"medias": [media(status="failed", remark="policy")]})
    assert (result.state, result.error) == ("failed", "policy")


def test_detail_task_level_failed_status_is_failed() -> None:
    assert parse_detail("t", {"status": "failed", "medias": [media(resource_status=0)]}).state == "failed"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5s", 5.0),
        ("10", 10.0),
        ("4.5s", 4.5),
        ("00:08", 8.0),
        ("1:02:03", 3723.0),
        ("6秒", 6.0),
        ("", None),
        (None, None),
    ],
)
def test_duration_str_is_parsed_to_seconds(text: Any, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


# -- envelope -----------------------------------------------------------------------------------
def body(code: Any, message: str = "", data: Any = None) -> bytes:
    return json.dumps({"code": code, "message": message, "data": data}).encode()


@pytest.mark.parametrize("code", [0, 200, "0"])
def test_envelope_success_codes_return_data(code: Any) -> None:
    assert decode(200, body(code, data={"id": "x"})) == {"id": "x"}


@pytest.mark.parametrize(
    ("status", "code", "message", "kind"),
    [
        (401, None, "", "unauthorized"),
        (200, 401, "Invalid API key", "unauthorized"),
        (200, 4008, "Insufficient points", "insufficient_points"),
        (200, 6006, "credit mismatch", "credit_mismatch"),
        (200, 6009, "", "no_rule_match"),
        (200, 500, "No exact rule match for the given parameters", "no_rule_match"),
        (200, 6010, "", "attribute_mismatch"),
        (400, 400, "Attribute ID does not match the calculated rule", "attribute_mismatch"),
        (400, 400, "bad request", "bad_parameter"),
        (200, 400017, "Invalid value for model", "bad_parameter"),
        (429, None, "", "rate_limited"),
        (200, 429, "slow down", "rate_limited"),
        (500, 500, "internal", "server_error"),
        (502, None, "", "server_error"),
        (503, None, "", "model_unavailable"),
        (200, 503, "Model not available", "model_unavailable"),
        (200, 400, "Content policy violation", "content_policy"),
        (200, 1234, "prompt contains sensitive words", "content_policy"),
        (400, 400, "rejected by moderation", "content_policy"),
        (200, 400, "Invalid product attribute", "invalid_product"),
        (200, 4008, "Invalid product attribute: Insufficient points", "invalid_product"),
    ],
)
def test_envelope_failures_are_typed(status: int, code: Any, message: str, kind: str) -> None:
    content = body(code, message) if code is not None else b"<html>error</html>"
    with pytest.raises(errors.ImaError) as info:
        decode(status, content)
    assert info.value.kind == kind


def test_envelope_unreadable_2xx_is_a_protocol_error() -> None:
    with pytest.raises(errors.ProtocolError):
        decode(200, b"{not json")


def test_envelope_error_keeps_code_and_status() -> None:
    with pytest.raises(errors.InsufficientPoints) as info:
        decode(200, body("4008", "Insufficient points"))
    assert (info.value.code, info.value.http_status) == (4008, 200)


# -- upload helpers -----------------------------------------------------------------------------
def test_upload_sign_is_uppercase_sha1_of_the_joined_fields() -> None:
    expected = hashlib.sha1(b"webAgent|k|1700000000|abc").hexdigest().upper()
    assert sign("webAgent", "k", "1700000000", "abc") == expected


def test_upload_nonce_is_21_hex_characters() -> None:
    nonce = new_nonce()
    assert len(nonce) == 21 and all(c in "0123456789abcdef" for c in nonce)


@pytest.mark.parametrize(
    ("ct", "suffix", "ftype"),
    [
        ("image/jpeg", "jpg", "picture"),
        ("image/png", "png", "picture"),
        ("image/webp", "webp", "picture"),
        ("video/mp4", "mp4", "video"),
    ],
)
def test_upload_suffix_and_type_follow_the_content_type(ct: str, suffix: str, ftype: str) -> None:
    assert (suffix_for(ct), file_type_for(ct)) == (suffix, ftype)
