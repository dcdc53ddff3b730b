"""The few Feishu open-platform calls the bot makes, through lark-oapi's async methods."""

from __future__ import annotations

import io
import json
from typing import Any

import lark_oapi as lark
from lark_oapi.api.im.v1 import (
    CreateFileRequest,
    CreateFileRequestBody,
    CreateImageRequest,
    CreateImageRequestBody,
    CreateMessageRequest,
    CreateMessageRequestBody,
    GetMessageResourceRequest,
    PatchMessageRequest,
    PatchMessageRequestBody,
    ReplyMessageRequest,
    ReplyMessageRequestBody,
)

from adapters.feishu.token import TenantToken

#: Feishu's code for an expired or invalid tenant token: fetch a new one and try once more
_TOKEN_INVALID = {99991663, 99991661, 99991668}


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

    def __init__(self, domain: str, app_id: str, app_secret: str, *, timeout_s: float = 30.0) -> None:
        self.token = TenantToken(domain, app_id, app_secret)
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

    async def _call(self, name: str, method: Any, request: Any) -> Any:
        """Run one SDK call; retry once with a fresh token when Feishu says it expired."""
        for attempt in range(2):
            try:
                resp = await method(request, await self._option())
            except Exception as e:  # the SDK raises httpx errors and its own; one kind for callers
                raise FeishuApiError(name, 0, type(e).__name__) from e
            if resp.success():
                return resp
            if resp.code in _TOKEN_INVALID and attempt == 0:
                self.token.invalidate()
                continue
            raise FeishuApiError(name, int(resp.code or 0), str(resp.msg))
        raise AssertionError("unreachable")

    async def send(self, chat_id: str, msg_type: str, content: dict[str, Any], *, reply_to: str | None = None) -> str:
        """Post a message to a chat (as a reply to `reply_to` when given); returns its message_id."""
        body = json.dumps(content, ensure_ascii=False)
        if reply_to:
            request: Any = (
                ReplyMessageRequest.builder()
                .message_id(reply_to)
                .request_body(ReplyMessageRequestBody.builder().msg_type(msg_type).content(body).build())
                .build()
            )
            resp = await self._call("message.reply", self.client.im.v1.message.areply, request)
        else:
            request = (
                CreateMessageRequest.builder()
                .receive_id_type("chat_id")
                .request_body(
                    CreateMessageRequestBody.builder().receive_id(chat_id).msg_type(msg_type).content(body).build()
                )
                .build()
            )
            resp = await self._call("message.create", self.client.im.v1.message.acreate, request)
        return str(resp.data.message_id)

    async def patch_card(self, message_id: str, card: dict[str, Any]) -> None:
        """Replace an interactive card in place."""
        request = (
            PatchMessageRequest.builder()
            .message_id(message_id)
            .request_body(PatchMessageRequestBody.builder().content(json.dumps(card, ensure_ascii=False)).build())
            .build()
        )
        await self._call("message.patch", self.client.im.v1.message.apatch, request)

    async def upload_video(self, data: bytes, file_name: str, duration_ms: int | None) -> str:
        """Upload an mp4 (file_type mp4) for a media message; returns its file_key."""
        builder = CreateFileRequestBody.builder().file_type("mp4").file_name(file_name).file(io.BytesIO(data))
        if duration_ms is not None:
            builder = builder.duration(duration_ms)
        request = CreateFileRequest.builder().request_body(builder.build()).build()
        resp = await self._call("file.create", self.client.im.v1.file.acreate, request)
        return str(resp.data.file_key)

    async def upload_image(self, data: bytes) -> str:
        """Upload a message image (a video's cover); returns its image_key."""
        body = CreateImageRequestBody.builder().image_type("message").image(io.BytesIO(data)).build()
        request = CreateImageRequest.builder().request_body(body).build()
        resp = await self._call("image.create", self.client.im.v1.image.acreate, request)
        return str(resp.data.image_key)

    async def download_image(self, message_id: str, image_key: str) -> bytes:
        """A user's image, through the message resource API."""
        request = GetMessageResourceRequest.builder().message_id(message_id).file_key(image_key).type("image").build()
        resp = await self._call("message_resource.get", self.client.im.v1.message_resource.aget, request)
        return bytes(resp.file.read())
