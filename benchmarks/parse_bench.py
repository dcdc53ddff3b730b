"""How many messages per second bot.understand.parse handles on one core.

    .venv/bin/python benchmarks/parse_bench.py [--seconds 5]

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
