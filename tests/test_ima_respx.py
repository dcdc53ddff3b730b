"""Failures a real server cannot easily produce on cue, mocked at the HTTP layer with respx."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from bot.ima import ImaClient
from bot.ima.errors import (
    CreateUncertain,
    ImaError,
    NetworkError,
    ProtocolError,
    ServerError,
    Timeout,
    Unauthorized,
)
from bot.ima.types import CreditRule, Product, TaskSpec

BASE = "https://ima.test"
UPLOAD = "https://upload.test"
KEY = "ima_secret_key_0123456789"


def spec() -> TaskSpec:
    rule = CreditRule(2057, 25, {"duration": 5, "resolution": "720P"})
    product = Product("text_to_video", "wan2.6-t2v", "wan2.6-t2v", "Wan 2.6", (rule,))
    return TaskSpec("text_to_video", product, rule, "a puppy", {"duration": 5, "resolution": "720P"})


@pytest.fixture
async def client() -> AsyncIterator[ImaClient]:
    async with ImaClient(base_url=BASE, api_key=KEY, upload_base_url=UPLOAD, timeout_s=2.0) as c:
        yield c


def assert_no_key(*texts: str) -> None:
    for text in texts:
        assert KEY not in text


@respx.mock
async def test_create_read_timeout_is_create_uncertain(client: ImaClient) -> None:
    respx.post(f"{BASE}/open/v1/tasks/create").mock(side_effect=httpx.ReadTimeout("timed out"))
    with pytest.raises(CreateUncertain) as info:
        await client.create(spec())
    assert info.value.kind == "create_uncertain" and not info.value.retryable


@respx.mock
async def test_create_connection_dropped_after_send_is_create_uncertain(client: ImaClient) -> None:
    respx.post(f"{BASE}/open/v1/tasks/create").mock(
        side_effect=httpx.RemoteProtocolError("Server disconnected without sending a response.")
    )
    with pytest.raises(CreateUncertain):
        await client.create(spec())


@respx.mock
async def test_create_connect_error_is_network_error(client: ImaClient) -> None:
    respx.post(f"{BASE}/open/v1/tasks/create").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(NetworkError) as info:
        await client.create(spec())
    assert info.value.retryable


@respx.mock
async def test_create_malformed_success_answer_is_create_uncertain(client: ImaClient) -> None:
    respx.post(f"{BASE}/open/v1/tasks/create").mock(return_value=httpx.Response(200, content=b"{oops"))
    with pytest.raises(CreateUncertain):
        await client.create(spec())


@respx.mock
async def test_create_success_without_task_id_is_create_uncertain(client: ImaClient) -> None:
    respx.post(f"{BASE}/open/v1/tasks/create").mock(
        return_value=httpx.Response(200, json={"code": 0, "data": {}})
    )
    with pytest.raises(CreateUncertain):
        await client.create(spec())


@respx.mock
async def test_create_gateway_timeout_is_create_uncertain(client: ImaClient) -> None:
    respx.post(f"{BASE}/open/v1/tasks/create").mock(return_value=httpx.Response(504, text="Gateway Timeout"))
    with pytest.raises(CreateUncertain):
        await client.create(spec())


@respx.mock
async def test_create_gateway_500_without_the_envelope_is_create_uncertain(client: ImaClient) -> None:
    respx.post(f"{BASE}/open/v1/tasks/create").mock(
        return_value=httpx.Response(500, text="<html>oops</html>")
    )
    with pytest.raises(CreateUncertain):
        await client.create(spec())


@respx.mock
async def test_create_imas_own_500_envelope_is_server_error(client: ImaClient) -> None:
    respx.post(f"{BASE}/open/v1/tasks/create").mock(
        return_value=httpx.Response(500, json={"code": 500, "message": "Internal Server Error", "data": None})
    )
    with pytest.raises(ServerError):
        await client.create(spec())


@respx.mock
async def test_products_malformed_json_is_protocol_error(client: ImaClient) -> None:
    respx.get(f"{BASE}/open/v1/product/list").mock(return_value=httpx.Response(200, content=b"<html>"))
    with pytest.raises(ProtocolError):
        await client.products("text_to_video")


@respx.mock
async def test_detail_read_timeout_is_timeout(client: ImaClient) -> None:
    respx.post(f"{BASE}/open/v1/tasks/detail").mock(side_effect=httpx.ReadTimeout("timed out"))
    with pytest.raises(Timeout):
        await client.detail("t1")


@respx.mock
async def test_detail_dropped_connection_is_network_error(client: ImaClient) -> None:
    respx.post(f"{BASE}/open/v1/tasks/detail").mock(side_effect=httpx.ReadError("reset"))
    with pytest.raises(NetworkError):
        await client.detail("t1")


@respx.mock
async def test_detail_settles_for_the_watermark_url_after_the_grace_polls() -> None:
    media = {"resource_status": 1, "status": "success", "url": "", "watermark_url": "https://cdn/wm.mp4"}
    respx.post(f"{BASE}/open/v1/tasks/detail").mock(
        return_value=httpx.Response(200, json={"code": 0, "data": {"medias": [media]}})
    )
    async with ImaClient(base_url=BASE, api_key=KEY, watermark_grace_polls=2) as c:
        states = [(await c.detail("t1")).state for _ in range(3)]
    assert states == ["running", "running", "done"]


@respx.mock
async def test_headers_carry_the_key_app_source_and_language() -> None:
    route = respx.get(f"{BASE}/open/v1/product/list").mock(
        return_value=httpx.Response(200, json={"code": 0, "data": []})
    )
    async with ImaClient(base_url=BASE, api_key=KEY, language="zh") as c:
        await c.products("text_to_video")
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["x-app-source"] == "ima_skills"
    assert request.headers["x_app_language"] == "zh"
    assert dict(request.url.params) == {"app": "ima", "platform": "web", "category": "text_to_video"}


@respx.mock
async def test_upload_connect_error_keeps_the_key_out_of_the_error(client: ImaClient) -> None:
    respx.get(f"{UPLOAD}/api/rest/oss/getuploadtoken").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(NetworkError) as info:
        await client.upload_image(b"img", "image/png")
    assert_no_key(str(info.value), repr(info.value), repr(info.value.__cause__), repr(info.value.__context__))


@respx.mock
async def test_error_messages_echoing_the_key_are_masked(client: ImaClient) -> None:
    respx.get(f"{BASE}/open/v1/product/list").mock(
        return_value=httpx.Response(401, json={"code": 401, "message": f"bad key {KEY}"})
    )
    with pytest.raises(Unauthorized) as info:
        await client.products("text_to_video")
    assert_no_key(str(info.value), repr(info.value), info.value.detail)


@respx.mock
async def test_the_key_never_reaches_logs_or_reprs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    respx.get(f"{UPLOAD}/api/rest/oss/getuploadtoken").mock(
        return_value=httpx.Response(
            200, json={"code": 0, "data": {"ful": f"{UPLOAD}/put/1", "fdl": "https://cdn/1"}}
        )
    )
    respx.put(f"{UPLOAD}/put/1").mock(return_value=httpx.Response(500))
    respx.post(f"{BASE}/open/v1/tasks/create").mock(side_effect=httpx.ReadTimeout("timed out"))
    seen: list[str] = []
    async with ImaClient(base_url=BASE, api_key=KEY, upload_base_url=UPLOAD) as c:
        seen.append(repr(c))
        seen.append(str(c))
        for call in (c.upload_image(b"x", "image/png"), c.create(spec())):
            try:
                await call
            except ImaError as e:
                seen += [str(e), repr(e)]
                logging.getLogger("test").exception("failure")  # a caller's traceback, causes included
            else:
                pytest.fail("the call should have failed")
    assert_no_key(*seen, caplog.text)
    assert "getuploadtoken" in caplog.text  # httpx did log the request, masked


@respx.mock
async def test_upload_sends_the_signed_token_request_then_puts_the_bytes() -> None:
    token = respx.get(f"{UPLOAD}/api/rest/oss/getuploadtoken").mock(
        return_value=httpx.Response(
            200, json={"code": 0, "data": {"ful": f"{UPLOAD}/put/9", "fdl": "https://cdn/9.png"}}
        )
    )
    put = respx.put(f"{UPLOAD}/put/9").mock(return_value=httpx.Response(200))
    async with ImaClient(base_url=BASE, api_key=KEY, upload_base_url=UPLOAD, upload_app_key="appkey") as c:
        url = await c.upload_image(b"\x89PNG", "image/png")
    assert url == "https://cdn/9.png"
    q = dict(token.calls.last.request.url.params)
    assert (q["appUid"], q["cmimToken"], q["appId"], q["appKey"]) == (KEY, KEY, "webAgent", "appkey")
    assert (q["fService"], q["fType"], q["fSuffix"], q["fContentType"]) == (
        "privite",
        "picture",
        "png",
        "image/png",
    )
    assert len(q["nonce"]) == 21 and q["sign"].isupper()
    sent = put.calls.last.request
    assert sent.content == b"\x89PNG" and sent.headers["content-type"] == "image/png"
    assert "authorization" not in sent.headers


@respx.mock
async def test_a_failed_product_fetch_is_not_cached(client: ImaClient) -> None:
    route = respx.get(f"{BASE}/open/v1/product/list").mock(
        side_effect=[
            httpx.Response(500, json={"code": 500, "message": "busy"}),
            httpx.Response(
                200, json={"code": 0, "data": [{"type": "3", "id": "v", "model_id": "m", "name": "M"}]}
            ),
        ]
    )
    with pytest.raises(ServerError):
        await client.products("text_to_video")
    assert [p.id for p in await client.products("text_to_video")] == ["v"]
    assert route.call_count == 2


@respx.mock
async def test_concurrent_callers_share_one_failing_fetch(client: ImaClient) -> None:
    route = respx.get(f"{BASE}/open/v1/product/list").mock(return_value=httpx.Response(503))
    results = await asyncio.gather(
        *(client.products("text_to_video") for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, ImaError) and r.kind == "model_unavailable" for r in results)
    assert route.call_count == 1


@respx.mock
async def test_one_caller_giving_up_does_not_cancel_the_shared_fetch(client: ImaClient) -> None:
    # the list is asked for, and answered only once the impatient caller gave up
    asked, answer = asyncio.Event(), asyncio.Event()

    async def held(request: httpx.Request) -> httpx.Response:
        asked.set()
        await answer.wait()
        return httpx.Response(
            200, json={"code": 0, "data": [{"type": "3", "id": "v", "model_id": "m", "name": "M"}]}
        )

    route = respx.get(f"{BASE}/open/v1/product/list").mock(side_effect=held)
    impatient = asyncio.create_task(client.products("text_to_video"))
    patient = asyncio.create_task(client.products("text_to_video"))
    await asked.wait()
    impatient.cancel()
    answer.set()
    assert [p.id for p in await patient] == ["v"]
    assert route.call_count == 1


@respx.mock
async def test_invalidate_makes_the_next_call_fetch_again(client: ImaClient) -> None:
    route = respx.get(f"{BASE}/open/v1/product/list").mock(
        return_value=httpx.Response(200, json={"code": 0, "data": []})
    )
    await client.products("text_to_video")
    await client.products("text_to_video")
    client.invalidate("text_to_video")
    await client.products("text_to_video")
    assert route.call_count == 2
