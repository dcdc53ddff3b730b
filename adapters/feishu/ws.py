"""The long connection, with card callbacks answered.

lark-oapi 1.7.x's `ws.Client._handle_data_frame` passes frames of type "event" to the
dispatcher but returns early on frames of type "card" without answering (upstream
larksuite/oapi-sdk-python#126): a button press delivered that way reaches no handler and the
user sees error 200340 after 3 s. Card actions subscribed as the `card.action.trigger` event
come as "event" frames and work unchanged; this client also feeds "card" frames to the same
dispatcher and answers them the way the SDK answers an event frame (the same frame sent back,
its payload a JSON `Response` whose `data` is the base64 of the handler's JSON result).

This relies on private parts of lark_oapi.ws.client.Client (`_handle_data_frame`, `_combine`,
`_write_message`, `_event_handler`); `tests/test_feishu_intents.py`
drives the real client against a loopback endpoint that speaks its frame format, so an SDK
change that breaks this shows up there.
"""

from __future__ import annotations

import base64
import http
import json
import logging
import time
from typing import Any

import lark_oapi as lark
from lark_oapi.core.json import JSON
from lark_oapi.ws.const import HEADER_BIZ_RT, HEADER_MESSAGE_ID, HEADER_SEQ, HEADER_SUM, HEADER_TYPE
from lark_oapi.ws.enum import MessageType
from lark_oapi.ws.model import Response

log = logging.getLogger(__name__)

CARD_ACTION_EVENT = "card.action.trigger"


def as_card_event(payload: bytes) -> bytes:
    """A card frame's payload as a `card.action.trigger` event the dispatcher reads.

    The 2.0 callback is already one. The older card callback is flat (`open_id`,
    `open_message_id`, `open_chat_id`, `action`, no `schema`); it is reshaped into the 2.0 form.
    """
    try:
        data = json.loads(payload)
    except ValueError:
        return payload
    if not isinstance(data, dict) or data.get("schema") or "action" not in data:
        return payload
    event = {
        "operator": {"open_id": data.get("open_id"), "user_id": data.get("user_id"),
                     "tenant_key": data.get("tenant_key")},
        "token": data.get("token"),
        "action": data.get("action"),
        "host": "im_message",
        "context": {"open_message_id": data.get("open_message_id"), "open_chat_id": data.get("open_chat_id")},
    }
    header = {"event_type": CARD_ACTION_EVENT, "tenant_key": data.get("tenant_key"), "token": data.get("token")}
    return json.dumps({"schema": "2.0", "header": header, "event": event}).encode()


def _header(frame: Any, key: str) -> str | None:
    return next((h.value for h in frame.headers if h.key == key), None)


class LongConnection(lark.ws.Client):
    """`lark.ws.Client` that answers "card" frames too (see the module's doc)."""

    async def _handle_data_frame(self, frame: Any) -> None:
        if _header(frame, HEADER_TYPE) != MessageType.CARD.value:
            await super()._handle_data_frame(frame)
            return
        payload = frame.payload
        total = int(_header(frame, HEADER_SUM) or 1)
        if total > 1:  # a payload split over several frames: wait for all of them
            payload = self._combine(_header(frame, HEADER_MESSAGE_ID) or "", total,
                                    int(_header(frame, HEADER_SEQ) or 0), payload)
            if payload is None:
                return
        resp = Response(code=http.HTTPStatus.OK)
        try:
            started = time.monotonic()
            result = self._event_handler._do_without_validation(as_card_event(payload))
            biz = frame.headers.add()
            biz.key = HEADER_BIZ_RT
            biz.value = str(round((time.monotonic() - started) * 1000))
            if result is not None:
                resp.data = base64.b64encode(JSON.marshal(result).encode("utf-8"))
        except Exception as e:
            log.error("card callback failed: %s", e)
            resp = Response(code=http.HTTPStatus.INTERNAL_SERVER_ERROR)
        frame.payload = JSON.marshal(resp).encode("utf-8")
        await self._write_message(frame.SerializeToString())
