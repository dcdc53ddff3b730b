"""Every message is exactly one intent; only descriptions are "video" (zh both scripts, en)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bot.understand import parse
from bot.understand.intent import INTENTS

CASES: dict[str, list[str]] = {
    "help": [
        "help",
        "/help",
        "帮助",
        "幫助",
        "怎么用?",
        "how do I use this?",
        "what can you do",
        "你能做什么",
        "help please",
    ],
    "models": [
        "models",
        "/models",
        "有哪些模型?",
        "有哪些模型",
        "模型列表",
        "what models do you have?",
        "多少积分",
        "pricing",
    ],
    "jobs": ["jobs", "/jobs", "我的任务", "進度", "my jobs", "is it done yet?", "好了吗"],
    "cancel": ["cancel", "取消", "停止", "stop", "cancel it please", "别生成了"],
    "prefer": [
        "以后都用可灵",
        "以後都用可靈",
        "always use kling",
        "清除偏好",
        "forget my preference",
        "我的偏好",
        "以后都用Runway",
        "my preference",
    ],
    "confirm": [
        "好的",
        "好",
        "yes",
        "ok",
        "确认",
        "確認",
        "sure",
        "用第一个",
        "the second one",
        "ok thanks",
        "好的谢谢",
    ],
    "decline": ["不用了", "no", "no thanks", "算了", "nope", "never mind"],
    "chat": [
        "你好",
        "hello",
        "谢谢",
        "謝謝",
        "thanks, looks great",
        "🙂",
        "👍",
        "",
        "   ",
        "asdkjh qwe zzxq",
        "sdfgh",
        "生成一段视频",
        "how are you?",
        "你是谁",
        "哈哈哈",
        "nice",
        "good morning",
        "收到",
        "10秒",
    ],
    "video": [
        "一只小狗在草地上奔跑",
        "a cat playing the piano",
        "用可灵生成一段小狗奔跑的视频",
        "make a video of fireworks",
        "用Runway生成海浪",
        "help me make a video of a dragon",
        "一隻貓在月球上跳舞",
        "hello! a dog surfing a wave",
        "a model walking on a runway",
        "fireflies over a lake at night",
        "can you make a video of a cat?",
    ],
}


@pytest.mark.parametrize(("intent", "text"), [(i, t) for i, ts in CASES.items() for t in ts])
def test_message_intent(intent: str, text: str) -> None:
    assert parse(text).intent == intent


def test_every_intent_is_covered() -> None:
    assert set(CASES) == set(INTENTS)


def test_a_picture_with_a_few_words_is_a_video_but_help_stays_help() -> None:
    assert parse("ok", images=1).intent == "video"
    assert parse("", images=1).intent == "video"
    assert parse("help", images=1).intent == "help"


def test_an_unknown_model_is_reported_by_name() -> None:
    assert parse("用Runway生成海浪").unknown_model == "Runway"
    assert parse("use pika to make a cat").unknown_model == "Pika"
    assert parse("a model walking on a runway").unknown_model is None
    assert parse("用可灵生成海浪").unknown_model is None


def test_an_unknown_model_leaves_the_prompt() -> None:
    assert parse("用Runway生成海浪").prompt == "海浪"


def test_a_choice_names_its_position() -> None:
    assert parse("用第二个").choice == 1
    assert parse("the first one").choice == 0


def test_parse_jsonl_prints_intent_and_unknown_model() -> None:
    lines = "\n".join(
        json.dumps({"text": t, "images": 0}, ensure_ascii=False) for t in ("help", "你好", "用Runway生成海浪")
    )
    done = subprocess.run(
        [sys.executable, "-m", "bot", "parse", "--jsonl"],
        input=lines,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert [o["intent"] for o in out] == ["help", "chat", "video"]
    assert [o["unknown_model"] for o in out] == [None, None, "Runway"]
