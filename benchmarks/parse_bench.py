"""How many messages per second bot.understand.parse handles on one core, and whether its
time stays linear on hostile input (long runs of spaces, newlines, numerals, "a://", quotes).

    .venv/bin/python benchmarks/parse_bench.py [--seconds 5]

Targets (issue: understanding, second pass): >= 20,000 messages/s on the mix; doubling a
hostile input at most ~2.5x the time; no message up to 8,000 characters over 20 ms on the
loop (longer than 1,000 characters, the core parses in a worker thread).

Messages are the phrasings of tests/fixtures/understand_cases.json (Chinese, Traditional,
English, with and without images), cycled. The first pass is excluded: it compiles the
per-character scanners once per process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.understand import parse  # noqa: E402


def messages() -> list[tuple[str, int]]:
    """The benchmark's message mix."""
    cases = json.loads((ROOT / "tests" / "fixtures" / "understand_cases.json").read_text(encoding="utf-8"))
    return [(c["text"], int(c["images"])) for c in cases]


def run(seconds: float) -> float:
    """Messages per second over about `seconds` of parsing."""
    batch = messages()
    for text, images in batch:  # warm-up: lexicon load and scanner compilation
        parse(text, images)
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for text, images in batch:
            parse(text, images)
        count += len(batch)
    return count / (time.perf_counter() - start)


def main() -> int:
    """Print the rate (and the average message length) and return 0."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=5.0)
    args = p.parse_args()
    batch = messages()
    avg = sum(len(t) for t, _ in batch) / len(batch)
    rate = run(args.seconds)
    print(f"parse: {rate:,.0f} messages/s on one core ({len(batch)} distinct messages, avg {avg:.0f} chars)")
    worst_ratio, worst_ms = linearity()
    print(
        f"hostile input: worst time ratio for doubled length {worst_ratio:.2f}x; "
        f"slowest 8,000-char message {worst_ms:.1f} ms"
    )
    return 0


HOSTILE = {
    "spaces": " ",
    "newlines": "\n",
    "numerals": "一",
    "links": "a://",
    "quotes": '"a',
    "words": "cat ",
    "mixed": "用可灵 10秒 竖屏 ",
    "emoji": "🙂",
    "dots": "a.",
    "commas": "，",
}


def _best_of(text: str, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        parse(text)
        best = min(best, time.perf_counter() - start)
    return best


def linearity() -> tuple[float, float]:
    """(worst t(2n)/t(n) over the hostile patterns for n = 2,000 and 4,000 characters,
    slowest parse of an 8,000-character hostile message in ms)."""
    worst_ratio = 0.0
    worst_ms = 0.0
    for unit in HOSTILE.values():
        times = {n: _best_of((unit * n)[:n]) for n in (2000, 4000, 8000)}
        worst_ratio = max(worst_ratio, times[4000] / times[2000], times[8000] / times[4000])
        worst_ms = max(worst_ms, times[8000] * 1000)
    return worst_ratio, worst_ms


if __name__ == "__main__":
    sys.exit(main())
