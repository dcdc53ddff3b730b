"""Sandbox tasks over real HTTP: running to a real mp4, forced and seeded faults, ledger, uploads."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from PIL import Image

import bot.sandbox.server as server_module
from bot.ima.upload import DEFAULT_UPLOAD_APP_KEY
from bot.sandbox import Sandbox, SandboxConfig
from bot.sandbox.ledger import key_fingerprint
from bot.sandbox.render import RenderJob, render
from bot.sandbox.uploads import sign
from tests.test_sandbox import HEADERS, KEY, body, create, detail, leaf

SCALE = 0.002  # Wan 2.6 (60-120 s) finishes in 0.12-0.24 s


@pytest.fixture
async def sb(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxConfig(port=0, time_scale=SCALE, seed=3, media_dir=tmp_path / "media")) as s:
        yield s


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def wan_body(http: httpx.AsyncClient, sb: Sandbox, **params: Any) -> dict[str, Any]:
    return body(await leaf(http, sb, "text_to_video", "Wan 2.6"), "text_to_video", **params)


async def start(http: httpx.AsyncClient, sb: Sandbox, b: dict[str, Any]) -> str:
    r = await create(http, sb, b)
    assert r.status_code == 200 and r.json()["code"] == 0, r.text
    return str(r.json()["data"]["id"])


async def until_settled(
    http: httpx.AsyncClient, sb: Sandbox, task_id: str, limit: float = 20, every: float = 0.02
) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        data = await detail(http, sb, task_id)
        if data["medias"][0]["resource_status"] in (1, 2):
            return data
        await asyncio.sleep(every)
    raise AssertionError("task did not settle")


def decode(data: bytes) -> tuple[float, int, int, str, str]:
    with av.open(io.BytesIO(data), mode="r") as c:
        s = c.streams.video[0]
        assert c.duration is not None
        return (
            c.duration / 1_000_000,
            s.codec_context.width,
            s.codec_context.height,
            s.codec_context.name,
            str(s.codec_context.pix_fmt),
        )


# -- a task runs to a real video ------------------------------------------------------------------
async def test_a_text_to_video_task_ends_with_a_playable_mp4_of_the_asked_duration(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    task_id = await start(http, sb, await wan_body(http, sb, duration=5, aspect_ratio="16:9"))
    data = await until_settled(http, sb, task_id)
    [media] = data["medias"]
    assert data["id"] == task_id and media["resource_status"] == 1 and media["status"] == "success"
    assert media["url"].endswith(".mp4") and media["cover"].endswith(".jpg")
    assert media["duration_str"] == "5s" and media["format"] == "mp4"
    video = (await http.get(media["url"])).content
    duration, w, h, codec, pix = decode(video)
    assert abs(duration - 5) <= 0.5 and codec == "h264" and pix == "yuv420p"
    assert abs(w / h - 16 / 9) < 0.05
    cover = Image.open(io.BytesIO((await http.get(media["cover"])).content))
    assert cover.format == "JPEG" and cover.size == (w, h)


@pytest.mark.parametrize(
    ("name", "params", "ratio", "seconds"),
    [
        ("Google Veo 3.1", {"aspect_ratio": "9:16", "duration": 4}, 9 / 16, 4),
        ("Wan 2.6", {"aspect_ratio": "1:1", "duration": 10}, 1.0, 10),
        ("Hailuo 2.0", {"aspect_ratio": "4:3"}, 4 / 3, 6),
    ],
)
async def test_the_video_follows_the_requested_aspect_ratio_and_duration(
    sb: Sandbox, http: httpx.AsyncClient, name: str, params: dict[str, Any], ratio: float, seconds: int
) -> None:
    node = await leaf(http, sb, "text_to_video", name)
    task_id = await start(http, sb, body(node, "text_to_video", **params))
    media = (await until_settled(http, sb, task_id))["medias"][0]
    duration, w, h, _, _ = decode((await http.get(media["url"])).content)
    assert abs(duration - seconds) <= 0.5 and abs(w / h - ratio) < 0.05
    assert media["duration_str"] == f"{seconds}s"


async def test_a_running_task_alternates_pending_and_processing(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    async with Sandbox(SandboxConfig(port=0, time_scale=1.0, media_dir=tmp_path)) as s:
        task_id = await start(http, s, await wan_body(http, s))
        seen = [
            (m["resource_status"], m["status"])
            for m in [(await detail(http, s, task_id))["medias"][0] for _ in range(4)]
        ]
    assert seen == [(None, "pending"), (0, "processing"), (None, "pending"), (0, "processing")]


async def test_done_needs_the_file_as_well_as_the_time(
    sb: Sandbox, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    real = render  # what the server imported, before the test patches its name

    def slow_render(job: RenderJob, stop: threading.Event | None = None) -> None:
        gate.wait(5)
        real(job, stop)

    monkeypatch.setattr(server_module, "render", slow_render)
    task_id = await start(http, sb, await wan_body(http, sb))
    await asyncio.sleep(0.4)  # well past the 0.24 s at most the timer takes
    assert (await detail(http, sb, task_id))["medias"][0]["resource_status"] in (None, 0)
    gate.set()
    assert (await until_settled(http, sb, task_id))["medias"][0]["resource_status"] == 1


async def test_an_unknown_task_id_is_an_error(sb: Sandbox, http: httpx.AsyncClient) -> None:
    r = await http.post(f"{sb.base_url}/open/v1/tasks/detail", headers=HEADERS, json={"task_id": "nope"})
    assert r.status_code == 200 and r.json()["code"] == 404


# -- forced outcomes --------------------------------------------------------------------------------
async def test_a_forced_task_failure_reports_status_2_with_the_message(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    sb.force_task_failure(message="model exploded")
    data = await until_settled(http, sb, await start(http, sb, await wan_body(http, sb)))
    [media] = data["medias"]
    assert (
        media["resource_status"] == 2
        and media["status"] == "failed"
        and media["error_msg"] == "model exploded"
    )


async def test_a_forced_never_finishing_task_stays_processing(sb: Sandbox, http: httpx.AsyncClient) -> None:
    sb.force_task_never_finishes()
    stuck = await start(http, sb, await wan_body(http, sb))
    normal = await start(http, sb, await wan_body(http, sb))
    await until_settled(http, sb, normal)
    assert (await detail(http, sb, stuck))["medias"][0]["resource_status"] in (None, 0)


async def test_a_forced_http_500_charges_nothing_and_is_used_once(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    sb.force_create_error(status=500)
    b = await wan_body(http, sb)
    r = await create(http, sb, b)
    assert r.status_code == 500 and r.json()["code"] == 500
    assert sb.ledger == [] and sb.balance == 10000
    assert (await create(http, sb, b)).json()["code"] == 0


async def test_a_forced_body_code_comes_with_http_200(sb: Sandbox, http: httpx.AsyncClient) -> None:
    sb.force_create_error(code=6010, message="Attribute ID does not match the calculated rule")
    r = await create(http, sb, await wan_body(http, sb))
    assert r.status_code == 200 and r.json() == {
        "code": 6010,
        "message": "Attribute ID does not match the calculated rule",
        "data": None,
    }


async def test_forced_outcomes_are_used_in_order(sb: Sandbox, http: httpx.AsyncClient) -> None:
    sb.force_create_error(status=500)
    sb.force_create_error(status=429)
    sb.force_create_error(code=6006, message="credit mismatch")
    b = await wan_body(http, sb)
    got = [((r := await create(http, sb, b)).status_code, r.json()["code"]) for _ in range(4)]
    assert got == [(500, 500), (429, 429), (200, 6006), (200, 0)]


async def test_a_forced_task_outcome_waits_for_a_task_that_is_created(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    sb.force_task_failure(message="forced")
    bad = await wan_body(http, sb, duration=10)
    bad["parameters"][0]["credit"] = 1
    assert (await create(http, sb, bad)).json()["code"] == 6006
    data = await until_settled(http, sb, await start(http, sb, await wan_body(http, sb)))
    assert data["medias"][0]["error_msg"] == "forced"


async def test_a_hanging_create_still_creates_and_charges_the_task(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    sb.force_create_hang(2)
    with pytest.raises(httpx.ReadTimeout):
        await create(http, sb, await wan_body(http, sb), timeout=0.3)
    [entry] = sb.ledger
    assert sb.balance == 10000 - entry.credit
    assert (await until_settled(http, sb, entry.task_id))["medias"][0]["resource_status"] == 1


async def test_stopping_releases_a_hanging_create(tmp_path: Path, http: httpx.AsyncClient) -> None:
    s = Sandbox(SandboxConfig(port=0, media_dir=tmp_path))
    await s.start()
    s.force_create_hang(30)
    pending = asyncio.create_task(create(http, s, await wan_body(http, s)))
    while not s.ledger:  # noqa: ASYNC110 - nothing to await but the request arriving
        await asyncio.sleep(0.01)
    t0 = time.monotonic()
    await s.stop()
    assert time.monotonic() - t0 < 5
    await asyncio.gather(pending, return_exceptions=True)


# -- seeded faults ----------------------------------------------------------------------------------
async def statuses(tmp_path: Path, http: httpx.AsyncClient, seed: int) -> list[int]:
    cfg = SandboxConfig(port=0, seed=seed, error_rate_429=0.3, error_rate_500=0.2, media_dir=tmp_path)
    async with Sandbox(cfg) as s:
        return [
            (
                await http.get(
                    f"{s.base_url}/open/v1/product/list",
                    headers=HEADERS,
                    params={"category": "text_to_video"},
                )
            ).status_code
            for _ in range(40)
        ]


async def test_injected_errors_repeat_with_the_seed(tmp_path: Path, http: httpx.AsyncClient) -> None:
    first, again, other = (
        await statuses(tmp_path, http, 5),
        await statuses(tmp_path, http, 5),
        await statuses(tmp_path, http, 6),
    )
    assert first == again and first != other
    assert {200, 429, 500} == set(first)


async def failed_tasks(tmp_path: Path, http: httpx.AsyncClient, seed: int) -> list[bool]:
    cfg = SandboxConfig(port=0, seed=seed, fail_rate=0.5, time_scale=SCALE, media_dir=tmp_path)
    async with Sandbox(cfg) as s:
        b = await wan_body(http, s)
        ids = [await start(http, s, b) for _ in range(12)]
        return [(await until_settled(http, s, i))["medias"][0]["resource_status"] == 2 for i in ids]


async def test_random_task_failures_repeat_with_the_seed(tmp_path: Path, http: httpx.AsyncClient) -> None:
    first, again = await failed_tasks(tmp_path, http, 11), await failed_tasks(tmp_path, http, 11)
    assert first == again and any(first) and not all(first)


async def test_latency_is_added_to_api_requests(tmp_path: Path, http: httpx.AsyncClient) -> None:
    async with Sandbox(SandboxConfig(port=0, latency_ms=150, media_dir=tmp_path)) as s:
        t0 = time.monotonic()
        await http.get(
            f"{s.base_url}/open/v1/product/list", headers=HEADERS, params={"category": "text_to_video"}
        )
        assert time.monotonic() - t0 >= 0.15


# -- ledger ---------------------------------------------------------------------------------------------
async def test_the_ledger_records_each_task_without_the_key(sb: Sandbox, http: httpx.AsyncClient) -> None:
    b = await wan_body(http, sb, prompt="waves on rocks", resolution="1080P")
    task_id = await start(http, sb, b)
    await start(http, sb, await wan_body(http, sb))
    first, second = sb.ledger
    assert first.task_id == task_id and first.task_type == "text_to_video" and first.model_id == "wan2.6-t2v"
    assert first.model_version == "wan2.6-t2v" and first.attribute_id == 2058 and first.credit == 40
    assert first.prompt == "waves on rocks" and first.parameters["resolution"] == "1080P"
    assert first.key_fingerprint == key_fingerprint(KEY) and KEY not in repr(first)
    assert first.created_at <= second.created_at <= time.time()
    assert sb.balance == 10000 - 40 - 25


async def test_a_hundred_concurrent_tasks_render_a_bounded_number_at_once(
    sb: Sandbox, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = threading.Lock()
    running, peak = [0], [0]
    real = render  # what the server imported, before the test patches its name

    def counting(job: RenderJob, stop: threading.Event | None = None) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            real(job, stop)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(server_module, "render", counting)
    node = await leaf(http, sb, "text_to_video", "SeeDance 1.5 Pro")  # 4 s clips
    b = body(node, "text_to_video")
    ids = await asyncio.gather(*(start(http, sb, b) for _ in range(100)))
    done = await asyncio.gather(*(until_settled(http, sb, i, limit=50, every=0.2) for i in ids))
    assert all(d["medias"][0]["resource_status"] == 1 for d in done)
    assert len({e.task_id for e in sb.ledger}) == 100 and 1 <= peak[0] <= 2


# -- media dir ----------------------------------------------------------------------------------------
async def test_a_temporary_media_dir_is_removed_on_stop(http: httpx.AsyncClient) -> None:
    async with Sandbox(SandboxConfig(port=0, time_scale=SCALE)) as s:
        media = s.media_dir
        await until_settled(http, s, await start(http, s, await wan_body(http, s)))
        assert any(media.glob("*.mp4"))
    assert not media.exists()


# -- upload ---------------------------------------------------------------------------------------------
def token_query(**over: str) -> dict[str, str]:
    ts, nonce = str(int(time.time())), "0123456789abcdef01234"
    q = {
        "appUid": KEY,
        "appId": "webAgent",
        "appKey": DEFAULT_UPLOAD_APP_KEY,
        "cmimToken": KEY,
        "sign": sign("webAgent", DEFAULT_UPLOAD_APP_KEY, ts, nonce),
        "timestamp": ts,
        "nonce": nonce,
        "fService": "privite",
        "fType": "picture",
        "fSuffix": "png",
        "fContentType": "image/png",
    }
    q.update(over)
    return q


async def test_an_upload_round_trip_serves_the_same_bytes(sb: Sandbox, http: httpx.AsyncClient) -> None:
    r = await http.get(f"{sb.base_url}/api/rest/oss/getuploadtoken", params=token_query())
    assert r.status_code == 200 and r.json()["code"] == 0
    ful, fdl = r.json()["data"]["ful"], r.json()["data"]["fdl"]
    assert ful.startswith(sb.base_url) and fdl.startswith(sb.base_url) and fdl.endswith(".png")
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10
    put = await http.put(ful, content=data, headers={"Content-Type": "image/png"})
    assert put.status_code == 200
    assert (await http.get(fdl)).content == data
    again = await http.put(ful, content=data, headers={"Content-Type": "image/png"})
    assert again.status_code == 403  # presigned URLs are single-use


@pytest.mark.parametrize(
    ("over", "status", "code"),
    [
        ({"sign": "0" * 40}, 200, 400),
        ({"appKey": "someone_elses_key"}, 200, 400),
        ({"appUid": "ima_wrong", "cmimToken": "ima_wrong"}, 401, 401),
        ({"cmimToken": ""}, 401, 401),
        ({"timestamp": "1000"}, 200, 400),
    ],
)
async def test_a_bad_upload_token_request_is_refused(
    sb: Sandbox, http: httpx.AsyncClient, over: dict[str, str], status: int, code: int
) -> None:
    q = token_query(**over)
    if "timestamp" in over:
        q["sign"] = sign("webAgent", DEFAULT_UPLOAD_APP_KEY, q["timestamp"], q["nonce"])
    r = await http.get(f"{sb.base_url}/api/rest/oss/getuploadtoken", params=q)
    assert (r.status_code, r.json()["code"]) == (status, code)


async def test_an_upload_over_the_cap_is_413(tmp_path: Path, http: httpx.AsyncClient) -> None:
    async with Sandbox(SandboxConfig(port=0, max_upload_bytes=1000, media_dir=tmp_path)) as s:
        ful = (await http.get(f"{s.base_url}/api/rest/oss/getuploadtoken", params=token_query())).json()[
            "data"
        ]["ful"]
        r = await http.put(ful, content=b"x" * 1001, headers={"Content-Type": "image/png"})
        assert r.status_code == 413


async def test_an_upload_with_another_content_type_is_403(sb: Sandbox, http: httpx.AsyncClient) -> None:
    ful = (await http.get(f"{sb.base_url}/api/rest/oss/getuploadtoken", params=token_query())).json()["data"][
        "ful"
    ]
    r = await http.put(ful, content=b"data", headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 403
