"""Sound, negative prompt, seed, shot type and prompt extension: read from words, sent only
where the model offers them, priced, and shown in the notice."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from adapters.base import Incoming, NoticeView
from bot.core import BotCore
from bot.sandbox import Sandbox
from bot.understand import parse
from tests.conftest import RecordingConversation, console_session

PHRASES: list[tuple[str, dict[str, Any]]] = [
    ("video of fireworks over a lake, no sound", {"sound": False, "prompt": "fireworks over a lake"}),
    ("烟花在湖面绽放,无声", {"sound": False, "prompt": "烟花在湖面绽放"}),
    ("煙花在湖面綻放,靜音", {"sound": False}),
    ("a waterfall, with sound", {"sound": True, "prompt": "a waterfall"}),
    ("有声的海浪", {"sound": True, "prompt": "海浪"}),
    ("silent film of a train", {"sound": False}),
    ("不要出现文字和水印,一只猫在跳舞", {"negative_prompt": "文字和水印", "prompt": "一只猫在跳舞"}),
    (
        "a cat dancing, negative: text, watermark",
        {"negative_prompt": "text, watermark", "prompt": "a cat dancing"},
    ),
    ("a cat dancing --no text --seed 7", {"negative_prompt": "text", "seed": 7, "prompt": "a cat dancing"}),
    ("避免模糊,小狗奔跑", {"negative_prompt": "模糊", "prompt": "小狗奔跑"}),
    ("种子42 小狗奔跑", {"seed": 42, "prompt": "小狗奔跑"}),
    ("a dog running, seed 1234", {"seed": 1234, "prompt": "a dog running"}),
    ("多镜头 城市夜景", {"shot_type": "multi", "prompt": "城市夜景"}),
    ("single shot of a dog surfing", {"shot_type": "single", "prompt": "a dog surfing"}),
    ("智能扩写:海边日落", {"prompt_extend": True, "prompt": "海边日落"}),
    ("海边日落, 不要改写我的提示词", {"prompt_extend": False, "prompt": "海边日落"}),
    ("sunset over the sea, keep my prompt as is", {"prompt_extend": False, "prompt": "sunset over the sea"}),
    (
        "a quiet forest",
        {"sound": None, "negative_prompt": None, "seed": None, "shot_type": None, "prompt_extend": None},
    ),
]


@pytest.mark.parametrize(("text", "expected"), PHRASES, ids=[p[0][:40] for p in PHRASES])
def test_control_phrase(text: str, expected: dict[str, Any]) -> None:
    got = parse(text).as_dict()
    assert {k: got[k] for k in expected} == expected


async def _run(core: BotCore, text: str) -> RecordingConversation:
    conv = RecordingConversation()
    job = await core.handle(Incoming("console", "chat", "u1", text), conv)
    assert job is not None, conv.events
    await asyncio.wait_for(job.wait(), 60)
    return conv


def _notice(conv: RecordingConversation) -> NoticeView:
    notice = conv.of("notice")[0]
    assert isinstance(notice, NoticeView)
    return notice


async def test_offered_controls_reach_the_create_body_and_the_notice(core: BotCore, sandbox: Sandbox) -> None:
    conv = await _run(core, "用万相生成 城市夜景, 多镜头, 种子 42, 不要出现文字, 不要改写我的提示词")
    [entry] = sandbox.ledger
    assert entry.parameters["shot_type"] == "multi" and int(entry.parameters["seed"]) == 42
    assert entry.parameters["negative_prompt"] == "文字" and entry.parameters["prompt_extend"] in (
        False,
        "false",
    )
    text = _notice(conv).text
    assert "多镜头" in text and "42" in text and "文字" in text and "不改写" in text


async def test_a_control_the_model_lacks_is_left_out_and_said(core: BotCore, sandbox: Sandbox) -> None:
    conv = await _run(core, "用海螺2.3生成 城市夜景, 多镜头")
    [entry] = sandbox.ledger
    assert "shot_type" not in entry.parameters
    assert "单镜头或多镜头" in _notice(conv).text


async def test_sound_is_priced_and_sent_in_the_models_spelling(core: BotCore, sandbox: Sandbox) -> None:
    loud = await _run(core, "用可灵2.6生成 海浪拍岸, 5秒, 有声")
    quiet = await _run(core, "用可灵2.6生成 海浪拍岸, 5秒, 无声")
    first, second = sandbox.ledger
    assert first.parameters["sound"] == "on" and second.parameters["sound"] == "off"
    assert (first.credit, second.credit) == (100, 80)
    assert _notice(loud).credits == 100 and _notice(quiet).credits == 80


async def test_sound_on_a_model_without_it_names_one_that_can(core: BotCore, sandbox: Sandbox) -> None:
    conv = await _run(core, "用海螺2.3生成 海浪拍岸, with sound")
    [entry] = sandbox.ledger
    assert "sound" not in entry.parameters and "generate_audio" not in entry.parameters
    assert "可以用 Kling 2.6" in _notice(conv).text


async def test_a_seed_is_chosen_and_kept_when_none_was_asked(core: BotCore, sandbox: Sandbox) -> None:
    conv = await _run(core, "a red fox in the snow")
    [entry] = sandbox.ledger
    job = await core.store.get_job(_notice(conv).job_id)
    assert job is not None and int(entry.parameters["seed"]) == int(job.params["seed"]) > 0
    assert "Seed" not in _notice(conv).text  # not asked for: not worth a line


def test_a_console_conversation_shows_each_choice_and_sends_it(tmp_path: Path) -> None:
    done, created = console_session(tmp_path, "a lighthouse in a storm, silent, seed 42, --no people\n")
    assert done.returncode == 0, done.stderr
    assert "Seed: 42" in done.stdout and "Keep out: people" in done.stdout
    assert len(created) == 1
    sent = json.dumps(created[0])
    assert "people" in sent and "42" in sent


async def test_again_with_the_same_seed_reuses_it_and_plain_again_takes_a_new_one(
    core: BotCore, sandbox: Sandbox
) -> None:
    first = await _run(core, "a red fox in the snow")
    video = first.of("video")[0]
    assert getattr(video, "same_seed_label", None)
    job_id = _notice(first).job_id
    again = await core.rerun(
        job_id, user_id="u1", model_id=None, conversation=RecordingConversation(), same_seed=True
    )
    assert again is not None
    await asyncio.wait_for(again.wait(), 60)
    fresh = await core.rerun(again.job_id, user_id="u1", model_id=None, conversation=RecordingConversation())
    assert fresh is not None
    await asyncio.wait_for(fresh.wait(), 60)
    seeds = [int(e.parameters["seed"]) for e in sandbox.ledger]
    assert seeds[0] == seeds[1] != seeds[2]
