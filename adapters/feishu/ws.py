"""Everything the Feishu adapter takes from lark-oapi's internals, in one place.

lark-oapi 1.7.x has no public way to run its long connection on a loop of one's own, to close
it, or to feed it a card frame, so this module reaches into private parts of the SDK — and only
this module does. `INTERNALS` lists each of them; `missing_internals()` says which an installed
SDK lacks (the adapter logs it at start, and `tests/test_feishu_long_connection.py` fails on
it), and pyproject pins lark-oapi below the next minor (`>=1.7,<1.8`).

What is relied on, and why:

- `lark_oapi.ws.client.loop`: `ws.Client.start()` runs on a loop the module captured when it
  was imported (`loop.run_until_complete(...)`), so it cannot run inside the bot's loop. Each
  connection gets a fresh loop in its own thread, set there before `start()` (upstream PRs for a
  per-instance loop or `start_async` were still open for 1.7.x).
- `Client._connect()`: the SDK says nothing when it has connected (or reconnected); the
  override tells `on_connected`, so `python -m bot` can report the connection as up.
- `Client._disconnect()` and `Client._auto_reconnect`: there is no `stop()`. A connection left
  open makes Feishu replay its events to the next one, so it is closed, without reconnecting.
- `Client._handle_data_frame`, `_combine`, `_write_message`, `_event_handler`: 1.7.x passes
  frames of type "event" to the dispatcher but returns early on frames of type "card" without
  answering (upstream larksuite/oapi-sdk-python#126): a button press delivered that way reaches
  no handler and the user sees error 200340 after 3 s. Card actions subscribed as the
  `card.action.trigger` event come as "event" frames and work unchanged; `LongConnection` also
  feeds "card" frames to the same dispatcher and answers them the way the SDK answers an event
  frame (the same frame sent back, its payload a JSON `Response` whose `data` is the base64 of
  the handler's JSON result).
- `EventDispatcherHandler._do_without_validation`: how the long connection hands a payload to
  the handlers (no signature check: the connection is already authenticated); tests feed
  recorded events through it with `dispatch()`.
"""

from __future__ import annotations

import asyncio
import base64
import http
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import lark_oapi as lark
from lark_oapi.core.json import JSON
from lark_oapi.ws.const import HEADER_BIZ_RT, HEADER_MESSAGE_ID, HEADER_SEQ, HEADER_SUM, HEADER_TYPE
from lark_oapi.ws.enum import MessageType
from lark_oapi.ws.model import Response

log = logging.getLogger(__name__)

CARD_ACTION_EVENT = "card.action.trigger"

#: (where, attribute) for every private part of lark-oapi this module uses
INTERNALS: tuple[tuple[str, str], ...] = (
    ("lark_oapi.ws.client", "loop"),
    ("lark_oapi.ws.client.Client", "_connect"),
    ("lark_oapi.ws.client.Client", "_disconnect"),
    ("lark_oapi.ws.client.Client", "_handle_data_frame"),
    ("lark_oapi.ws.client.Client", "_combine"),
    ("lark_oapi.ws.client.Client", "_write_message"),
    ("lark_oapi.ws.client.Client()", "_auto_reconnect"),
    ("lark_oapi.ws.client.Client()", "_event_handler"),
    ("lark_oapi.EventDispatcherHandler", "_do_without_validation"),
)


def missing_internals() -> list[str]:
    """The parts of `INTERNALS` this installed lark-oapi does not have (empty when all are there)."""
    import inspect

    import lark_oapi.ws.client as ws_client

    # instance attributes are read from __init__'s source: building a Client has side effects
    # (it schedules a cache task on the current loop)
    init = inspect.getsource(lark.ws.Client.__init__)
    owners: dict[str, object] = {
        "lark_oapi.ws.client": ws_client,
        "lark_oapi.ws.client.Client": lark.ws.Client,
        "lark_oapi.EventDispatcherHandler": lark.EventDispatcherHandler,
    }
    missing = []
    for where, name in INTERNALS:
        found = f"self.{name}" in init if where.endswith("()") else hasattr(owners[where], name)
        if not found:
            missing.append(f"{where.removesuffix('()')}.{name}")
    return missing


