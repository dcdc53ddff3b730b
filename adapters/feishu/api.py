"""The few Feishu open-platform calls the bot makes, through lark-oapi's async methods."""

from __future__ import annotations

import asyncio
import collections
import io
import json
import logging
from collections.abc import Callable
from typing import Any

import lark_oapi as lark
from lark_oapi.api.im.v1 import (
    CreateFileRequest,
    CreateFileRequestBody,
    CreateImageRequest,
    CreateImageRequestBody,
    CreateMessageRequest,
    CreateMessageRequestBody,
    GetMessageRequest,
    GetMessageResourceRequest,
    PatchMessageRequest,
    PatchMessageRequestBody,
    ReplyMessageRequest,
    ReplyMessageRequestBody,
)

from adapters.feishu.token import TenantToken
from bot.backoff import backoff as doubling

log = logging.getLogger(__name__)

#: Feishu's code for an expired or invalid tenant token: fetch a new one and try once more
_TOKEN_INVALID = {99991663, 99991661, 99991668}
#: "slow down" answers: 99991400 is the open platform's per-app/per-API limit (HTTP 429, with
#: `x-ogw-ratelimit-reset` in seconds; open.feishu.cn "频控策略" / rate-limit guide); 230020 is
#: the IM limit ("This operation triggers the frequency limit": 5 QPS per chat for sends and 5
#: QPS per message for card patches, im-v1 message create / patch docs)
RATE_LIMITED = frozenset({99991400, 230020})
_RESET_HEADER = "x-ogw-ratelimit-reset"


def dumps(content: dict[str, Any]) -> str:
    """Message content as Feishu receives it (compact: card and text sizes are capped)."""
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"))


#: how many sent message ids are remembered, to know a reply to the bot when one comes
SENT_KEPT = 10_000


class FeishuApiError(Exception):
    """A Feishu API call failed; `code` is Feishu's error code (0 when the call did not answer)."""

    kind = "feishu_api"

    def __init__(self, call: str, code: int, msg: str) -> None:
        super().__init__(f"{call} failed: code={code} msg={msg}")
        self.call = call
        self.code = code
        self.msg = msg


