"""A short chaos run (benchmarks/chaos.py) in `make test`: the sandbox and the bot in processes
of their own, the bot killed with SIGKILL and restarted on the same SQLite file, every event
delivered again, faults injected. What must hold whatever the kill hits:

- nothing lost: every request ends in a video or a failure in plain words;
- nothing paid twice: one charged task per request at most;
- every failure explained by an injected fault, or by the kill landing while a create was on
  the wire: IMA has no idempotency key and no task list, so such a create can only be reported
  as "may still be made" (never sent again), and a task it paid for is one the user was told of;
- a video shown twice is the same job's one video shown again (a kill between showing it and
  saving "delivered"), never a second generation.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_short_chaos_run_loses_nothing_and_pays_nothing_twice(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "chaos.py"),
            "--requests",
            "40",
            "--kills",
            "1",
            "--seed",
            "3",
            "--timeout",
            "60",
            "--keep",
            str(tmp_path / "chaos"),
        ],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["requests"] == 40 and figures["kills"] == 1, figures
    assert figures["resumed_after_kills"] > 0, figures  # the kill came while jobs were under way
    assert figures["lost"] == 0, figures
    assert figures["paid_twice"] == 0, figures
    assert figures["unexplained_failures"] == 0, figures
    assert figures["paid_not_delivered"] == figures["paid_not_delivered_told"], figures
    assert figures["delivered_twice"] == figures["delivered_twice_same_video"], figures
    answered = (
        figures["delivered_once"] + figures["delivered_twice"] + sum(figures["failed_with_message"].values())
    )
    assert answered == 40, figures
