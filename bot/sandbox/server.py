"""Sandbox: an IMA-compatible HTTP server on loopback (aiohttp.web), with real mp4 output.

Endpoints: GET /open/v1/product/list, POST /open/v1/tasks/create, POST /open/v1/tasks/detail,
GET /api/rest/oss/getuploadtoken, PUT /oss/upload/{token}, GET /media/... (static).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from bot.catalog import load_catalog
from bot.sandbox.config import SandboxConfig
from bot.sandbox.data import product_tree, rules
from bot.sandbox.errors import ApiError, forced
from bot.sandbox.faults import Faults, Outcome
from bot.sandbox.ledger import LedgerEntry, LedgerFile, key_fingerprint
from bot.sandbox.matching import canon
from bot.sandbox.render import RenderAborted, RenderJob, render
from bot.sandbox.tasks import Task
from bot.sandbox.uploads import UploadDesk
from bot.sandbox.validate import CreateRequest, validate_create

log = logging.getLogger(__name__)

API_PREFIX = "/open/v1/"
UPLOAD_TOKEN_PATH = "/api/rest/oss/getuploadtoken"
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _ok(data: Any) -> web.Response:
    return web.json_response({"code": 0, "message": "success", "data": data})


def _fail(error: ApiError) -> web.Response:
    return web.json_response(error.envelope(), status=error.http)


class Sandbox:
    """The local IMA service. `async with Sandbox(cfg) as sb:` or `await sb.start()` / `await sb.stop()`."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.ledger: list[LedgerEntry] = []
        self._balance = self.config.balance
        self._faults = Faults(self.config)
        self._tasks: dict[str, Task] = {}
        self._catalog = load_catalog()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._media_dir: Path | None = None
        self._own_media_dir = False
        self._uploads: UploadDesk | None = None
        self._render_slots = asyncio.Semaphore(max(1, int(rules()["render"]["max_workers"])))
        self._renders: set[asyncio.Task[None]] = set()
        self._stop_renders = threading.Event()
        self._stopping = asyncio.Event()
        self._ledger_file: LedgerFile | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Bind and serve (port 0 picks a free port; read `base_url` afterwards)."""
        if self._runner is not None:
            raise RuntimeError("sandbox already started")
        if self.config.media_dir is None:
            self._media_dir = Path(tempfile.mkdtemp(prefix="ima-sandbox-"))
            self._own_media_dir = True
        else:
            self._media_dir = Path(self.config.media_dir)
            self._media_dir.mkdir(parents=True, exist_ok=True)
        (self._media_dir / "uploads").mkdir(exist_ok=True)
        self._uploads = UploadDesk(self.config, self._media_dir / "uploads")
        app = web.Application(middlewares=[self._api_middleware])
        app.router.add_get("/open/v1/product/list", self._product_list)
        app.router.add_post("/open/v1/tasks/create", self._create)
        app.router.add_post("/open/v1/tasks/detail", self._detail)
        app.router.add_get(UPLOAD_TOKEN_PATH, self._upload_token)
        app.router.add_put("/oss/upload/{token}", self._upload_put)
        app.router.add_static("/media", self._media_dir)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port, shutdown_timeout=1.0)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            self._cleanup_media()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        if self.config.ledger_file is not None:
            self._ledger_file = LedgerFile(Path(self.config.ledger_file))
        log.info("IMA sandbox serving at %s (media in %s)", self.base_url, self._media_dir)

    async def stop(self) -> None:
        """Stop serving, finish or abort renders, and remove a temporary media directory."""
        if self._runner is None:
            return
        self._stopping.set()
        self._stop_renders.set()
        if self._renders:
            await asyncio.gather(*self._renders, return_exceptions=True)
        await self._runner.cleanup()
        self._runner = None
        if self._ledger_file is not None:
            self._ledger_file.close()
            self._ledger_file = None
        self._cleanup_media()

    def _cleanup_media(self) -> None:
        if self._own_media_dir and self._media_dir is not None:
            shutil.rmtree(self._media_dir, ignore_errors=True)

    # -- public state -----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """http://host:port of the running sandbox (the same host serves uploads and media)."""
        if self._port is None:
            raise RuntimeError("sandbox not started")
        host = "127.0.0.1" if self.config.host in ("", "0.0.0.0") else self.config.host
        return f"http://{host}:{self._port}"

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("sandbox not started")
        return self._port

    @property
    def balance(self) -> int:
        """Points left on the sandbox account."""
        return self._balance

    @property
    def media_dir(self) -> Path:
        if self._media_dir is None:
            raise RuntimeError("sandbox not started")
        return self._media_dir

    # -- forcing outcomes (tests) -------------------------------------------------------------------
    def force_create_error(
        self, status: int | None = None, code: int | None = None, message: str | None = None
    ) -> None:
        """The next create request fails: with a real HTTP `status` (e.g. 500, 429) and/or a body
        `code` answered with HTTP 200 (e.g. 6010). Nothing is created or charged."""
        self._faults.push(Outcome("create_error", error=forced(status, code, message)))

    def force_create_hang(self, seconds: float) -> None:
        """The next task is created and charged, but its create answer comes `seconds` late."""
        self._faults.push(Outcome("create_hang", seconds=seconds))

    def force_create_then_502(self) -> None:
        """The next task is created and charged, but the bot gets a gateway's 502 page instead of
        the answer: the case where only "don't send it again" keeps the bill right."""
        self._faults.push(Outcome("create_then_502"))

    def force_task_failure(self, message: str = "Generation failed: forced by test") -> None:
        """The next task created fails when its time is up (resource_status 2, status failed)."""
        self._faults.push(Outcome("task_failure", message=message))

    def force_task_never_finishes(self) -> None:
        """The next task created stays processing forever."""
        self._faults.push(Outcome("never_finishes"))

    # -- middleware: latency, auth, injected errors ----------------------------------------------
    @web.middleware
    async def _api_middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX):
            return await handler(request)
        if request.can_read_body:
            # the request has arrived: like a real service, finish it even if the client goes
            # away meanwhile (a bot killed during a create may still be charged for it)
            await request.read()
        if self.config.latency_ms:
            await asyncio.sleep(self.config.latency_ms / 1000)
        if not self._authorized(request):
            return _fail(ApiError("unauthorized"))
        injected = self._faults.http_error()
        if injected is not None:
            log.debug("injected %s on %s", injected.http, request.path)
            return _fail(injected)
        try:
            return await handler(request)
        except ApiError as e:
            return _fail(e)

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token.strip() == self.config.api_key

    # -- API 1: product list ----------------------------------------------------------------------
    async def _product_list(self, request: web.Request) -> web.Response:
        category = request.query.get("category", "")
        if not category:
            raise ApiError("bad_request", "category is required")
        if request.query.get("app", "ima") != "ima" or request.query.get("platform", "web") != "web":
            raise ApiError("bad_request", "unknown app or platform")
        tree = product_tree().get(category)
        if tree is None:
            raise ApiError("bad_request", f"unknown category: {category}")
        return _ok(tree)

    # -- API 2: create ----------------------------------------------------------------------------
    async def _create(self, request: web.Request) -> web.Response:
        forced_error = self._faults.take_create_error()
        if forced_error is not None:
            return _fail(forced_error)
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise ApiError("bad_request", "request body is not JSON") from None
        req = validate_create(body)
        if self._balance < req.credit:
            raise ApiError("insufficient_points", f"{req.credit} needed, {self._balance} left")
        outcome = self._faults.take_task_outcome()
        answer, delay = self._create_answer(outcome)
        task = self._open_task(req, outcome, answer)
        if delay > 0:
            # created and charged, but the answer comes late: the dangerous real-world case
            log.info("task %s created; holding the answer %.2f s", task.id, delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
        if answer == "502":
            # a gateway in front of the service lost the answer: the task exists all the same
            log.info("task %s created; answering 502 like a gateway", task.id)
            return web.Response(status=502, content_type="text/html", text=_BAD_GATEWAY)
        return _ok({"id": task.id})

    def _create_answer(self, outcome: Outcome | None) -> tuple[str, float]:
        """How the create of a task being made is answered ("ok", "slow", "502") and how late."""
        if outcome is not None and outcome.kind == "create_hang":
            return "slow", outcome.seconds
        if outcome is not None and outcome.kind == "create_then_502":
            return "502", 0.0
        answer = self._faults.create_answer()
        return answer, self.config.slow_create_ms / 1000 if answer == "slow" else 0.0

    def _open_task(self, req: CreateRequest, outcome: Outcome | None, answer: str = "ok") -> Task:
        """Charge, write the ledger, start the clock and the render."""
        task_id = f"sbx_{uuid.uuid4().hex}"
        now = time.time()
        self._balance -= req.credit
        info = self._catalog.by_id(req.leaf.model_id, req.task_type, req.leaf.name) or self._catalog.unknown
        size = f"{req.parameters.get('duration')}|{req.parameters.get('resolution')}"
        kind = f"{req.leaf.model_id}|{req.task_type}|{size}"
        delay = self._faults.generation_seconds(info.est_min, info.est_max, kind)
        fail = self._faults.task_failure()
        if outcome is not None and outcome.kind == "task_failure":
            fail = outcome.message
        entry = LedgerEntry(
            task_id=task_id,
            key_fingerprint=key_fingerprint(self.config.api_key),
            task_type=req.task_type,
            model_id=req.leaf.model_id,
            model_name=req.leaf.name,
            model_version=req.leaf.version,
            attribute_id=req.attribute_id,
            credit=req.credit,
            prompt=req.prompt,
            created_at=now,
            parameters=json.loads(json.dumps(req.parameters)),  # a deep copy the caller cannot alter
            images=req.images,
            injected_failure=fail,
            answer=answer,
            ready_at=now + delay,
        )
        self.ledger.append(entry)
        if self._ledger_file is not None:
            self._ledger_file.append(entry)
        ready_at = (
            math.inf if outcome is not None and outcome.kind == "never_finishes" else time.monotonic() + delay
        )
        task = Task(task_id, req, now, ready_at, _duration(req), _aspect_ratio(req), fail_message=fail)
        if fail is None and not task.never_finishes:
            task.render = asyncio.create_task(self._render(task))
            self._renders.add(task.render)
            task.render.add_done_callback(self._render_done)
        self._tasks[task_id] = task
        log.info(
            "task %s created: %s %s (%d pts, ready in %.2f s)",
            task_id,
            req.task_type,
            req.leaf.name,
            req.credit,
            delay,
        )
        return task

    def _render_done(self, render_task: asyncio.Task[None]) -> None:
        self._renders.discard(render_task)
        if not render_task.cancelled():
            render_task.exception()  # seen by detail as a failure; no "never retrieved" warning

    async def _render(self, task: Task) -> None:
        job = RenderJob(
            video_path=self.media_dir / f"{task.id}.mp4",
            cover_path=self.media_dir / f"{task.id}.jpg",
            prompt=task.request.prompt,
            model_name=task.request.leaf.name,
            duration_s=task.duration_s,
            aspect_ratio=task.aspect_ratio,
            seed=self.config.seed + len(self._tasks),
        )
        async with self._render_slots:  # a bounded number of renders at once, whatever the load
            if self._stop_renders.is_set():
                raise RenderAborted(task.id)
            try:
                await asyncio.to_thread(render, job, self._stop_renders)
            except RenderAborted:
                raise
            except Exception:
                log.exception("render of %s failed", task.id)
                raise

    # -- API 3: detail ----------------------------------------------------------------------------
    async def _detail(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise ApiError("bad_request", "request body is not JSON") from None
        task_id = body.get("task_id") if isinstance(body, dict) else None
        if not task_id:
            raise ApiError("bad_request", "task_id is required")
        task = self._tasks.get(str(task_id))
        if task is None:
            raise ApiError("task_not_found")
        return _ok(task.detail(time.monotonic(), self.base_url))

    # -- upload -----------------------------------------------------------------------------------
    async def _upload_token(self, request: web.Request) -> web.Response:
        assert self._uploads is not None
        if self.config.latency_ms:
            await asyncio.sleep(self.config.latency_ms / 1000)
        try:
            grant = self._uploads.grant(request.query)
        except ApiError as e:
            return _fail(e)
        ful = f"{self.base_url}/oss/upload/{grant.token}?Expires={int(grant.expires_at)}"
        fdl = f"{self.base_url}/media/uploads/{grant.filename}"
        return _ok({"ful": ful, "fdl": fdl})

    async def _upload_put(self, request: web.Request) -> web.Response:
        assert self._uploads is not None
        try:
            grant = self._uploads.claim(request.match_info["token"], request.headers.get("Content-Type"))
        except ApiError as e:
            return _fail(e)
        cap = self.config.max_upload_bytes
        if request.content_length is not None and request.content_length > cap:
            return _fail(ApiError("too_large", f"more than {cap} bytes"))
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > cap:
                return _fail(ApiError("too_large", f"more than {cap} bytes"))
            chunks.append(chunk)
        if size == 0:
            return _fail(ApiError("bad_request", "empty upload"))
        path = self._uploads.path_for(grant)
        await asyncio.to_thread(path.write_bytes, b"".join(chunks))
        return web.Response(status=200)


_BAD_GATEWAY = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"


def _duration(req: CreateRequest) -> float:
    """Seconds to render: the request's duration, else the version's default."""
    spec = rules()["render"]
    raw = req.parameters.get("duration", req.leaf.defaults().get("duration", spec["default_duration"]))
    try:
        value = float(canon(raw))
    except ValueError:
        value = float(spec["default_duration"])
    return min(max(value, 1.0), float(spec["max_duration"]))


def _aspect_ratio(req: CreateRequest) -> str:
    value = req.parameters.get("aspect_ratio") or req.leaf.defaults().get("aspect_ratio")
    return str(value or rules()["render"]["default_aspect_ratio"])
