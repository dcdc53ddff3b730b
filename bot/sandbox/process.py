"""The sandbox in a process of its own (`python -m bot sandbox`), for benchmarks and tests that
measure the bot alone or kill it: started on a free loopback port, ready when it serves."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: how long a sandbox may take to start serving
START_TIMEOUT_S = 30.0


def clean_env() -> dict[str, str]:
    """This process's environment without the bot's own settings (IMA_, BOT_, FEISHU_, DISCORD_)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMA_", "FEISHU_", "DISCORD_", "BOT_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


def start(workdir: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start a sandbox with extra CLI `args` (e.g. "--time-scale", "0.02", "--ledger-file", F);
    returns the process and its base URL once it serves. Its output goes to workdir/sandbox.log."""
    workdir.mkdir(parents=True, exist_ok=True)
    port_file = workdir / "sandbox.port"
    port_file.unlink(missing_ok=True)
    log = (workdir / "sandbox.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "sandbox", "--port", "0", "--port-file", str(port_file), *args],
        cwd=workdir,
        env=clean_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (port_file.exists() and port_file.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the sandbox did not start; see {workdir / 'sandbox.log'}")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port_file.read_text().strip()}"


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a sandbox started by `start`."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def running(workdir: Path, *args: str) -> Iterator[str]:
    """A sandbox for the duration of a `with` block; yields its base URL."""
    proc, base_url = start(workdir, *args)
    try:
        yield base_url
    finally:
        stop(proc)
