"""`python -m bot parse`: print how messages are understood, as JSON.

python -m bot parse [--images N] TEXT     one JSON object
python -m bot parse --jsonl               stdin lines {"text": ..., "images": N} -> one
                                          object per line, in order; a bad line gives
                                          {"error": ...} and the run goes on
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from bot.understand import parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bot parse", description="Print how a message is understood, as JSON."
    )
    p.add_argument("--images", type=int, default=0, help="how many images came with the message (default 0)")
    p.add_argument("--jsonl", action="store_true", help='read {"text": ..., "images": N} lines from stdin')
    p.add_argument("text", nargs="*", help="the message (words are joined with spaces)")
    return p


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False)


def understand_line(line: str) -> dict[str, Any]:
    """One JSONL input line -> the output object (an {"error": ...} object when it is bad)."""
    try:
        item = json.loads(line)
    except ValueError as e:
        return {"error": f"invalid JSON: {e}"}
    if not isinstance(item, dict):
        return {"error": "each line must be a JSON object"}
    text = item.get("text")
    if not isinstance(text, str):
        return {"error": '"text" must be a string'}
    images = item.get("images", 0)
    if images is None:
        images = 0
    if isinstance(images, bool) or not isinstance(images, int) or images < 0:
        return {"error": '"images" must be a non-negative integer'}
    try:
        return parse(text, images=images).as_dict()
    except Exception as e:  # the stream must go on whatever one line does
        return {"error": f"{type(e).__name__}: {e}"}


def run_jsonl(stdin: TextIO, stdout: TextIO) -> int:
    """Understand every line of `stdin`, writing one JSON object per non-blank line."""
    for line in stdin:
        if not line.strip():
            continue
        stdout.write(_dump(understand_line(line)) + "\n")
    stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m bot parse`; returns the exit status."""
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.jsonl:
        return run_jsonl(sys.stdin, sys.stdout)
    if args.images < 0:
        print("--images must be 0 or more", file=sys.stderr)
        return 2
    print(_dump(parse(" ".join(args.text), images=args.images).as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
