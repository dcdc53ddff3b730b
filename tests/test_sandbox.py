"""The sandbox over real HTTP: product list, auth, every create validation. (Helpers first: other
test_sandbox_* files import them.)"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.catalog import load_catalog
from bot.sandbox import Sandbox, SandboxConfig
from bot.sandbox.matching import matches

KEY = "ima_sandbox_key"
HEADERS = {"Authorization": f"Bearer {KEY}", "x-app-source": "ima_skills", "x_app_language": "en"}
IMG = "https://example.com/a.jpg"


def walk(nodes: list[dict[str, Any]], depth: int = 1) -> list[tuple[int, dict[str, Any]]]:
    """(depth, node) for every node of a product tree."""
    out: list[tuple[int, dict[str, Any]]] = []
    for n in nodes:
        out.append((depth, n))
        out.extend(walk(n.get("children") or [], depth + 1))
    return out


async def products(http: httpx.AsyncClient, sb: Sandbox, category: str) -> list[dict[str, Any]]:
    r = await http.get(
        f"{sb.base_url}/open/v1/product/list",
        headers=HEADERS,
        params={"app": "ima", "platform": "web", "category": category},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["code"] == 0 and body["message"] == "success"
    return list(body["data"])


async def leaves(http: httpx.AsyncClient, sb: Sandbox, category: str) -> list[dict[str, Any]]:
    return [n for _, n in walk(await products(http, sb, category)) if n["type"] == "3"]


async def leaf(http: httpx.AsyncClient, sb: Sandbox, category: str, name: str) -> dict[str, Any]:
    [found] = [n for n in await leaves(http, sb, category) if n["name"] == name]
    return found


def defaults(node: dict[str, Any]) -> dict[str, Any]:
    return {f["field"]: f["value"] for f in node["form_config"] if f.get("value") is not None}


def rule_for(node: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    rules: list[dict[str, Any]] = [r for r in node["credit_rules"] if matches(r, params)]
    [rule] = rules
    return rule


def body(
    node: dict[str, Any],
    category: str,
    prompt: str = "a sunset over mountains",
    images: list[str] | None = None,
    **params: Any,
) -> dict[str, Any]:
    """A correct create body for `node` (defaults overridden by `params`)."""
    if images is None:
        images = {"text_to_video": [], "first_last_frame_to_video": [IMG, IMG]}.get(category, [IMG])
    inner = defaults(node) | params
    rule = rule_for(node, inner)
    inner |= {
        "prompt": prompt,
        "n": 1,
        "input_images": list(images),
        "cast": {"points": rule["points"], "attribute_id": rule["attribute_id"]},
    }
    return {
        "task_type": category,
        "enable_multi_model": False,
        "src_img_url": list(images),
        "parameters": [
            {
                "attribute_id": rule["attribute_id"],
                "model_id": node["model_id"],
                "model_name": node["name"],
                "model_version": node["id"],
                "app": "ima",
                "platform": "web",
                "category": category,
                "credit": rule["points"],
                "parameters": inner,
            }
        ],
    }


def edited(b: dict[str, Any], **inner: Any) -> dict[str, Any]:
    """A deep copy of a create body with inner parameters changed."""
    out = copy.deepcopy(b)
    out["parameters"][0]["parameters"].update(inner)
    return out


async def create(http: httpx.AsyncClient, sb: Sandbox, b: dict[str, Any], **kw: Any) -> httpx.Response:
    return await http.post(f"{sb.base_url}/open/v1/tasks/create", headers=HEADERS, json=b, **kw)


async def detail(http: httpx.AsyncClient, sb: Sandbox, task_id: str) -> dict[str, Any]:
    r = await http.post(f"{sb.base_url}/open/v1/tasks/detail", headers=HEADERS, json={"task_id": task_id})
    assert r.status_code == 200 and r.json()["code"] == 0, r.text
    return dict(r.json()["data"])


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture
async def sb(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxConfig(port=0, time_scale=0.002, seed=1, media_dir=tmp_path / "media")) as s:
        yield s


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def expect_error(r: httpx.Response, code: int, text: str = "", *, status: int = 200) -> None:
    assert r.status_code == status, r.text
    assert r.json()["code"] == code, r.text
    assert text.lower() in r.json()["message"].lower(), r.text


# -- product list --------------------------------------------------------------------------------
CATEGORY_SIZES = {
    "text_to_video": 14,
    "image_to_video": 14,
    "first_last_frame_to_video": 10,
    "reference_image_to_video": 9,
}


@pytest.mark.parametrize(("category", "count"), CATEGORY_SIZES.items())
async def test_product_list_is_a_v2_tree_with_every_reference_model(
    sb: Sandbox, http: httpx.AsyncClient, category: str, count: int
) -> None:
    tree = await products(http, sb, category)
    assert tree and all(n["type"] == "2" and n["children"] for n in tree)
    found = await leaves(http, sb, category)
    assert len(found) == count
    for n in found:
        assert n["id"] and n["model_id"] and n["name"]
        assert n["credit_rules"] and n["form_config"]
        for r in n["credit_rules"]:
            assert r["attribute_id"] > 0 and r["points"] > 0 and isinstance(r["attributes"], dict)
        for f in n["form_config"]:
            assert "field" in f and "value" in f


async def test_some_leaves_sit_one_level_deeper(sb: Sandbox, http: httpx.AsyncClient) -> None:
    depths = {d for d, n in walk(await products(http, sb, "text_to_video")) if n["type"] == "3"}
    assert depths == {2, 3}


@pytest.mark.parametrize("category", CATEGORY_SIZES)
async def test_every_leaf_defaults_match_exactly_one_rule(
    sb: Sandbox, http: httpx.AsyncClient, category: str
) -> None:
    for n in await leaves(http, sb, category):
        assert len([r for r in n["credit_rules"] if matches(r, defaults(n))]) == 1, n["name"]


async def test_attribute_ids_are_unique_across_the_catalog(sb: Sandbox, http: httpx.AsyncClient) -> None:
    ids = [
        r["attribute_id"]
        for c in CATEGORY_SIZES
        for n in await leaves(http, sb, c)
        for r in n["credit_rules"]
    ]
    assert len(ids) == len(set(ids))


async def test_wan_text_to_video_rules_are_the_known_attribute_ids(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    wan = await leaf(http, sb, "text_to_video", "Wan 2.6")
    got = {
        r["attribute_id"]: (r["points"], r["attributes"]["resolution"], int(r["attributes"]["duration"]))
        for r in wan["credit_rules"]
    }
    assert got == {
        2057: (25, "720P", 5),
        2058: (40, "1080P", 5),
        2059: (50, "720P", 10),
        2060: (80, "1080P", 10),
        2061: (75, "720P", 15),
        2062: (120, "1080P", 15),
    }


async def test_kling_o1_text_to_video_rules_are_the_known_attribute_ids(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    kling = await leaf(http, sb, "text_to_video", "Kling O1")
    got = {
        r["attribute_id"]: (r["points"], int(r["attributes"]["duration"]), r["attributes"]["mode"])
        for r in kling["credit_rules"]
    }
    assert got == {2313: (48, 5, "std"), 2314: (60, 5, "pro"), 2315: (96, 10, "std"), 2316: (120, 10, "pro")}


async def test_veo_prices_resolution_duration_and_quality(sb: Sandbox, http: httpx.AsyncClient) -> None:
    veo = await leaf(http, sb, "text_to_video", "Google Veo 3.1")
    attrs = [r["attributes"] for r in veo["credit_rules"]]
    assert {a["resolution"] for a in attrs} == {"720P", "1080P", "4K"}
    assert {int(a["duration"]) for a in attrs} == {4, 8}
    assert {a["compression_quality"] for a in attrs} >= {"optimized", "high"}
    assert (
        min(r["points"] for r in veo["credit_rules"]) == 70
        and max(r["points"] for r in veo["credit_rules"]) == 330
    )


T2V_PRICES = {  # name: (lowest points, highest points or None for "N+")
    "Wan 2.6": (25, 120),
    "Hailuo 2.3": (32, None),
    "Hailuo 2.0": (5, None),
    "Vidu Q2": (5, 70),
    "SeeDance 1.5 Pro": (20, None),
    "Sora 2 Pro": (122, None),
    "Kling O1": (48, 120),
    "Kling 2.6": (80, None),
    "Google Veo 3.1": (70, 330),
    "Pixverse V5.5": (30, None),
    "Pixverse V5": (25, None),
    "Pixverse V4.5": (20, None),
    "Pixverse V4": (12, None),
    "Pixverse V3.5": (12, None),
}


@pytest.mark.parametrize(("name", "prices"), T2V_PRICES.items())
async def test_text_to_video_prices_follow_the_reference_ranges(
    sb: Sandbox, http: httpx.AsyncClient, name: str, prices: tuple[int, int | None]
) -> None:
    points = [r["points"] for r in (await leaf(http, sb, "text_to_video", name))["credit_rules"]]
    assert min(points) == prices[0]
    if prices[1] is not None:
        assert max(points) == prices[1]


async def test_hailuo_is_six_seconds_768p_and_vidu_q2_spans_540p_to_1080p(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    hailuo = await leaf(http, sb, "text_to_video", "Hailuo 2.3")
    assert {
        (int(r["attributes"]["duration"]), r["attributes"]["resolution"]) for r in hailuo["credit_rules"]
    } == {(6, "768P")}
    vidu = await leaf(http, sb, "text_to_video", "Vidu Q2")
    assert {r["attributes"]["resolution"] for r in vidu["credit_rules"]} == {"540P", "720P", "1080P"}
    assert {int(r["attributes"]["duration"]) for r in vidu["credit_rules"]} == {5, 10}


@pytest.mark.parametrize("category", CATEGORY_SIZES)
async def test_pixverse_v55_v5_v4_lack_the_model_field(
    sb: Sandbox, http: httpx.AsyncClient, category: str
) -> None:
    fields = {
        n["name"]: {f["field"] for f in n["form_config"]}
        for n in await leaves(http, sb, category)
        if n["model_id"] == "pixverse"
    }
    for name in ("Pixverse V5.5", "Pixverse V5", "Pixverse V4"):
        assert "model" not in fields[name]
    for name in ("Pixverse V4.5", "Pixverse V3.5"):
        assert "model" in fields[name]


@pytest.mark.parametrize("category", CATEGORY_SIZES)
async def test_every_leaf_is_known_to_the_bot_catalog(
    sb: Sandbox, http: httpx.AsyncClient, category: str
) -> None:
    catalog = load_catalog()
    for n in await leaves(http, sb, category):
        assert catalog.by_id(n["model_id"], category, n["name"]) is not None, n["name"]


async def test_an_unknown_category_is_a_bad_request(sb: Sandbox, http: httpx.AsyncClient) -> None:
    r = await http.get(
        f"{sb.base_url}/open/v1/product/list",
        headers=HEADERS,
        params={"app": "ima", "platform": "web", "category": "text_to_music"},
    )
    expect_error(r, 400, "unknown category")


# -- auth ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer ima_wrong"}, {"Authorization": KEY}])
async def test_a_missing_or_unknown_key_is_http_401(
    sb: Sandbox, http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    r = await http.get(
        f"{sb.base_url}/open/v1/product/list", headers=headers, params={"category": "text_to_video"}
    )
    expect_error(r, 401, "unauthorized", status=401)
    r = await http.post(f"{sb.base_url}/open/v1/tasks/create", headers=headers, json={})
    expect_error(r, 401, status=401)


async def test_another_accepted_key_is_configurable(tmp_path: Path, http: httpx.AsyncClient) -> None:
    async with Sandbox(SandboxConfig(port=0, api_key="ima_other", media_dir=tmp_path)) as s:
        r = await http.get(
            f"{s.base_url}/open/v1/product/list", headers=HEADERS, params={"category": "text_to_video"}
        )
        assert r.status_code == 401
        r = await http.get(
            f"{s.base_url}/open/v1/product/list",
            headers={"Authorization": "Bearer ima_other"},
            params={"category": "text_to_video"},
        )
        assert r.status_code == 200 and r.json()["code"] == 0


# -- create: success, balance ---------------------------------------------------------------------
async def test_a_valid_create_answers_an_id_and_charges_the_rule(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    wan = await leaf(http, sb, "text_to_video", "Wan 2.6")
    r = await create(http, sb, body(wan, "text_to_video", resolution="1080P", duration=10))
    assert r.status_code == 200 and r.json()["code"] == 0 and r.json()["message"] == "success"
    task_id = r.json()["data"]["id"]
    [entry] = sb.ledger
    assert entry.task_id == task_id and entry.attribute_id == 2060 and entry.credit == 80
    assert sb.balance == 10000 - 80


async def test_a_short_balance_is_4008_and_charges_nothing(tmp_path: Path, http: httpx.AsyncClient) -> None:
    async with Sandbox(SandboxConfig(port=0, balance=30, media_dir=tmp_path)) as s:
        wan = await leaf(http, s, "text_to_video", "Wan 2.6")
        ok = await create(http, s, body(wan, "text_to_video"))  # 25 pts
        assert ok.json()["code"] == 0 and s.balance == 5
        r = await create(http, s, body(wan, "text_to_video"))
        expect_error(r, 4008, "insufficient points")
        assert s.balance == 5 and len(s.ledger) == 1


# -- create: pricing errors -----------------------------------------------------------------------
async def test_a_wrong_credit_is_6006(sb: Sandbox, http: httpx.AsyncClient) -> None:
    b = body(await leaf(http, sb, "text_to_video", "Wan 2.6"), "text_to_video")
    b["parameters"][0]["credit"] = 3
    expect_error(await create(http, sb, b), 6006)
    assert sb.ledger == [] and sb.balance == 10000


async def test_an_attribute_id_of_another_rule_is_6010(sb: Sandbox, http: httpx.AsyncClient) -> None:
    wan = await leaf(http, sb, "text_to_video", "Wan 2.6")
    b = body(wan, "text_to_video", resolution="1080P")  # rule 2058
    b["parameters"][0]["attribute_id"] = 2057
    b["parameters"][0]["credit"] = 25
    b["parameters"][0]["parameters"]["cast"] = {"points": 25, "attribute_id": 2057}
    expect_error(await create(http, sb, b), 6010, "Attribute ID does not match the calculated rule")
    assert sb.ledger == []


async def test_parameters_no_rule_prices_are_6009(sb: Sandbox, http: httpx.AsyncClient) -> None:
    b = edited(body(await leaf(http, sb, "text_to_video", "Wan 2.6"), "text_to_video"), duration=7)
    expect_error(await create(http, sb, b), 6009, "No exact rule match")


async def test_a_missing_priced_attribute_is_6009(sb: Sandbox, http: httpx.AsyncClient) -> None:
    b = body(await leaf(http, sb, "text_to_video", "Kling O1"), "text_to_video")
    del b["parameters"][0]["parameters"]["mode"]
    expect_error(await create(http, sb, b), 6009, "No exact rule match")


@pytest.mark.parametrize("attribute_id", [0, None, "missing", 999999])
async def test_a_zero_missing_or_foreign_attribute_id_is_an_invalid_product_attribute(
    sb: Sandbox, http: httpx.AsyncClient, attribute_id: object
) -> None:
    b = body(await leaf(http, sb, "text_to_video", "Wan 2.6"), "text_to_video")
    if attribute_id == "missing":
        del b["parameters"][0]["attribute_id"]
    else:
        b["parameters"][0]["attribute_id"] = attribute_id
    r = await create(http, sb, b)
    assert r.status_code == 200 and "Invalid product attribute" in r.json()["message"]
    assert r.json()["code"] != 0 and sb.ledger == []


async def test_matching_ignores_case_type_and_aspect_ratio(sb: Sandbox, http: httpx.AsyncClient) -> None:
    wan = await leaf(http, sb, "text_to_video", "Wan 2.6")
    b = body(wan, "text_to_video", resolution="1080P", duration=10)  # rule 2060
    b = edited(b, resolution="1080p", duration="10", aspect_ratio="9:16")
    r = await create(http, sb, b)
    assert r.json()["code"] == 0, r.text
    assert sb.ledger[0].attribute_id == 2060


async def test_booleans_match_their_text(sb: Sandbox, http: httpx.AsyncClient) -> None:
    hailuo = await leaf(http, sb, "text_to_video", "Hailuo 2.3")
    b = edited(body(hailuo, "text_to_video"), fast_pretreatment="false")
    assert (await create(http, sb, b)).json()["code"] == 0


# -- create: Pixverse ------------------------------------------------------------------------------
async def test_pixverse_without_model_is_400017(sb: Sandbox, http: httpx.AsyncClient) -> None:
    b = body(await leaf(http, sb, "text_to_video", "Pixverse V5.5"), "text_to_video")
    expect_error(await create(http, sb, b), 400017, "Invalid value for model")


async def test_pixverse_with_the_model_inferred_from_its_name_is_accepted(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    b = body(await leaf(http, sb, "image_to_video", "Pixverse V4"), "image_to_video", model="v4")
    assert (await create(http, sb, b)).json()["code"] == 0


async def test_pixverse_v45_defaults_already_carry_the_model(sb: Sandbox, http: httpx.AsyncClient) -> None:
    b = body(await leaf(http, sb, "text_to_video", "Pixverse V4.5"), "text_to_video")
    assert (await create(http, sb, b)).json()["code"] == 0


# -- create: shape -------------------------------------------------------------------------------
async def test_a_prompt_at_the_top_level_is_400(sb: Sandbox, http: httpx.AsyncClient) -> None:
    b = body(await leaf(http, sb, "text_to_video", "Wan 2.6"), "text_to_video")
    b["prompt"] = "a dog"
    expect_error(await create(http, sb, b), 400, "prompt")


async def test_a_prompt_in_the_outer_parameters_item_is_400(sb: Sandbox, http: httpx.AsyncClient) -> None:
    b = body(await leaf(http, sb, "text_to_video", "Wan 2.6"), "text_to_video")
    b["parameters"][0]["prompt"] = b["parameters"][0]["parameters"].pop("prompt")
    expect_error(await create(http, sb, b), 400, "prompt")


async def test_a_missing_cast_is_400(sb: Sandbox, http: httpx.AsyncClient) -> None:
    b = body(await leaf(http, sb, "text_to_video", "Wan 2.6"), "text_to_video")
    del b["parameters"][0]["parameters"]["cast"]
    expect_error(await create(http, sb, b), 400, "cast")


async def test_images_that_differ_between_src_img_url_and_input_images_are_400(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    b = body(await leaf(http, sb, "image_to_video", "Wan 2.6"), "image_to_video")
    b["src_img_url"] = ["https://example.com/other.jpg"]
    expect_error(await create(http, sb, b), 400, "same images")


@pytest.mark.parametrize("count", [1, 3])
async def test_first_last_frame_needs_exactly_two_images(
    sb: Sandbox, http: httpx.AsyncClient, count: int
) -> None:
    node = await leaf(http, sb, "first_last_frame_to_video", "Kling O1")
    b = body(node, "first_last_frame_to_video", images=[IMG] * count)
    expect_error(await create(http, sb, b), 400, "exactly 2")
    assert (await create(http, sb, body(node, "first_last_frame_to_video"))).json()["code"] == 0


async def test_an_image_task_without_an_image_is_400(sb: Sandbox, http: httpx.AsyncClient) -> None:
    b = body(await leaf(http, sb, "image_to_video", "Wan 2.6"), "image_to_video", images=[])
    expect_error(await create(http, sb, b), 400, "image")


@pytest.mark.parametrize(
    ("field", "value"), [("model_id", "kling-o1"), ("model_version", "wan2.5"), ("model_id", "wan2.6-i2v")]
)
async def test_an_unknown_model_or_version_is_400(
    sb: Sandbox, http: httpx.AsyncClient, field: str, value: str
) -> None:
    b = body(await leaf(http, sb, "text_to_video", "Wan 2.6"), "text_to_video")
    b["parameters"][0][field] = value
    expect_error(await create(http, sb, b), 400, "unknown model")


async def test_an_aspect_ratio_the_model_does_not_offer_is_400(sb: Sandbox, http: httpx.AsyncClient) -> None:
    b = edited(body(await leaf(http, sb, "text_to_video", "Wan 2.6"), "text_to_video"), aspect_ratio="5:4")
    expect_error(await create(http, sb, b), 400, "aspect_ratio")


async def test_a_body_that_is_not_json_is_400(sb: Sandbox, http: httpx.AsyncClient) -> None:
    r = await http.post(f"{sb.base_url}/open/v1/tasks/create", headers=HEADERS, content=b"{not json")
    expect_error(r, 400, "JSON")


# -- create: Sora moderation -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "prompt",
    [
        "A person walking on the beach",
        "a WOMAN dancing",
        "Mickey Mouse dancing",
        "two girls laughing",
        "一个女人在海边跳舞",
        "米老鼠在跳舞",
        "明星走红毯",
        "一群人在街上",
    ],
)
async def test_sora_refuses_people_and_characters_with_a_content_policy_error(
    sb: Sandbox, http: httpx.AsyncClient, prompt: str
) -> None:
    b = body(await leaf(http, sb, "text_to_video", "Sora 2 Pro"), "text_to_video", prompt=prompt)
    expect_error(await create(http, sb, b), 400, "content policy violation")
    assert sb.ledger == [] and sb.balance == 10000


@pytest.mark.parametrize(
    "prompt", ["A sunset over mountains", "a bird flying through clouds", "manta rays", "海浪拍打礁石"]
)
async def test_sora_accepts_landscapes_and_animals(sb: Sandbox, http: httpx.AsyncClient, prompt: str) -> None:
    b = body(await leaf(http, sb, "text_to_video", "Sora 2 Pro"), "text_to_video", prompt=prompt)
    assert (await create(http, sb, b)).json()["code"] == 0


async def test_other_models_accept_people(sb: Sandbox, http: httpx.AsyncClient) -> None:
    b = body(await leaf(http, sb, "text_to_video", "Wan 2.6"), "text_to_video", prompt="一个女人在海边跳舞")
    assert (await create(http, sb, b)).json()["code"] == 0
