"""The `python -m bot parse` contract, through bot.parse_cli.main."""

from __future__ import annotations

import io
import json

import pytest

from bot.parse_cli import main
from bot.understand import CLI_KEYS


def test_one_message_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--images", "1", "用Vidu把这张图动起来，5秒"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert tuple(out) == CLI_KEYS
    assert out["task_type"] == "image_to_video" and out["model_id"] == "viduq2-pro" and out["duration"] == 5


def test_output_keeps_chinese_unescaped(capsys: pytest.CaptureFixture[str]) -> None:
    main(["用可灵做个10秒竖屏的视频:舞者在舞台上旋转"])
    raw = capsys.readouterr().out
    assert "舞者在舞台上旋转" in raw
    assert json.loads(raw)["aspect_ratio"] == "9:16"


def test_jsonl_answers_every_line_in_order_and_survives_bad_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        json.dumps({"text": "Hailuo 2.0, a waterfall, 1080p, square", "images": 0}),
        "not json",
        json.dumps(["a list"]),
        json.dumps({"text": 5}),
        json.dumps({"text": "x", "images": -1}),
        json.dumps({"text": "把图动起来", "images": 1}),
        json.dumps({"text": "no images key"}),
    ]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["--jsonl"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(out) == 7
    assert out[0]["model_id"] == "MiniMax-Hailuo-02" and out[0]["prompt"] == "a waterfall"
    assert all("error" in o for o in out[1:5])
    assert out[5]["task_type"] == "image_to_video"
    assert out[6]["task_type"] == "text_to_video"


def test_negative_image_count_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--images", "-2", "a cat"]) == 2
