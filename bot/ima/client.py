"""The async IMA Open API client: products, create, detail, image upload.

One shared httpx.AsyncClient; the key travels only in request headers (and the upload query)
and never in a log line, an exception message or a repr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from bot.config import SANDBOX_KEY, Settings
from bot.ima import redact
from bot.ima.credit import build_create_body
from bot.ima.detail import has_watermark_only, parse_detail
from bot.ima.envelope import SUCCESS_CODES, as_code, decode
from bot.ima.errors import CreateUncertain, ImaError, NetworkError, Timeout
from bot.ima.products import ProductCache, parse_product_list
from bot.ima.types import Product, TaskResult, TaskSpec
from bot.ima.upload import (
    DEFAULT_UPLOAD_APP_ID,
    DEFAULT_UPLOAD_APP_KEY,
    DEFAULT_UPLOAD_BASE_URL,
    ImageUploader,
    ImaUploadService,
)

log = logging.getLogger(__name__)

PRODUCT_LIST_PATH = "/open/v1/product/list"
CREATE_PATH = "/open/v1/tasks/create"
DETAIL_PATH = "/open/v1/tasks/detail"
#: polls of a finished task that shows only a watermark_url before settling for it
WATERMARK_GRACE_POLLS = 10
#: errors raised before a request left this machine: nothing can have been created
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
#: requests on the wire at once. Callers beyond it wait on a semaphore (O(1)) rather than in
#: httpcore's pool queue, whose assignment scan costs O(queued × connections) per request and
#: stalled the loop for seconds with a few hundred jobs polling at once (benchmarks/load_bench.py)
MAX_IN_FLIGHT = 32


class ImaClient:
    """The IMA Open API as the bot uses it. Use as `async with` or call `aclose()`."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: SecretStr | str,
        language: str = "en",
        upload_base_url: str = DEFAULT_UPLOAD_BASE_URL,
        upload_app_id: str = DEFAULT_UPLOAD_APP_ID,
        upload_app_key: SecretStr | str | None = None,
        product_ttl_s: float = 600.0,
        timeout_s: float = 30.0,
        create_timeout_s: float = 60.0,
        http: httpx.AsyncClient | None = None,
        uploader: ImageUploader | None = None,
        clock: Callable[[], float] = time.monotonic,
        watermark_grace_polls: int = WATERMARK_GRACE_POLLS,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        self._language = language
        self._timeout = timeout_s
        # a create that times out may still have been charged and can never be sent again, so
        # it waits longer than other requests (a 1 s timeout against 985 ms latency lost paid tasks)
        self._create_timeout = httpx.Timeout(create_timeout_s, connect=min(10.0, create_timeout_s))
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            limits=httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight),
        )
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._uploader: ImageUploader = uploader or ImaUploadService(
            self._http,
            base_url=upload_base_url,
            api_key=self._key,
            app_id=upload_app_id,
            app_key=upload_app_key if upload_app_key is not None else DEFAULT_UPLOAD_APP_KEY,
            timeout_s=timeout_s,
        )
        self._cache = ProductCache(self._fetch_products, product_ttl_s, clock)
        self._watermark_polls: dict[str, int] = {}
        self._grace = watermark_grace_polls
        self._secrets = self._secret_forms()
        for s in self._secrets:
            redact.register(s)
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings, base_url_override: str | None = None) -> ImaClient:
        """A client configured from the bot's settings (the sandbox key when none is set)."""
        return cls(
            base_url=base_url_override or settings.ima_base_url,
            api_key=settings.ima_api_key or SecretStr(SANDBOX_KEY),
            language=settings.ima_language,
            upload_base_url=settings.ima_im_base_url,
            upload_app_id=settings.ima_upload_app_id,
            upload_app_key=settings.ima_upload_app_key or DEFAULT_UPLOAD_APP_KEY,
            product_ttl_s=settings.ima_product_ttl_s,
            timeout_s=settings.ima_request_timeout_s,
            create_timeout_s=settings.ima_create_timeout_s,
        )

    def __repr__(self) -> str:
        return f"ImaClient(base_url={self._base_url!r}, language={self._language!r})"

    async def __aenter__(self) -> ImaClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop fetches in flight and close the HTTP client if this client opened it."""
        if self._closed:
            return
        self._closed = True
        await self._cache.aclose()
        if self._owns_http:
            await self._http.aclose()
        for s in self._secrets:
            redact.unregister(s)

    # -- products -------------------------------------------------------------------------------
    async def products(self, category: str) -> list[Product]:
        """The versions (type=3 leaves) offered for `category`, cached for the TTL."""
        try:  # not `async with self._guard()`: every message asks, and a cached list cannot fail
            return await self._cache.get(category)
        except ImaError as e:
            raise self._masked(e) from None

    def products_at_hand(self, category: str) -> list[Product] | None:
        """The versions `products` would answer without waiting for a fetch; None if it would."""
        return self._cache.at_hand(category)

    async def find_product(
        self, category: str, model_id: str, version_name: str | None = None
    ) -> Product | None:
        """The version of `model_id` in `category`; `version_name` picks among versions sharing
        a model_id (Pixverse V5.5, V5, ...). Without it, the first version listed."""
        candidates = [p for p in await self.products(category) if p.model_id.lower() == model_id.lower()]
        if version_name is not None:
            wanted = version_name.strip().lower()
            named = [p for p in candidates if p.name.strip().lower() == wanted or p.id.lower() == wanted]
            return named[0] if named else None
        return candidates[0] if candidates else None

    def invalidate(self, category: str | None = None) -> None:
        """Drop the cached product list of `category` (all when None)."""
        self._cache.invalidate(category)

    async def _fetch_products(self, category: str) -> list[Product]:
        data = await self._call(
            "GET", PRODUCT_LIST_PATH, params={"app": "ima", "platform": "web", "category": category}
        )
        products = parse_product_list(data, category)
        log.info("product list %s: %d versions", category, len(products))
        return products

    # -- tasks ----------------------------------------------------------------------------------
    async def create(self, spec: TaskSpec, *, on_sending: Callable[[], Awaitable[None]] | None = None) -> str:
        """Create a task; returns its id.

        `on_sending` is awaited at the moment the request goes on the wire (after waiting for
        a free slot), so a caller can record "may be created from now on" no earlier than true.

        One rule for "was it created?": an IMA answer (the JSON envelope with its code: 6006,
        6009, 6010, 401, 4008, 400, 400017, IMA's own 500, ...) raises its typed error and means
        "not created". Anything else once the request left — a timeout, a reset, a gateway's
        5xx without the envelope, an unreadable body — raises CreateUncertain: the task may
        exist and be charged, so the caller must never send it again blindly."""
        body = build_create_body(spec)
        async with self._guard():
            data = await self._call(
                "POST",
                CREATE_PATH,
                json=body,
                create=True,
                on_sending=on_sending,
                timeout=self._create_timeout,
            )
            task_id = data.get("id") if isinstance(data, dict) else None
            if task_id in (None, ""):
                # the service said yes but gave no id: the task probably exists
                raise CreateUncertain("create answered without a task id")
            log.info(
                "task created: %s (%s, %s, %d pts)",
                task_id,
                spec.task_type,
                spec.product.name,
                spec.rule.points,
            )
            return str(task_id)

    async def detail(self, task_id: str) -> TaskResult:
        """Poll a task once."""
        async with self._guard():
            data = await self._call("POST", DETAIL_PATH, json={"task_id": task_id})
            waited = self._watermark_polls.get(task_id, 0)
            if has_watermark_only(data):
                # the clean url usually follows shortly; settle for the watermarked one only late
                waited += 1
                self._watermark_polls[task_id] = waited
            result = parse_detail(task_id, data, allow_watermark=waited > self._grace)
            if result.state != "running":
                self._watermark_polls.pop(task_id, None)
            return result

    # -- upload ---------------------------------------------------------------------------------
    async def upload_image(self, data: bytes, content_type: str) -> str:
        """Upload image bytes; returns a public URL to pass in a task."""
        async with self._guard():
            return await self._uploader.upload(data, content_type)

    # -- plumbing -------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._key.get_secret_value()}",
            "Content-Type": "application/json",
            "x-app-source": "ima_skills",
            "x_app_language": self._language,
        }

    async def _call(
        self,
        method: str,
        path: str,
        *,
        create: bool = False,
        on_sending: Callable[[], Awaitable[None]] | None = None,
        **kwargs: Any,
    ) -> Any:
        """One request to the main API; the envelope's data or a typed error."""
        url = f"{self._base_url}{path}"
        try:
            async with self._in_flight:
                if on_sending is not None:
                    await on_sending()
                resp = await self._http.request(method, url, headers=self._headers(), **kwargs)
        except _NOT_SENT as e:
            raise NetworkError(f"could not connect ({type(e).__name__})") from e
        except httpx.TimeoutException as e:
            if create:
                raise CreateUncertain(f"create sent but not answered in time ({type(e).__name__})") from e
            raise Timeout(f"{path} not answered in time") from e
        except httpx.TransportError as e:
            if create:  # the connection broke after the request was written
                raise CreateUncertain(f"connection lost after create was sent ({type(e).__name__})") from e
            raise NetworkError(f"connection lost ({type(e).__name__})") from e
        if create:
            return _create_answer(resp.status_code, resp.content)
        return decode(resp.status_code, resp.content)

    def _secret_forms(self) -> list[str]:
        key = self._key.get_secret_value()
        return list(dict.fromkeys(s for s in (key, quote(key, safe=""), quote(key)) if s))

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        """Mask the key in any error passing through (servers sometimes echo what they got)."""
        try:
            yield
        except ImaError as e:
            raise self._masked(e) from None

    def _masked(self, e: ImaError) -> ImaError:
        """`e` with the key masked wherever it shows."""
        masked = redact.redact(e.detail, self._secrets)
        if masked != e.detail or any(s in str(a) for a in e.args for s in self._secrets):
            e.detail = masked
            e.args = (masked or e.kind,)
        return e


def _create_answer(status: int, content: bytes) -> Any:
    """The data of a create answer, or the error that says whether the task can exist.

    Only IMA itself can say "not created", and it says so in its envelope (at any HTTP status);
    a 4xx without it is a refusal before any work (HTTP's meaning of 4xx). Anything else — a
    gateway's 5xx without the envelope (502 with an HTML page, an empty 503), a 504, a redirect,
    a body that is not an envelope — says nothing about the service behind it, which may have
    created the task: uncertain."""
    if status == 504:
        # a gateway gave up waiting, whatever its body: the service behind it may have gone on
        raise CreateUncertain("create answered 504 by a gateway", http_status=504)
    if not 400 <= status <= 499 and not _is_envelope(status, content):
        raise CreateUncertain(f"create answered HTTP {status} without an IMA envelope", http_status=status)
    return decode(status, content)


def _is_envelope(status: int, content: bytes) -> bool:
    """True when a body is IMA's envelope: a success with its data, or a failure with its code."""
    try:
        body = json.loads(content) if content else None
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    code = as_code(body.get("code"))
    if 200 <= status <= 299:
        return code is not None or "data" in body
    # a success code on a failed status contradicts itself: not IMA speaking
    return code is not None and code not in SUCCESS_CODES
