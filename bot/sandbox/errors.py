"""ApiError: one failed answer of the sandbox, shaped from rules.toml's [errors] table."""

from __future__ import annotations

from typing import Any

from bot.sandbox.data import rules


class ApiError(Exception):
    """A failed answer: HTTP status, body code and message. `kind` names the [errors] entry."""

    def __init__(
        self,
        kind: str,
        detail: str = "",
        *,
        http: int | None = None,
        code: int | None = None,
        message: str | None = None,
    ) -> None:
        spec = rules()["errors"].get(kind, rules()["errors"]["bad_request"])
        self.kind = kind
        self.detail = detail
        self.http = int(http if http is not None else spec["http"])
        self.code = int(code if code is not None else spec["code"])
        text = message if message is not None else str(spec["message"]).replace("{detail}", detail)
        # a fixed message with a detail gets the detail appended, so tests and people see why
        if message is None and detail and "{detail}" not in str(spec["message"]):
            text = f"{text}: {detail}"
        self.message = text
        super().__init__(f"{self.kind}: {self.message}")

    def envelope(self) -> dict[str, Any]:
        """The JSON body of the answer."""
        return {"code": self.code, "message": self.message, "data": None}


def forced(status: int | None, code: int | None, message: str | None) -> ApiError:
    """An error a test asked for: a real HTTP status (e.g. 500) and/or a body code (e.g. 6010)."""
    by_code = {int(v["code"]): k for k, v in rules()["errors"].items() if int(v["http"]) == 200}
    if code is not None:
        kind = by_code.get(code, "bad_request")
        return ApiError(
            kind,
            http=status or (401 if code == 401 else 200),
            code=code,
            message=message if message is not None else _default_message(kind, code),
        )
    http = status or 500
    kind = {401: "unauthorized", 429: "rate_limited", 500: "server_error"}.get(http, "server_error")
    default = rules()["errors"][kind]["message"] if http in (401, 429, 500) else f"HTTP {http}"
    return ApiError(kind, http=http, code=http, message=message if message is not None else str(default))


def _default_message(kind: str, code: int) -> str:
    text = str(rules()["errors"][kind]["message"])
    return text if "{detail}" not in text else f"error {code}"
