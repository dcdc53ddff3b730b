"""Feishu (Lark) adapter: lark-oapi long connection in, interactive cards and media out."""

from __future__ import annotations

from adapters.feishu.adapter import FeishuAdapter, FeishuConfigError
from adapters.feishu.api import FeishuApi, FeishuApiError
from adapters.feishu.conversation import FeishuConversation

__all__ = ["FeishuAdapter", "FeishuApi", "FeishuApiError", "FeishuConfigError", "FeishuConversation"]
