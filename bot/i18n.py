"""Every word a user reads comes from locales/<lang>.toml, through `t()`."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from bot.text import HAN

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
#: zh-Hant is zh.toml converted by OpenCC (s2twp) with `python -m bot.i18n`, kept complete by a test
LANGUAGES: tuple[str, ...] = ("zh", "zh-Hant", "en")
_TRADITIONAL_TAGS = ("zh-hant", "zh-tw", "zh-hk", "zh-mo", "zh_tw", "zh_hk", "zh_hant")
DEFAULT_LANGUAGE = "en"


def _flatten(prefix: str, node: dict[str, Any], out: dict[str, str]) -> None:
    for k, v in node.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            _flatten(key, v, out)
        else:
            out[key] = str(v)


@cache
def catalog(language: str) -> dict[str, str]:
    """All messages of one language as dotted keys ("error.unauthorized")."""
    data = tomllib.loads((LOCALES_DIR / f"{language}.toml").read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    _flatten("", data, out)
    return out


def normalize_language(language: str | None) -> str:
    """One of LANGUAGES for a tag such as "zh-CN", "zh-TW", "zh-Hant", "en-US"."""
    if language and language.lower().startswith(_TRADITIONAL_TAGS):
        return "zh-Hant"
    if language and language.lower().startswith("zh"):
        return "zh"
    return "en" if language else DEFAULT_LANGUAGE


def t(key: str, language: str | None, **values: object) -> str:
    """The message `key` in `language`, placeholders filled. A missing key is a bug: KeyError."""
    template = catalog(normalize_language(language))[key]
    return template.format(**values) if values else template


def has(key: str, language: str | None = None) -> bool:
    return key in catalog(normalize_language(language))


def detect_language(text: str, hint: str | None = None) -> str:
    """ "zh" when the text has Chinese characters, "en" when it has letters, else the hint."""
    if HAN.search(text):
        from bot.understand.normalize import is_traditional  # the t2s table loads on first use

        return "zh-Hant" if is_traditional(text) else "zh"
    if any(c.isalpha() for c in text):
        return "en"
    return normalize_language(hint) if hint else DEFAULT_LANGUAGE


def traditional_catalog(source: str) -> str:
    """zh.toml's text in Traditional Chinese (Taiwan phrasing); placeholders stay as they are."""
    import opencc

    converter = opencc.OpenCC("s2twp")
    # placeholders ({model}) and keys are ASCII, which the converter leaves alone
    return "\n".join(converter.convert(line) for line in source.splitlines()) + "\n"


if __name__ == "__main__":  # python -m bot.i18n: write locales/zh-Hant.toml from zh.toml
    zh = (LOCALES_DIR / "zh.toml").read_text(encoding="utf-8")
    (LOCALES_DIR / "zh-Hant.toml").write_text(traditional_catalog(zh), encoding="utf-8")
