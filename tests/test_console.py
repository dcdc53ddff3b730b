"""The terminal chat, as a newcomer runs it: `python -m bot console` with stdin piped."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import av
import httpx
from PIL import Image

from tests.waiting import PATIENCE_S

ROOT = Path(__file__).resolve().parent.parent


def run_console(
    stdin: str, tmp_path: Path, *args: str, lang: str = "C.UTF-8"
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMA_", "FEISHU_", "DISCORD_", "BOT_"))}
    env.update(
        IMA_SANDBOX_TIME_SCALE="0.01",
        BOT_DB_PATH=str(tmp_path / "bot.sqlite3"),
        LANG=lang,
        PYTHONIOENCODING="utf-8",
    )
    return subprocess.run(
        [sys.executable, "-m", "bot", "console", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )


def test_a_piped_chinese_request_prints_notice_progress_and_a_video_link(tmp_path: Path) -> None:
    done = run_console("用可灵生成一段小狗奔跑的视频 5秒\n", tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "开始生成视频" in out and "Kling O1" in out
    assert re.search(r"视频生成中… \d+%", out)
    assert "视频生成成功" in out
    urls = re.findall(r"http://127\.0\.0\.1:\d+/\S+\.mp4", out)
    assert urls


def test_the_video_is_still_playable_after_the_session_ends(tmp_path: Path) -> None:
    done = run_console("make a 5 second video of rain on a window\n", tmp_path)
    assert done.returncode == 0, done.stderr
    [saved] = re.findall(r"Saved on this machine: (\S+\.mp4)", done.stdout)
    path = Path(saved) if Path(saved).is_absolute() else tmp_path / saved
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.duration is not None and abs(container.duration / 1_000_000 - 5) < 0.6


def test_the_piped_session_exits_zero_with_no_input(tmp_path: Path) -> None:
    done = run_console("", tmp_path)
    assert done.returncode == 0 and done.stdout == ""


def test_an_image_line_attaches_a_picture_to_the_next_request(tmp_path: Path) -> None:
    picture = tmp_path / "cat.png"
    Image.new("RGB", (64, 64), (255, 200, 0)).save(picture)
    done = run_console(f"/image {picture}\nanimate this picture, the cat blinks\n", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Video ready" in done.stdout


def test_a_missing_image_file_is_reported_and_nothing_crashes(tmp_path: Path) -> None:
    done = run_console("/image /no/such/file.png\n", tmp_path)
    assert done.returncode == 0 and "/no/such/file.png" in done.stderr


def _decodes(data: bytes) -> bool:
    with av.open(io.BytesIO(data)) as c:
        return c.streams.video[0].codec_context.name == "h264"


def test_a_separately_started_sandbox_serves_the_console_video(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMA_", "FEISHU_", "DISCORD_", "BOT_"))}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot",
            "sandbox",
            "--port",
            "0",
            "--time-scale",
            "0.01",
            "--port-file",
            str(port_file),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + PATIENCE_S
        while not (port_file.exists() and port_file.read_text().strip()):
            assert server.poll() is None and time.monotonic() < deadline, "the sandbox never said its port"
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port_file.read_text().strip()}"
        env.update(
            IMA_BASE_URL=base,
            IMA_API_KEY="ima_sandbox_key",
            IMA_SANDBOX_TIME_SCALE="0.01",
            BOT_DB_PATH=str(tmp_path / "bot.sqlite3"),
            LANG="C.UTF-8",
        )
        picture = tmp_path / "cat.png"
        Image.new("RGB", (64, 64), (255, 200, 0)).save(picture)
        done = subprocess.run(
            [sys.executable, "-m", "bot", "console"],
            input=f"生成一段小狗奔跑的视频\n/image {picture}\n把这张图动起来\n",
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        urls = re.findall(r"http://127\.0\.0\.1:\d+/\S+\.mp4", done.stdout)
        assert len(set(urls)) == 2, done.stdout  # the text video and the animated picture
        assert all(_decodes(httpx.get(url).content) for url in set(urls))
    finally:
        server.terminate()
        server.wait(10)


async def test_on_a_terminal_progress_redraws_one_line_as_a_bar() -> None:
    from adapters.base import ProgressView, VideoView
    from adapters.console import ConsoleConversation

    out = io.StringIO()
    conv = ConsoleConversation(out, interactive=True)
    await conv.progress(ProgressView("j", 25, 30, 120, "⏳ 25%\nwaited 30s"))
    await conv.progress(ProgressView("j", 50, 60, 120, "⏳ 50%\nwaited 60s"))
    await conv.video(VideoView("j", "http://x/v.mp4", None, "done", "🔗 http://x/v.mp4", "Wan 2.6"))
    text = out.getvalue()
    assert text.count("\r[") == 2 and "█████░" in text and "██████████░" in text
    assert "\n" not in text.split("done")[0].rstrip("\n")  # the bar stayed on one line until the result
    assert text.endswith("done\n🔗 http://x/v.mp4\n")


def test_help_prints_the_commands_and_starts_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert (
        done.returncode == 0
        and "console" in done.stdout
        and "sandbox" in done.stdout
        and "parse" in done.stdout
    )


def test_an_unknown_command_is_refused_with_usage() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "bogus"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2 and "usage" in done.stderr


def test_a_failure_in_the_terminal_says_how_to_ask_for_another_model(tmp_path: Path) -> None:
    done = run_console("用 Sora 2 Pro 生成一个女人在海边跳舞的视频\n确认\n", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "视频生成失败" in done.stdout and "回复「好的」就用 Wan 2.6 重试" in done.stdout