class FeishuApi:
    """Sends, patches, uploads and downloads; every call carries a token fetched off the SDK."""

    def __init__(
        self,
        domain: str,
        app_id: str,
        app_secret: str,
        *,
        timeout_s: float = 30.0,
        backoff_s: float = 1.0,
        max_wait_s: float = 30.0,
        rate_limit_retries: int = 4,
    ) -> None:
        self.token = TenantToken(domain, app_id, app_secret)
        self.app_id = app_id
        #: ids of the messages this process sent, newest last (a reply to one is addressed to the bot)
        self._sent: collections.OrderedDict[str, None] = collections.OrderedDict()
        #: on a rate limit: wait what Feishu says (or backoff_s, doubling), at most max_wait_s a time
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self.rate_limit_retries = rate_limit_retries
        self.client = (
            lark.Client.builder()
            .app_id(app_id)
            .app_secret(app_secret)
            .domain(domain.rstrip("/"))
            .enable_set_token(True)
            .timeout(timeout_s)
            .log_level(lark.LogLevel.WARNING)
            .build()
        )

    async def _option(self) -> lark.RequestOption:
        return lark.RequestOption.builder().tenant_access_token(await self.token.get()).build()

    async def _call(self, name: str, method: Any, build: Callable[[], Any]) -> Any:
        """Run one SDK call; retry once with a fresh token when Feishu says it expired, and after
        a pause when it says to slow down (a few times, backing off). Each attempt sends a request
        fresh from `build()`: the SDK consumes an upload's file (and its multipart form) on the
        first attempt, so a reused request would go out empty."""
        token_retried = False
        limited = 0
        while True:
            try:
                resp = await method(build(), await self._option())
            except Exception as e:  # the SDK raises httpx errors and its own; one kind for callers
                raise FeishuApiError(name, 0, type(e).__name__) from e
            if resp.success():
                return resp
            code = int(resp.code or 0)
            if code in _TOKEN_INVALID and not token_retried:
                token_retried = True
                self.token.invalidate()
                continue
            if code in RATE_LIMITED and limited < self.rate_limit_retries:
                wait = self._wait(resp, limited)
                limited += 1
                log.info("%s rate-limited (code %s); retrying in %.2f s", name, code, wait)
                await asyncio.sleep(wait)
                continue
            raise FeishuApiError(name, code, str(resp.msg))

    def _wait(self, resp: Any, attempt: int) -> float:
        backoff = doubling(attempt, self.backoff_s, self.max_wait_s)
        headers = getattr(getattr(resp, "raw", None), "headers", None) or {}
        reset = next((v for k, v in headers.items() if k.lower() == _RESET_HEADER), None)
        try:
            said = float(reset) if reset is not None else 0.0
        except ValueError:
            said = 0.0
        return float(min(max(said, backoff), self.max_wait_s))

    async def send(
        self,
        chat_id: str,
        msg_type: str,
        content: dict[str, Any],
        *,
        reply_to: str | None = None,
        uuid: str | None = None,
    ) -> str:
        """Post a message to a chat (as a reply to `reply_to` when given); returns its message_id.

        `uuid` is Feishu's idempotency key (im-v1 message create / reply, request body `uuid`,
        at most 50 characters): requests with the same uuid send at most one message within an
        hour, so a delivery repeated after a restart shows once."""
        body = dumps(content)
        if reply_to:
            reply = ReplyMessageRequestBody.builder().msg_type(msg_type).content(body)
            if uuid:
                reply = reply.uuid(uuid[:50])
            resp = await self._call(
                "message.reply",
                self.client.im.v1.message.areply,
                lambda: (
                    ReplyMessageRequest.builder().message_id(reply_to).request_body(reply.build()).build()
                ),
            )
        else:
            create = CreateMessageRequestBody.builder().receive_id(chat_id).msg_type(msg_type).content(body)
            if uuid:
                create = create.uuid(uuid[:50])
            resp = await self._call(
                "message.create",
                self.client.im.v1.message.acreate,
                lambda: (
                    CreateMessageRequest.builder()
                    .receive_id_type("chat_id")
                    .request_body(create.build())
                    .build()
                ),
            )
        message_id = str(resp.data.message_id)
        self._sent[message_id] = None
        if len(self._sent) > SENT_KEPT:
            self._sent.popitem(last=False)
        return message_id

    async def sent_by_bot(self, message_id: str) -> bool:
        """Whether the bot sent the message: one this process sent (among its last SENT_KEPT),
        else as Feishu says (im-v1/message/get: sender_type "app", id this app's id), for a
        message sent before a restart or by another process. False when it cannot be told."""
        if message_id in self._sent:
            return True
        try:
            resp = await self._call(
                "message.get",
                self.client.im.v1.message.aget,
                lambda: GetMessageRequest.builder().message_id(message_id).build(),
            )
        except FeishuApiError as e:
            log.info("could not look up message %s: %s", message_id, e)
            return False
        items = (resp.data.items if resp.data is not None else None) or []
        sender = items[0].sender if items else None
        return sender is not None and sender.sender_type == "app" and sender.id == self.app_id

    async def patch_card(self, message_id: str, card: dict[str, Any]) -> None:
        """Replace an interactive card in place."""
        content = dumps(card)
        await self._call(
            "message.patch",
            self.client.im.v1.message.apatch,
            lambda: (
                PatchMessageRequest.builder()
                .message_id(message_id)
                .request_body(PatchMessageRequestBody.builder().content(content).build())
                .build()
            ),
        )

    async def upload_video(self, data: bytes, file_name: str, duration_ms: int | None) -> str:
        """Upload an mp4 (file_type mp4) for a media message; returns its file_key."""

        def build() -> CreateFileRequest:
            body = (
                CreateFileRequestBody.builder().file_type("mp4").file_name(file_name).file(io.BytesIO(data))
            )
            if duration_ms is not None:
                body = body.duration(duration_ms)
            return CreateFileRequest.builder().request_body(body.build()).build()

        resp = await self._call("file.create", self.client.im.v1.file.acreate, build)
        return str(resp.data.file_key)

    async def upload_image(self, data: bytes) -> str:
        """Upload a message image (a video's cover); returns its image_key."""
        resp = await self._call(
            "image.create",
            self.client.im.v1.image.acreate,
            lambda: (
                CreateImageRequest.builder()
                .request_body(
                    CreateImageRequestBody.builder().image_type("message").image(io.BytesIO(data)).build()
                )
                .build()
            ),
        )
        return str(resp.data.image_key)

    async def download_image(self, message_id: str, image_key: str) -> bytes:
        """A user's image, through the message resource API."""
        resp = await self._call(
            "message_resource.get",
            self.client.im.v1.message_resource.aget,
            lambda: (
                GetMessageResourceRequest.builder()
                .message_id(message_id)
                .file_key(image_key)
                .type("image")
                .build()
            ),
        )
        return bytes(resp.file.read())
