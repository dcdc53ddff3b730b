"""The sandbox command line and the renderer on their own."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import httpx
import pytest

from bot.sandbox.cli import build_parser
from bot.sandbox.render import RenderAborted, RenderJob, frame_size, render
from tests.test_sandbox import HEADERS

ROOT = Path(__file__).resolve().parents[1]


def test_the_cli_serves_until_interrupted_and_writes_its_port(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = (
        "import sys; from bot.sandbox.cli import main; "
        f"sys.exit(main(['--port', '0', '--port-file', {str(port_file)!r}, '--seed', '4']))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr and proc.stderr.read()
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port_file.read_text().strip()}"
        r = httpx.get(f"{base}/open/v1/product/list", headers=HEADERS, params={"category": "text_to_video"})
        assert r.status_code == 200 and r.json()["code"] == 0
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0 and base in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_time_scale_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMA_SANDBOX_TIME_SCALE", "0.05")
    assert build_parser().parse_args([]).time_scale == 0.05
    assert build_parser().parse_args(["--time-scale", "2"]).time_scale == 2


def test_the_cli_defaults_match_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMA_SANDBOX_TIME_SCALE", raising=False)
    args = build_parser().parse_args([])
    assert (args.host, args.port, args.api_key, args.balance, args.time_scale) == (
        "127.0.0.1",
        8765,
        "ima_sandbox_key",
        10000,
        1.0,
    )


@pytest.mark.parametrize(
    "argv", [["--fail-rate", "1.5"], ["--error-rate-429", "-0.1"], ["--time-scale", "0"]]
)
def test_the_cli_refuses_out_of_range_options(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)


@pytest.mark.parametrize(
    ("ratio", "size"),
    [
        ("16:9", (320, 180)),
        ("9:16", (180, 320)),
        ("1:1", (240, 240)),
        ("2:1", (320, 160)),
        ("nonsense", (320, 180)),
    ],
)
def test_frame_sizes_are_small_even_and_keep_the_ratio(ratio: str, size: tuple[int, int]) -> None:
    assert frame_size(ratio) == size


def test_a_five_second_clip_renders_in_well_under_a_second(tmp_path: Path) -> None:
    job = RenderJob(
        tmp_path / "v.mp4",
        tmp_path / "c.jpg",
        "一只小狗 a puppy runs across a meadow " * 5,
        "Wan 2.6",
        5,
        "9:16",
    )
    t0 = time.perf_counter()
    render(job)
    assert time.perf_counter() - t0 < 1.0
    with av.open(io.BytesIO(job.video_path.read_bytes()), mode="r") as c:
        assert c.duration is not None and abs(c.duration / 1_000_000 - 5) <= 0.5
        assert (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height) == (180, 320)
    assert job.cover_path.read_bytes()[:2] == b"\xff\xd8"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.jpg", "v.mp4"]  # no .part left behind


def test_a_stopped_render_leaves_no_files(tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(RenderAborted):
        render(RenderJob(tmp_path / "v.mp4", tmp_path / "c.jpg", "x", "Wan 2.6", 5, "16:9"), stop)
    assert list(tmp_path.iterdir()) == []
