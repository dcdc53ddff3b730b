"""ImaClient against the real sandbox over loopback HTTP: every category end to end, every error."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from PIL import Image

from bot.config import Settings
from bot.ima import ImaClient
from bot.ima.credit import build_create_body, match_rule, rule_attributes
from bot.ima.errors import (
    AttributeMismatch,
    BadParameter,
    ContentPolicy,
    CreateUncertain,
    CreditMismatch,
    ImaError,
    ImageUploadFailed,
    InsufficientPoints,
    ModelUnavailable,
    NetworkError,
    NoRuleMatch,
    RateLimited,
    ServerError,
    Unauthorized,
)
from bot.ima.products import ProductCache, parse_product_list
from bot.ima.types import CreditRule, Product, TaskResult, TaskSpec
from bot.sandbox import Sandbox, SandboxConfig
from tests.waiting import wait_until

SCALE = 0.002  # Wan 2.6's 60–120 s become 0.12–0.24 s
IMAGES = {
    "text_to_video": 0,
    "image_to_video": 1,
    "first_last_frame_to_video": 2,
    "reference_image_to_video": 1,
}


@pytest.fixture
async def sb(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxConfig(port=0, time_scale=SCALE, media_dir=tmp_path / "media")) as s:
        yield s


def client_for(sb: Sandbox, **kw: Any) -> ImaClient:
    options: dict[str, Any] = {
        "base_url": sb.base_url,
        "api_key": sb.config.api_key,
        "upload_base_url": sb.base_url,
        "upload_app_key": sb.config.upload_app_key,
        "timeout_s": 5.0,
    }
    options.update(kw)
    return ImaClient(**options)


@pytest.fixture
async def client(sb: Sandbox) -> AsyncIterator[ImaClient]:
    async with client_for(sb) as c:
        yield c


def png(color: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 36), color).save(buf, "PNG")
    return buf.getvalue()


async def wait_done(client: ImaClient, task_id: str, timeout_s: float = 30.0) -> TaskResult:
    async with asyncio.timeout(timeout_s):
        while True:
            result = await client.detail(task_id)
            if result.state != "running":
                return result
            await asyncio.sleep(0.05)


def mp4_seconds(data: bytes) -> float:
    with av.open(io.BytesIO(data), mode="r") as container:
        assert container.duration is not None
        return float(container.duration / av.time_base)


async def spec_for(
    client: ImaClient,
    category: str,
    model_id: str,
    prompt: str = "a cat surfing a wave",
    version: str | None = None,
    **params: Any,
) -> TaskSpec:
    product = await client.find_product(category, model_id, version)
    assert product is not None
    wanted = {**product.defaults(), **params}
    urls = [await client.upload_image(png(c), "image/png") for c in ("red", "blue")[: IMAGES[category]]]
    return TaskSpec(category, product, match_rule(product, wanted), prompt, wanted, tuple(urls))


# -- end to end ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("category", "model_id"),
    [
        ("text_to_video", "wan2.6-t2v"),
        ("image_to_video", "wan2.6-i2v"),
        ("first_last_frame_to_video", "kling-video-o1"),
        ("reference_image_to_video", "viduq2"),
    ],
)
async def test_each_category_goes_from_list_to_a_playable_mp4(
    sb: Sandbox, client: ImaClient, category: str, model_id: str
) -> None:
    spec = await spec_for(client, category, model_id)
    task_id = await client.create(spec)
    result = await wait_done(client, task_id)
    assert result.state == "done" and result.url and result.cover
    async with httpx.AsyncClient() as http:
        video = (await http.get(result.url)).content
    seconds = float(spec.parameters["duration"])
    assert mp4_seconds(video) == pytest.approx(seconds, abs=0.5)
    assert result.duration_s == pytest.approx(seconds)
    [entry] = sb.ledger
    assert (entry.task_id, entry.attribute_id, entry.credit) == (
        task_id,
        spec.rule.attribute_id,
        spec.rule.points,
    )
    assert list(entry.images) == list(spec.image_urls)


async def test_products_flatten_every_leaf_of_each_category(client: ImaClient) -> None:
    counts = {c: len(await client.products(c)) for c in IMAGES}
    assert counts == {
        "text_to_video": 14,
        "image_to_video": 14,
        "first_last_frame_to_video": 10,
        "reference_image_to_video": 9,
    }


async def test_find_product_picks_a_pixverse_version_by_name(client: ImaClient) -> None:
    product = await client.find_product("text_to_video", "pixverse", "Pixverse V4")
    assert product is not None and product.name == "Pixverse V4"


async def test_find_product_returns_none_for_an_unknown_model(client: ImaClient) -> None:
    assert await client.find_product("text_to_video", "no-such-model") is None


async def test_pixverse_without_model_in_form_config_is_accepted(sb: Sandbox, client: ImaClient) -> None:
    spec = await spec_for(client, "text_to_video", "pixverse", version="Pixverse V5.5")
    assert "model" not in spec.product.defaults()
    await client.create(spec)
    assert sb.ledger[-1].parameters["model"] == "v5.5"


async def test_a_non_default_veo_rule_is_charged_as_matched(sb: Sandbox, client: ImaClient) -> None:
    product = await client.find_product("text_to_video", "veo-3.1-generate-preview")
    assert product is not None
    rule = max(product.credit_rules, key=lambda r: r.points)
    spec = await spec_for(client, "text_to_video", "veo-3.1-generate-preview", **rule_attributes(rule))
    assert spec.rule == rule
    await client.create(spec)
    assert (sb.ledger[-1].attribute_id, sb.ledger[-1].credit) == (rule.attribute_id, rule.points)


async def test_a_failed_task_reports_its_reason(sb: Sandbox, client: ImaClient) -> None:
    sb.force_task_failure("Generation failed: forced by test")
    task_id = await client.create(await spec_for(client, "text_to_video", "wan2.6-t2v"))
    result = await wait_done(client, task_id)
    assert (result.state, result.error) == ("failed", "Generation failed: forced by test")


# -- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("force", "error"),
    [
        ({"code": 4008}, InsufficientPoints),
        ({"code": 6006}, CreditMismatch),
        ({"code": 6009}, NoRuleMatch),
        ({"code": 6010}, AttributeMismatch),
        ({"code": 400, "message": "No exact rule match"}, NoRuleMatch),
        ({"code": 400, "message": "Attribute ID does not match the calculated rule"}, AttributeMismatch),
        ({"code": 400}, BadParameter),
        ({"code": 400017}, BadParameter),
        ({"code": 400, "message": "content policy violation: people"}, ContentPolicy),
        ({"status": 429}, RateLimited),
        ({"status": 500}, ServerError),
        ({"status": 503}, ModelUnavailable),
        ({"code": 401}, Unauthorized),
    ],
)
async def test_forced_create_errors_are_typed(
    sb: Sandbox, client: ImaClient, force: dict[str, Any], error: type[ImaError]
) -> None:
    spec = await spec_for(client, "text_to_video", "wan2.6-t2v")
    sb.force_create_error(**force)
    with pytest.raises(error) as info:
        await client.create(spec)
    assert type(info.value) is error
    assert sb.ledger == []


async def test_a_wrong_key_is_unauthorized(sb: Sandbox) -> None:
    async with client_for(sb, api_key="ima_wrong") as c:
        with pytest.raises(Unauthorized) as info:
            await c.products("text_to_video")
    assert (info.value.kind, info.value.http_status) == ("unauthorized", 401)


async def test_a_wrong_key_at_upload_is_unauthorized(sb: Sandbox) -> None:
    async with client_for(sb, api_key="ima_wrong") as c:
        with pytest.raises(Unauthorized):
            await c.upload_image(png("red"), "image/png")


async def test_a_wrong_upload_app_key_is_an_upload_failure(sb: Sandbox) -> None:
    async with client_for(sb, upload_app_key="not-the-key") as c:
        with pytest.raises(ImageUploadFailed) as info:
            await c.upload_image(png("red"), "image/png")
    assert info.value.kind == "image_upload"


async def test_an_empty_balance_is_insufficient_points(tmp_path: Path) -> None:
    async with Sandbox(SandboxConfig(port=0, time_scale=SCALE, balance=1, media_dir=tmp_path / "m")) as s:
        async with client_for(s) as c:
            with pytest.raises(InsufficientPoints):
                await c.create(await spec_for(c, "text_to_video", "wan2.6-t2v"))


async def test_a_moderated_prompt_is_content_policy(client: ImaClient) -> None:
    spec = await spec_for(client, "text_to_video", "sora-2-pro", prompt="a woman walking in the rain")
    with pytest.raises(ContentPolicy):
        await client.create(spec)


async def test_parameters_no_rule_prices_are_no_rule_match(client: ImaClient) -> None:
    spec = await spec_for(client, "text_to_video", "wan2.6-t2v")
    bad = TaskSpec(spec.task_type, spec.product, spec.rule, spec.prompt, {**spec.parameters, "duration": 7})
    with pytest.raises(NoRuleMatch):
        await client.create(bad)


async def test_a_rule_of_other_parameters_is_attribute_mismatch(client: ImaClient) -> None:
    spec = await spec_for(client, "text_to_video", "wan2.6-t2v")
    other = next(r for r in spec.product.credit_rules if r != spec.rule)
    with pytest.raises(AttributeMismatch):
        await client.create(TaskSpec(spec.task_type, spec.product, other, spec.prompt, spec.parameters))


async def test_stale_points_are_credit_mismatch(client: ImaClient) -> None:
    spec = await spec_for(client, "text_to_video", "wan2.6-t2v")
    stale = CreditRule(spec.rule.attribute_id, spec.rule.points + 1, spec.rule.attributes)
    with pytest.raises(CreditMismatch):
        await client.create(TaskSpec(spec.task_type, spec.product, stale, spec.prompt, spec.parameters))


async def test_an_invalid_pixverse_model_is_bad_parameter(client: ImaClient) -> None:
    spec = await spec_for(client, "text_to_video", "pixverse", version="Pixverse V5.5", model="v9")
    with pytest.raises(BadParameter) as info:
        await client.create(spec)
    assert info.value.code == 400017


async def test_a_create_answer_that_never_comes_is_uncertain_and_was_charged(sb: Sandbox) -> None:
    async with client_for(sb, create_timeout_s=0.3) as c:
        spec = await spec_for(c, "text_to_video", "wan2.6-t2v")
        sb.force_create_hang(3.0)
        with pytest.raises(CreateUncertain) as info:
            await c.create(spec)
    assert not info.value.retryable
    assert len(sb.ledger) == 1  # the task exists: resending would charge twice


async def test_a_refused_connection_is_a_network_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with ImaClient(base_url=f"http://127.0.0.1:{port}", api_key="ima_k", timeout_s=2.0) as c:
        with pytest.raises(NetworkError):
            await c.products("text_to_video")
        with pytest.raises(NetworkError):
            await c.detail("t")


async def test_an_unknown_category_is_bad_parameter(client: ImaClient) -> None:
    with pytest.raises(BadParameter):
        await client.products("text_to_audio")


# -- cache ----------------------------------------------------------------------------------------
class Counter:
    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, request: httpx.Request) -> None:
        self.paths.append(request.url.path)

    def count(self, path: str = "/open/v1/product/list") -> int:
        return self.paths.count(path)


async def test_fifty_concurrent_callers_share_one_request(sb: Sandbox) -> None:
    counter = Counter()
    async with httpx.AsyncClient(event_hooks={"request": [counter]}) as http, client_for(sb, http=http) as c:
        results = await asyncio.gather(*(c.products("text_to_video") for _ in range(50)))
    assert counter.count() == 1
    assert all(len(r) == 14 for r in results)


async def test_categories_are_cached_separately(sb: Sandbox) -> None:
    counter = Counter()
    async with httpx.AsyncClient(event_hooks={"request": [counter]}) as http, client_for(sb, http=http) as c:
        await asyncio.gather(*(c.products(cat) for cat in IMAGES for _ in range(5)))
    assert counter.count() == 4


async def test_the_cache_refetches_after_the_ttl(sb: Sandbox) -> None:
    now = [0.0]
    counter = Counter()
    async with (
        httpx.AsyncClient(event_hooks={"request": [counter]}) as http,
        client_for(sb, http=http, product_ttl_s=600.0, clock=lambda: now[0]) as c,
    ):
        await c.products("text_to_video")
        now[0] = 599.0
        await c.products("text_to_video")
        assert counter.count() == 1
        now[0] = 601.0
        await c.products("text_to_video")  # served at once from the expired list…
        await wait_until(lambda: counter.count() == 2, "the refresh")  # …which runs in the background


async def test_an_expired_list_is_served_while_it_refreshes_but_not_forever(sb: Sandbox) -> None:
    now = [0.0]
    counter = Counter()
    async with (
        httpx.AsyncClient(event_hooks={"request": [counter]}) as http,
        client_for(sb, http=http, product_ttl_s=600.0, clock=lambda: now[0]) as c,
    ):
        first = await c.products("text_to_video")
        now[0] = 700.0
        assert await c.products("text_to_video") == first and counter.count() == 1  # no wait
        now[0] = 600.0 * 7  # far past the TTL: too stale to serve, so this call waits for the fetch
        await c.products("text_to_video")
        assert counter.count() >= 2


def _listing(points: int, audio: Any = True) -> list[Product]:
    leaf = {"type": "3", "id": "v1", "model_id": "m1", "name": "M1"}
    rule = {"attribute_id": 7, "points": points, "attributes": {"generate_audio": audio}}
    return parse_product_list([{**leaf, "credit_rules": [rule]}], "text_to_video")


async def _refreshed(answers: list[list[Product]]) -> tuple[list[Product], list[Product]]:
    """The list before and after one background refresh of a cache whose fetches answer `answers`."""
    now = [0.0]
    fetched = iter(answers)

    async def fetch(category: str) -> list[Product]:
        return next(fetched)

    cache = ProductCache(fetch, ttl_s=10.0, clock=lambda: now[0])
    before = await cache.get("text_to_video")
    now[0] = 11.0
    await cache.get("text_to_video")  # served stale; the refresh runs meanwhile
    await wait_until(lambda: not cache._inflight, "the refresh")
    return before, await cache.get("text_to_video")


async def test_a_refresh_that_brings_the_same_list_keeps_the_very_same_products() -> None:
    before, after = await _refreshed([_listing(10), _listing(10)])
    assert all(a is b for a, b in zip(before, after, strict=True))


async def test_a_refresh_that_respells_a_value_is_sent_in_the_new_spelling() -> None:
    # True == 1 to Python, not to the service: a create sends the rule's own spelling
    _, after = await _refreshed([_listing(10, audio=True), _listing(10, audio=1)])
    body = build_create_body(TaskSpec("text_to_video", after[0], after[0].credit_rules[0], "a puppy", {}))
    assert repr(body["parameters"][0]["parameters"]["generate_audio"]) == "1"


async def test_a_refresh_that_brings_a_changed_list_replaces_it() -> None:
    before, after = await _refreshed([_listing(10), _listing(12)])
    assert [r.points for r in after[0].credit_rules] == [12] and after[0] is not before[0]


# -- secrets --------------------------------------------------------------------------------------
async def test_the_key_stays_out_of_errors_reprs_and_logs(
    sb: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = sb.config.api_key
    texts: list[str] = []
    async with client_for(sb, upload_app_key="wrong") as c:
        texts += [repr(c), str(c)]
        sb.force_create_error(status=500)
        for call in (
            c.upload_image(png("red"), "image/png"),
            c.create(await spec_for(c, "text_to_video", "wan2.6-t2v")),
        ):
            try:
                await call
            except ImaError as e:
                texts += [str(e), repr(e), e.detail]
                logging.getLogger("test").exception("failed")
    async with client_for(sb, api_key=key + "x") as wrong:
        try:
            await wrong.products("text_to_video")
        except Unauthorized as e:
            texts += [str(e), repr(e)]
    assert all(key not in t for t in texts)
    assert key not in caplog.text


async def test_from_settings_reaches_the_api_and_the_upload_host(settings: Settings) -> None:
    async with ImaClient.from_settings(settings) as c:
        assert len(await c.products("image_to_video")) == 14
        url = await c.upload_image(png("green"), "image/png")
        async with httpx.AsyncClient() as http:
            assert (await http.get(url)).content == png("green")


async def test_hundreds_of_concurrent_polls_keep_a_bounded_number_on_the_wire(tmp_path: Path) -> None:
    from bot.ima.client import MAX_IN_FLIGHT

    async with Sandbox(
        SandboxConfig(port=0, time_scale=SCALE, latency_ms=20, media_dir=tmp_path / "m")
    ) as slow:
        in_flight = peak = 0

        async def sent(_: httpx.Request) -> None:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)

        async def answered(_: httpx.Response) -> None:
            nonlocal in_flight
            in_flight -= 1

        http = httpx.AsyncClient(event_hooks={"request": [sent], "response": [answered]})
        async with client_for(slow, http=http) as c:
            task_id = await c.create(await spec_for(c, "text_to_video", "wan2.6-t2v"))
            results = await asyncio.gather(*(c.detail(task_id) for _ in range(300)))
        await http.aclose()
    assert len(results) == 300 and all(r.task_id == task_id for r in results)
    assert MAX_IN_FLIGHT // 2 <= peak <= MAX_IN_FLIGHT