def dispatch(handler: lark.EventDispatcherHandler, payload: bytes) -> Any:
    """Hand one event payload to the handlers, as the long connection does; returns the
    handler's result (a card action's toast, None for a message)."""
    return handler._do_without_validation(payload)


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
        "operator": {
            "open_id": data.get("open_id"),
            "user_id": data.get("user_id"),
            "tenant_key": data.get("tenant_key"),
        },
        "token": data.get("token"),
        "action": data.get("action"),
        "host": "im_message",
        "context": {"open_message_id": data.get("open_message_id"), "open_chat_id": data.get("open_chat_id")},
    }
    header = {
        "event_type": CARD_ACTION_EVENT,
        "tenant_key": data.get("tenant_key"),
        "token": data.get("token"),
    }
    return json.dumps({"schema": "2.0", "header": header, "event": event}).encode()


def _header(frame: Any, key: str) -> str | None:
    return next((h.value for h in frame.headers if h.key == key), None)


class LongConnection(lark.ws.Client):  # type: ignore[misc]  # lark-oapi ships no type information
    """`lark.ws.Client` that answers "card" frames too, runs on a loop of its own, and closes.

    `run_here()` blocks its thread until `close()` (called from any thread) or a failure the SDK does
    not retry itself (it reconnects on its own after a dropped connection; a refused app — bad
    credentials, too many connections — raises)."""

    loop: asyncio.AbstractEventLoop | None = None
    #: called (on the connection's thread) after each successful connect and reconnect
    on_connected: Callable[[], None] | None = None

    @classmethod
    def run_here(
        cls, created: Callable[[LongConnection], None], app_id: str, app_secret: str, **kwargs: Any
    ) -> None:
        """Build a connection and serve it in this thread, on a fresh event loop, until
        `close()`; `created` receives it before it connects (to close it from elsewhere)."""
        import lark_oapi.ws.client as ws_client

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        ws_client.loop = loop  # the SDK schedules everything on this module global
        try:
            client = cls(app_id, app_secret, **kwargs)  # its cache task lands on this loop
            client.loop = loop
            created(client)
            client.start()
        except RuntimeError as e:
            if "Event loop stopped" not in str(e):  # close() ends the loop this way
                raise
        finally:
            # end the SDK's leftover tasks (ping loop, cache cron) here, not at garbage collection
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            if leftovers:
                loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.close()

    async def close(self, timeout_s: float = 5.0) -> None:
        """Close the socket (without reconnecting) and stop `run()`; call from another loop."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        self._auto_reconnect = False
        try:
            done = asyncio.run_coroutine_threadsafe(self._disconnect(), loop)
            await asyncio.wait_for(asyncio.wrap_future(done), timeout_s)
        except Exception as e:  # includes TimeoutError and a loop that closed meanwhile
            log.warning("closing the long connection: %s", e)
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)

    async def _connect(self) -> None:
        await super()._connect()
        if self.on_connected is not None:
            self.on_connected()

    async def _handle_data_frame(self, frame: Any) -> None:
        if _header(frame, HEADER_TYPE) != MessageType.CARD.value:
            await super()._handle_data_frame(frame)
            return
        payload = frame.payload
        total = int(_header(frame, HEADER_SUM) or 1)
        if total > 1:  # a payload split over several frames: wait for all of them
            payload = self._combine(
                _header(frame, HEADER_MESSAGE_ID) or "", total, int(_header(frame, HEADER_SEQ) or 0), payload
            )
            if payload is None:
                return
        resp = Response(code=http.HTTPStatus.OK)
        try:
            started = time.monotonic()
            result = dispatch(self._event_handler, as_card_event(payload))
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
