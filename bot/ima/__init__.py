"""Async client of the IMA Open API: products, credit-rule matching, create, poll, upload, errors."""

from __future__ import annotations

from bot.ima.client import ImaClient
from bot.ima.upload import DEFAULT_UPLOAD_APP_KEY, ImageUploader, ImaUploadService

__all__ = ["DEFAULT_UPLOAD_APP_KEY", "ImaClient", "ImaUploadService", "ImageUploader"]
